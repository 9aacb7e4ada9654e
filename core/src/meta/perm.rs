//! POSIX permission checks from the credentials a client presents.

use super::table::Inode;
use super::types::{Credentials, Errno, FileType, MetaResult, S_ISVTX};

/// Access mask bits, as in access(2).
pub const R_OK: u32 = 4;
pub const W_OK: u32 = 2;
pub const X_OK: u32 = 1;

/// Whether `creds` may access `inode` for every bit in `mask`. Root may read
/// and write anything, and execute (search) a directory or a file with any
/// execute bit; everyone else gets the owner, group or other bits.
pub(crate) fn may(creds: &Credentials, inode: &Inode, mask: u32) -> bool {
    if creds.is_root() {
        return mask & X_OK == 0 || inode.kind == FileType::Dir || inode.mode & 0o111 != 0;
    }
    let bits = if creds.uid == inode.uid {
        inode.mode >> 6
    } else if creds.in_group(inode.gid) {
        inode.mode >> 3
    } else {
        inode.mode
    } & 0o7;
    bits & mask == mask
}

/// [`may`] as an error: EACCES.
pub(crate) fn check(creds: &Credentials, inode: &Inode, mask: u32) -> MetaResult<()> {
    if may(creds, inode, mask) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// In a sticky directory only the owner of an entry, the owner of the
/// directory or root may remove or rename it (EPERM, as Linux).
pub(crate) fn check_sticky(creds: &Credentials, dir: &Inode, victim: &Inode) -> MetaResult<()> {
    if dir.mode & S_ISVTX == 0 || creds.is_root() || creds.uid == victim.uid || creds.uid == dir.uid
    {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Owner or root: who may chmod, set explicit times, or set xattrs outside
/// the user namespace (EPERM otherwise).
pub(crate) fn check_owner(creds: &Credentials, inode: &Inode) -> MetaResult<()> {
    if creds.is_root() || creds.uid == inode.uid {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::types::{Ino, Layout};

    fn inode(kind: FileType, mode: u32, uid: u32, gid: u32) -> Inode {
        Inode {
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            meta_seq: 0,
            data_seq: 0,
            parent: Ino(1),
            mode,
            uid,
            gid,
            nlink: 1,
            chunk_size: Layout::default().chunk_size,
            stripe_count: Layout::default().stripe_count,
            replicas: Layout::default().replicas,
            kind,
        }
    }

    #[test]
    fn classes() {
        let f = inode(FileType::File, 0o640, 10, 20);
        let owner = Credentials::user(10, 99);
        let member = Credentials {
            uid: 11,
            gid: 99,
            groups: vec![20],
        };
        let other = Credentials::user(12, 99);
        assert!(may(&owner, &f, R_OK | W_OK));
        assert!(!may(&owner, &f, X_OK));
        assert!(may(&member, &f, R_OK));
        assert!(!may(&member, &f, W_OK));
        assert!(!may(&other, &f, R_OK));
        assert_eq!(check(&other, &f, R_OK), Err(Errno::EACCES));
    }

    #[test]
    fn owner_class_wins_even_if_group_allows_more() {
        let f = inode(FileType::File, 0o070, 10, 20);
        let owner = Credentials {
            uid: 10,
            gid: 20,
            groups: vec![],
        };
        assert!(!may(&owner, &f, R_OK));
    }

    #[test]
    fn root() {
        let root = Credentials::root();
        assert!(may(&root, &inode(FileType::File, 0, 1, 1), R_OK | W_OK));
        assert!(!may(&root, &inode(FileType::File, 0o600, 1, 1), X_OK));
        assert!(may(&root, &inode(FileType::File, 0o001, 1, 1), X_OK));
        assert!(may(&root, &inode(FileType::Dir, 0, 1, 1), X_OK));
    }

    #[test]
    fn sticky() {
        let dir = inode(FileType::Dir, 0o1777, 5, 5);
        let victim = inode(FileType::File, 0o644, 6, 6);
        assert_eq!(
            check_sticky(&Credentials::user(6, 0), &dir, &victim),
            Ok(())
        );
        assert_eq!(
            check_sticky(&Credentials::user(5, 0), &dir, &victim),
            Ok(())
        );
        assert_eq!(
            check_sticky(&Credentials::user(7, 0), &dir, &victim),
            Err(Errno::EPERM)
        );
    }
}
