//! [`AlignedBuf`]: block-aligned write memory, as `O_DIRECT` demands.

use super::BLOCK;
use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Heap memory aligned to [`BLOCK`], freed on drop. Shared (through `Arc`)
/// between the [`AlignedBuf`] that reads and writes it and, for a registered
/// buffer, the ring that registered it: the kernel may read registered memory
/// until the ring is gone, so the ring keeps it alive. Only the `AlignedBuf`
/// ever makes references to the bytes; other holders keep the pointer alive.
pub(crate) struct Allocation {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Set while an asynchronous read may write the bytes behind Rust's back:
    /// the `AlignedBuf` then refuses to make references to them (a data race).
    reading: AtomicBool,
}

// SAFETY: `Allocation` owns plain heap memory with no thread affinity. Every
// access to the bytes goes through the single `AlignedBuf` holding it (`&` to
// read, `&mut` to write), so Rust's borrow rules order the accesses; while
// the kernel may write them (`reading`), it makes no reference at all.
unsafe impl Send for Allocation {}
// SAFETY: as above; `&Allocation` gives no access to the bytes by itself.
unsafe impl Sync for Allocation {}

impl Allocation {
    /// Zeroed memory of `capacity` bytes (rounded up to a whole, non-zero
    /// number of blocks), aligned to [`BLOCK`].
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        let size = capacity.max(1).div_ceil(BLOCK) * BLOCK;
        let layout = match Layout::from_size_align(size, BLOCK) {
            Ok(layout) => layout,
            Err(_) => panic!("buffer of {capacity} bytes exceeds the address space"),
        };
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Arc::new(Allocation {
            ptr,
            layout,
            reading: AtomicBool::new(false),
        })
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Marks the bytes as (no longer) the target of an asynchronous read.
    /// Release: the read's bytes are visible to whoever sees `false`.
    pub(crate) fn set_reading(&self, reading: bool) {
        self.reading.store(reading, Ordering::Release);
    }

    pub(crate) fn is_reading(&self) -> bool {
        self.reading.load(Ordering::Acquire)
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this `layout` and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Which ring registered a buffer, and at which index of its buffer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Registration {
    pub ring: u64,
    pub index: u16,
}

/// A write buffer aligned to [`BLOCK`] whose capacity is a whole number of
/// blocks. It holds `len` bytes, like a `Vec` that never reallocates: `O_DIRECT`
/// writes need an aligned address, and a registered buffer must stay where the
/// kernel pinned it. Get one from [`super::DiskIo::buffer`] to have it
/// registered where the backend can, or from [`AlignedBuf::new`].
pub struct AlignedBuf {
    mem: Arc<Allocation>,
    len: usize,
    registration: Option<Registration>,
}

impl AlignedBuf {
    /// An empty, unregistered buffer of at least `capacity` bytes (at least one block).
    pub fn new(capacity: usize) -> Self {
        AlignedBuf {
            mem: Allocation::new(capacity),
            len: 0,
            registration: None,
        }
    }

    /// A buffer over memory a ring registered. `mem` must be held by nothing
    /// but that ring (checked by the caller with `Arc::get_mut`).
    pub(crate) fn registered(mem: Arc<Allocation>, registration: Registration) -> Self {
        AlignedBuf {
            mem,
            len: 0,
            registration: Some(registration),
        }
    }

    pub(crate) fn registration(&self) -> Option<Registration> {
        self.registration
    }

    /// Keeps the memory alive however long its holder lives, for a backend
    /// that lost track of whether the kernel still uses it.
    pub(crate) fn share_memory(&self) -> Arc<Allocation> {
        Arc::clone(&self.mem)
    }

    /// Whether an asynchronous read into this buffer is still in flight
    /// (submitted and not reaped): until then its bytes cannot be touched.
    pub fn read_in_flight(&self) -> bool {
        self.mem.is_reading()
    }

    /// Panics if the kernel may be writing the bytes: a reference to them
    /// now would race with it. Reaping the read's completion clears this.
    fn check_not_reading(&self) {
        assert!(
            !self.mem.is_reading(),
            "AlignedBuf touched while an asynchronous read into it is in flight; \
             reap its completion first"
        );
    }

    /// Whether a ring registered this buffer (writes from it skip pinning pages).
    pub fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    pub fn capacity(&self) -> usize {
        self.mem.capacity()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that still fit.
    pub fn spare(&self) -> usize {
        self.capacity() - self.len
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.mem.as_ptr()
    }

    pub fn as_slice(&self) -> &[u8] {
        self.check_not_reading();
        // SAFETY: the first `len` bytes are initialized (the allocation is
        // zeroed) and within the allocation; `&self` keeps them from being
        // written, and no asynchronous read writes them (checked above).
        unsafe { std::slice::from_raw_parts(self.mem.as_ptr(), self.len) }
    }

    fn whole_mut(&mut self) -> &mut [u8] {
        self.check_not_reading();
        // SAFETY: the allocation is `capacity` initialized bytes; `&mut self`
        // is the only way to reach them (see `Allocation`) and no asynchronous
        // read writes them (checked above), so this is unique.
        unsafe { std::slice::from_raw_parts_mut(self.mem.as_ptr().cast_mut(), self.capacity()) }
    }

    /// Appends as much of `src` as fits. Returns how many bytes were taken.
    pub fn fill_from(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.spare());
        let len = self.len;
        self.whole_mut()[len..len + n].copy_from_slice(&src[..n]);
        self.len += n;
        n
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The first `len` bytes as a mutable slice for a read to fill: the
    /// buffer then holds exactly `len` bytes (their old contents until the
    /// read writes them; the allocation is always initialized).
    pub fn prepare_read(&mut self, len: usize) -> &mut [u8] {
        assert!(
            len <= self.capacity(),
            "read of {len} bytes into a {}-byte buffer",
            self.capacity()
        );
        self.len = len;
        &mut self.whole_mut()[..len]
    }

    /// Shortens to `len` bytes; no effect if already shorter.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Zero-fills up to the next block boundary, so the buffer can be written
    /// with `O_DIRECT`. Returns the length before padding.
    pub fn pad_to_block(&mut self) -> usize {
        let len = self.len;
        let padded = len.div_ceil(BLOCK) * BLOCK;
        self.whole_mut()[len..padded].fill(0);
        self.len = padded;
        len
    }

    /// Drops the first `n` bytes, moving the rest to the front.
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let len = self.len;
        self.whole_mut().copy_within(n..len, 0);
        self.len = len - n;
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("registration", &self.registration)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_block_sized() {
        for cap in [0, 1, BLOCK, BLOCK + 1, 3 * BLOCK] {
            let buf = AlignedBuf::new(cap);
            assert_eq!(buf.as_ptr() as usize % BLOCK, 0);
            assert_eq!(buf.capacity() % BLOCK, 0);
            assert!(buf.capacity() >= cap.max(1));
        }
    }

    #[test]
    fn fill_pad_and_consume() {
        let mut buf = AlignedBuf::new(2 * BLOCK);
        assert_eq!(buf.fill_from(&[7; 100]), 100);
        assert_eq!(buf.pad_to_block(), 100);
        assert_eq!(buf.len(), BLOCK);
        assert!(buf.as_slice()[100..].iter().all(|b| *b == 0));
        buf.truncate(100);
        assert_eq!(buf.fill_from(&[9; 3 * BLOCK]), 2 * BLOCK - 100);
        assert_eq!(buf.spare(), 0);
        buf.consume_front(BLOCK);
        assert_eq!(buf.len(), BLOCK);
        assert!(buf.as_slice().iter().all(|b| *b == 9));
        // Padding an already aligned length adds nothing.
        assert_eq!(buf.pad_to_block(), BLOCK);
        assert_eq!(buf.len(), BLOCK);
    }
}
