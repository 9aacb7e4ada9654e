//! Estimates of the heap the state holds. core/tests/meta_memory.rs checks
//! them against a counting allocator.

use super::namespace::Namespace;

impl Namespace {
    /// Estimated heap bytes of the whole state: B-tree slots at the fill
    /// sequential and random inserts leave (about 60%), plus each boxed key
    /// or value as malloc rounds it. core/tests/meta_memory.rs checks it
    /// against a counting allocator.
    pub fn heap_bytes(&self) -> usize {
        let slot = |key: usize, value: usize| (key + value) * 5 / 3 + 8;
        let boxed: usize = self.entries.keys().map(|k| malloc_size(k.len())).sum();
        let entries = self.entries.len() * slot(16, 8) + boxed;
        let symlinks: usize = self
            .symlinks
            .values()
            .map(|t| slot(8, 16) + malloc_size(t.len()))
            .sum();
        let xattrs: usize = self
            .xattrs
            .values()
            .map(|v| {
                let each: usize = v
                    .iter()
                    .map(|(n, x)| malloc_size(n.len()) + malloc_size(x.len()))
                    .sum();
                slot(8, 24) + malloc_size(v.capacity() * 32) + each
            })
            .sum();
        self.inodes.heap_bytes()
            + entries
            + symlinks
            + xattrs
            + self.extra_links.len() * slot(16, 4)
            + self.foreign.len() * slot(8, 16)
            + self.roots.len() * slot(8, 0)
            + self.finished.len() * slot(8, 2)
            + self
                .exports
                .values()
                .map(|e| slot(8, 64) + e.image.heap_bytes())
                .sum::<usize>()
            + self.feed.heap_bytes()
    }

    /// Estimated heap bytes per inode, change feed left out (it is bounded by
    /// its cap, not by the namespace).
    pub fn bytes_per_inode(&self) -> usize {
        let without_feed = self.heap_bytes() - self.feed.heap_bytes();
        without_feed / self.inodes.len().max(1) as usize
    }
}

/// What glibc's malloc takes for `size` bytes: 8 bytes of header, rounded
/// to 16, at least 32.
pub(crate) fn malloc_size(size: usize) -> usize {
    (size + 8).next_multiple_of(16).max(32)
}
