//! Checks on names, paths, symlink targets and xattr names. Every argument is
//! checked before the namespace is looked at, so bad input gets the same
//! error whatever the state, and changes nothing.

use super::types::{Errno, MetaResult};

/// Longest name of one entry, in bytes (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Longest path or symlink target, in bytes (Linux PATH_MAX less the NUL).
pub const PATH_MAX: usize = 4095;
/// Longest extended attribute name and value (Linux XATTR_NAME_MAX,
/// XATTR_SIZE_MAX).
pub const XATTR_NAME_MAX: usize = 255;
pub const XATTR_VALUE_MAX: usize = 64 << 10;
/// Bytes of names and values one inode's extended attributes may hold: keeps
/// an inode's state bounded.
pub const XATTR_TOTAL_MAX: usize = 64 << 10;

/// What a valid name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameKind {
    Dot,
    DotDot,
    Normal,
}

/// Empty, '/' or NUL: EINVAL; over [`NAME_MAX`]: ENAMETOOLONG.
pub(crate) fn classify(name: &[u8]) -> MetaResult<NameKind> {
    if name.is_empty() || name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(match name {
        b"." => NameKind::Dot,
        b".." => NameKind::DotDot,
        _ => NameKind::Normal,
    })
}

/// A name about to be created: "." and ".." always exist (EEXIST).
pub(crate) fn new_name(name: &[u8]) -> MetaResult<()> {
    match classify(name)? {
        NameKind::Normal => Ok(()),
        NameKind::Dot | NameKind::DotDot => Err(Errno::EEXIST),
    }
}

/// A name about to be removed or renamed: "." and ".." cannot be (EINVAL,
/// as POSIX rmdir and rename say).
pub(crate) fn existing_name(name: &[u8]) -> MetaResult<()> {
    match classify(name)? {
        NameKind::Normal => Ok(()),
        NameKind::Dot | NameKind::DotDot => Err(Errno::EINVAL),
    }
}

/// An absolute path: empty is ENOENT (POSIX), not starting with '/' or
/// holding NUL is EINVAL, too long (in whole or in one component) is
/// ENAMETOOLONG.
pub(crate) fn check_path(path: &[u8]) -> MetaResult<()> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() > PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if path[0] != b'/' || path.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if components(path).any(|c| c.len() > NAME_MAX) {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// The non-empty components of a path ("//a/./b/" gives "a", ".", "b").
pub(crate) fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// A symlink target: empty is ENOENT (as Linux), NUL is EINVAL, over
/// [`PATH_MAX`] is ENAMETOOLONG.
pub(crate) fn check_target(target: &[u8]) -> MetaResult<()> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    if target.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if target.len() > PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// An xattr name: empty or over [`XATTR_NAME_MAX`] is ERANGE (as Linux), NUL
/// is EINVAL.
pub(crate) fn check_xattr_name(name: &[u8]) -> MetaResult<()> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    if name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify(b""), Err(Errno::EINVAL));
        assert_eq!(classify(b"a/b"), Err(Errno::EINVAL));
        assert_eq!(classify(b"a\0"), Err(Errno::EINVAL));
        assert_eq!(classify(&[b'x'; 256]), Err(Errno::ENAMETOOLONG));
        assert_eq!(classify(&[b'x'; 255]), Ok(NameKind::Normal));
        assert_eq!(classify(b"."), Ok(NameKind::Dot));
        assert_eq!(classify(b".."), Ok(NameKind::DotDot));
        assert_eq!(classify(b"..."), Ok(NameKind::Normal));
        assert_eq!(new_name(b".."), Err(Errno::EEXIST));
        assert_eq!(existing_name(b"."), Err(Errno::EINVAL));
    }

    #[test]
    fn paths() {
        assert_eq!(check_path(b""), Err(Errno::ENOENT));
        assert_eq!(check_path(b"a/b"), Err(Errno::EINVAL));
        assert_eq!(check_path(b"/a\0"), Err(Errno::EINVAL));
        let mut long = vec![b'/'];
        long.extend([b'a'; 256]);
        assert_eq!(check_path(&long), Err(Errno::ENAMETOOLONG));
        let whole: Vec<u8> = b"/abcdefgh".repeat(512);
        assert_eq!(check_path(&whole), Err(Errno::ENAMETOOLONG));
        assert_eq!(check_path(b"//a/./b/"), Ok(()));
        let parts: Vec<&[u8]> = components(b"//a/./b/").collect();
        assert_eq!(parts, vec![&b"a"[..], b".", b"b"]);
    }

    #[test]
    fn targets_and_xattr_names() {
        assert_eq!(check_target(b""), Err(Errno::ENOENT));
        assert_eq!(check_target(b"a\0"), Err(Errno::EINVAL));
        assert_eq!(check_target(&[b'a'; 4096]), Err(Errno::ENAMETOOLONG));
        assert_eq!(check_target(b"../x"), Ok(()));
        assert_eq!(check_xattr_name(b""), Err(Errno::ERANGE));
        assert_eq!(check_xattr_name(&[b'a'; 256]), Err(Errno::ERANGE));
        assert_eq!(check_xattr_name(b"user.\0"), Err(Errno::EINVAL));
    }
}
