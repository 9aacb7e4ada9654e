//! Inode numbers to paths for the mount. GovFS inode numbers are the FUSE
//! ones (the root is 1 in both); the client works by path, so the mount
//! remembers, for every inode the kernel looked up, its parent and name,
//! and builds a path by walking up. An entry lives while the kernel holds
//! lookups on it (`forget` drops it), follows renames (a renamed
//! directory's children keep their parent, so their paths follow), and is
//! detached when its last known name is removed.

use std::collections::HashMap;

use govfs_core::meta::Attr;

/// FUSE's and GovFS's root.
pub const ROOT_INO: u64 = 1;
/// Deepest path walked before we call it a loop.
const MAX_DEPTH: usize = 4096;

#[derive(Debug)]
struct Node {
    /// 0: detached (its name was removed).
    parent: u64,
    name: String,
    lookups: u64,
    /// The attributes last seen, for an open file whose name is gone.
    attr: Option<Attr>,
}

#[derive(Debug, Default)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    /// (parent, name) -> inode, for every name we know.
    names: HashMap<(u64, String), u64>,
}

/// `parent`'s path joined with `name`.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Inodes {
    /// The path of `ino`, or `None` if unknown or detached.
    pub fn path(&self, ino: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut at = ino;
        for _ in 0..MAX_DEPTH {
            if at == ROOT_INO {
                parts.reverse();
                return Some(format!("/{}", parts.join("/")));
            }
            let n = self.nodes.get(&at)?;
            if n.parent == 0 {
                return None;
            }
            parts.push(n.name.as_str());
            at = n.parent;
        }
        None
    }

    /// The kernel got `attr` as `name` in `parent` (one more lookup).
    pub fn looked_up(&mut self, parent: u64, name: &str, attr: &Attr) {
        let ino = attr.ino.0;
        if ino == ROOT_INO {
            return;
        }
        self.names.insert((parent, name.to_string()), ino);
        let n = self.nodes.entry(ino).or_insert(Node {
            parent,
            name: String::new(),
            lookups: 0,
            attr: None,
        });
        n.parent = parent;
        n.name = name.to_string();
        n.lookups += 1;
        n.attr = Some(*attr);
    }

    /// Attributes seen again (a getattr).
    pub fn seen(&mut self, attr: &Attr) {
        if let Some(n) = self.nodes.get_mut(&attr.ino.0) {
            n.attr = Some(*attr);
        }
    }

    /// The attributes last seen of `ino`.
    pub fn last_attr(&self, ino: u64) -> Option<Attr> {
        self.nodes.get(&ino).and_then(|n| n.attr)
    }

    /// The kernel dropped `count` lookups of `ino`.
    pub fn forget(&mut self, ino: u64, count: u64) {
        let gone = match self.nodes.get_mut(&ino) {
            Some(n) => {
                n.lookups = n.lookups.saturating_sub(count);
                n.lookups == 0
            }
            None => false,
        };
        if gone {
            self.nodes.remove(&ino);
            self.names.retain(|_, v| *v != ino);
        }
    }

    /// `name` in `parent` was removed (unlink, rmdir, or replaced by a rename).
    pub fn removed(&mut self, parent: u64, name: &str) {
        let Some(ino) = self.names.remove(&(parent, name.to_string())) else {
            return;
        };
        let other = self
            .names
            .iter()
            .find(|(_, v)| **v == ino)
            .map(|((p, n), _)| (*p, n.clone()));
        if let Some(n) = self.nodes.get_mut(&ino) {
            if n.parent == parent && n.name == name {
                match other {
                    // A hard link: it goes on by another name.
                    Some((p, other)) => {
                        n.parent = p;
                        n.name = other;
                    }
                    None => n.parent = 0,
                }
            }
        }
    }

    /// `name` in `parent` is now `new_name` in `new_parent`.
    pub fn renamed(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        self.removed(new_parent, new_name);
        let Some(ino) = self.names.remove(&(parent, name.to_string())) else {
            return;
        };
        self.names.insert((new_parent, new_name.to_string()), ino);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.parent = new_parent;
            n.name = new_name.to_string();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govfs_core::meta::{FileType, Ino, Layout};

    fn attr(ino: u64, kind: FileType) -> Attr {
        Attr {
            ino: Ino(ino),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            nlink: 1,
            layout: Layout::default(),
            meta_seq: 0,
            data_seq: 0,
        }
    }

    #[test]
    fn paths_follow_renames_of_parents_and_end_with_forget() {
        let mut t = Inodes::default();
        assert_eq!(t.path(ROOT_INO).as_deref(), Some("/"));
        t.looked_up(1, "a", &attr(10, FileType::Dir));
        t.looked_up(10, "f", &attr(11, FileType::File));
        assert_eq!(t.path(11).as_deref(), Some("/a/f"));
        t.renamed(1, "a", 1, "b");
        assert_eq!(t.path(11).as_deref(), Some("/b/f"));
        t.forget(11, 1);
        assert_eq!(t.path(11), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_removed_name_detaches_unless_a_link_remains() {
        let mut t = Inodes::default();
        t.looked_up(1, "x", &attr(20, FileType::File));
        t.looked_up(1, "y", &attr(20, FileType::File));
        t.removed(1, "y");
        assert_eq!(t.path(20).as_deref(), Some("/x"));
        t.looked_up(1, "z", &attr(21, FileType::File));
        t.renamed(1, "z", 1, "x"); // replaces x
        assert_eq!(t.path(21).as_deref(), Some("/x"));
        assert_eq!(t.path(20), None);
        assert!(t.last_attr(20).is_some());
    }
}
