//! The inode table: inodes in fixed pages of 64 slots, keyed by page number.
//!
//! Why pages and not a `BTreeMap<Ino, Inode>`: inode numbers are handed out
//! densely from granted ranges, so a page is usually full and an inode costs
//! its own 80 bytes plus 1/64 of a page header. A B-tree of 80-byte values
//! fills its leaves about half on sequential inserts and costs about twice
//! that. The price: a page stays allocated while any of its inodes lives.

use std::collections::BTreeMap;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::types::{FileType, Ino, Layout, Nanos};
use crate::raft::Index;

const PAGE_BITS: u32 = 6;
const PAGE_SLOTS: usize = 1 << PAGE_BITS;

/// One inode as stored. Kept to 80 bytes: the symlink target, extended
/// attributes and extra hard links live in side tables because few inodes
/// have them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inode {
    pub size: u64,
    pub atime: Nanos,
    pub mtime: Nanos,
    pub ctime: Nanos,
    pub meta_seq: Index,
    pub data_seq: Index,
    /// A directory's parent (the root's is itself). For a file or symlink the
    /// directory of one of its names (the "primary" link); others are in
    /// `Namespace::extra_links`. Lets the change feed find ancestors and
    /// rename find cycles without a walk.
    pub parent: Ino,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    // The layout, inline: a `Layout` field would pad the inode to 88 bytes.
    pub chunk_size: u32,
    pub stripe_count: u16,
    pub replicas: u8,
    pub kind: FileType,
}

impl Inode {
    pub fn layout(&self) -> Layout {
        Layout {
            chunk_size: self.chunk_size,
            stripe_count: self.stripe_count,
            replicas: self.replicas,
        }
    }

    pub fn set_layout(&mut self, layout: Layout) {
        self.chunk_size = layout.chunk_size;
        self.stripe_count = layout.stripe_count;
        self.replicas = layout.replicas;
    }
}

struct Page {
    live: u32,
    slots: [Option<Inode>; PAGE_SLOTS],
}

#[derive(Default)]
pub(crate) struct InodeTable {
    pages: BTreeMap<u64, Box<Page>>,
    len: u64,
}

fn split(ino: Ino) -> (u64, usize) {
    (ino.0 >> PAGE_BITS, (ino.0 as usize) & (PAGE_SLOTS - 1))
}

impl InodeTable {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        let (page, slot) = split(ino);
        self.pages.get(&page)?.slots[slot].as_ref()
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Inode> {
        let (page, slot) = split(ino);
        self.pages.get_mut(&page)?.slots[slot].as_mut()
    }

    /// Inserts a new inode; returns false (and changes nothing) if the number
    /// is taken.
    pub fn insert(&mut self, ino: Ino, inode: Inode) -> bool {
        let (page, slot) = split(ino);
        let page = self.pages.entry(page).or_insert_with(|| {
            Box::new(Page {
                live: 0,
                slots: std::array::from_fn(|_| None),
            })
        });
        if page.slots[slot].is_some() {
            return false;
        }
        page.slots[slot] = Some(inode);
        page.live += 1;
        self.len += 1;
        true
    }

    pub fn remove(&mut self, ino: Ino) -> Option<Inode> {
        let (key, slot) = split(ino);
        let page = self.pages.get_mut(&key)?;
        let inode = page.slots[slot].take()?;
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.pages.remove(&key);
        }
        Some(inode)
    }

    /// Whether any inode number in `start..end` is in use.
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        self.pages
            .range(start >> PAGE_BITS..=(end - 1) >> PAGE_BITS)
            .any(|(&page, p)| {
                p.slots.iter().enumerate().any(|(slot, s)| {
                    let ino = (page << PAGE_BITS) | slot as u64;
                    s.is_some() && (start..end).contains(&ino)
                })
            })
    }

    /// Every inode in number order.
    pub fn iter(&self) -> impl Iterator<Item = (Ino, &Inode)> + '_ {
        self.pages.iter().flat_map(|(&page, p)| {
            p.slots.iter().enumerate().filter_map(move |(slot, s)| {
                s.as_ref()
                    .map(|inode| (Ino((page << PAGE_BITS) | slot as u64), inode))
            })
        })
    }

    /// Heap bytes held by the pages (for the memory estimate): each page
    /// plus its slot in the page map.
    pub fn heap_bytes(&self) -> usize {
        self.pages.len() * (super::memory::malloc_size(std::mem::size_of::<Page>()) + 40)
    }
}

/// Serialized as a sequence of `(Ino, Inode)` in number order, the same bytes
/// whatever the page layout.
impl Serialize for InodeTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = usize::try_from(self.len).map_err(serde::ser::Error::custom)?;
        let mut seq = serializer.serialize_seq(Some(len))?;
        for entry in self.iter() {
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for InodeTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = InodeTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("inodes in increasing number order")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InodeTable, A::Error> {
                let mut table = InodeTable::default();
                let mut last = Ino(0);
                while let Some((ino, inode)) = seq.next_element::<(Ino, Inode)>()? {
                    if ino <= last {
                        return Err(serde::de::Error::custom("inode numbers not increasing"));
                    }
                    last = ino;
                    table.insert(ino, inode);
                }
                Ok(table)
            }
        }
        deserializer.deserialize_seq(TableVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(size: u64) -> Inode {
        Inode {
            size,
            atime: 0,
            mtime: 0,
            ctime: 0,
            meta_seq: 0,
            data_seq: 0,
            parent: Ino(1),
            mode: 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            chunk_size: Layout::default().chunk_size,
            stripe_count: Layout::default().stripe_count,
            replicas: Layout::default().replicas,
            kind: FileType::File,
        }
    }

    #[test]
    fn inode_is_80_bytes() {
        assert_eq!(std::mem::size_of::<Inode>(), 80);
        assert_eq!(std::mem::size_of::<Option<Inode>>(), 80);
    }

    #[test]
    fn insert_get_remove_frees_empty_pages() {
        let mut t = InodeTable::default();
        assert!(t.insert(Ino(5), inode(5)));
        assert!(!t.insert(Ino(5), inode(6)));
        assert!(t.insert(Ino(64 * 9 + 3), inode(7)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(Ino(5)).map(|i| i.size), Some(5));
        let order: Vec<Ino> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(order, vec![Ino(5), Ino(64 * 9 + 3)]);
        assert_eq!(t.remove(Ino(64 * 9 + 3)).map(|i| i.size), Some(7));
        assert_eq!(t.pages.len(), 1);
        assert!(t.remove(Ino(64 * 9 + 3)).is_none());
    }

    #[test]
    fn serde_round_trip_and_rejects_unsorted() {
        let mut t = InodeTable::default();
        for i in [3u64, 70, 700] {
            t.insert(Ino(i), inode(i));
        }
        let bytes = postcard::to_stdvec(&t).expect("encodes");
        let back: InodeTable = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(postcard::to_stdvec(&back).expect("encodes"), bytes);
        let bad =
            postcard::to_stdvec(&vec![(Ino(9), inode(1)), (Ino(9), inode(2))]).expect("encodes");
        assert!(postcard::from_bytes::<InodeTable>(&bad).is_err());
    }
}
