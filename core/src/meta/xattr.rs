//! Extended attributes.
//!
//! Names in the "user." namespace need read permission to get and write
//! permission to change; every other namespace ("trusted.", "security.",
//! "system.", ...) is root's: others get EPERM when changing, ENODATA when
//! reading, and do not see those names listed (as Linux does for
//! "trusted."). One inode's names and values are bounded in total
//! ([`XATTR_TOTAL_MAX`], ENOSPC), so no inode grows without bound.

use super::changes::ChangeKind;
use super::name::{self, XATTR_TOTAL_MAX, XATTR_VALUE_MAX};
use super::namespace::{Ctx, Namespace};
use super::ops::{MetaReply, XattrHow};
use super::perm::{self, R_OK, W_OK};
use super::table::Inode;
use super::types::{Credentials, Errno, Ino, MetaResult};

const USER: &[u8] = b"user.";

impl Namespace {
    /// The value of `name` on `ino`.
    pub fn getxattr(&self, creds: &Credentials, ino: Ino, name: &[u8]) -> MetaResult<Vec<u8>> {
        name::check_xattr_name(name)?;
        let inode = self.inode(ino)?;
        if name.starts_with(USER) {
            perm::check(creds, inode, R_OK)?;
        } else if !creds.is_root() {
            return Err(Errno::ENODATA);
        }
        self.xattr_index(ino, name)
            .map(|i| self.xattrs[&ino][i].1.to_vec())
            .ok_or(Errno::ENODATA)
    }

    /// The names on `ino` the caller may see, in order.
    pub fn listxattr(&self, creds: &Credentials, ino: Ino) -> MetaResult<Vec<Vec<u8>>> {
        self.inode(ino)?;
        Ok(self
            .xattrs
            .get(&ino)
            .into_iter()
            .flatten()
            .filter(|(n, _)| creds.is_root() || n.starts_with(USER))
            .map(|(n, _)| n.to_vec())
            .collect())
    }

    pub(crate) fn setxattr(
        &mut self,
        ctx: &Ctx,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        how: XattrHow,
    ) -> MetaResult<MetaReply> {
        name::check_xattr_name(name)?;
        if value.len() > XATTR_VALUE_MAX {
            return Err(Errno::E2BIG);
        }
        let inode = *self.inode(ino)?;
        check_change(ctx.creds, &inode, name)?;
        let existing = self.xattr_index(ino, name);
        match (how, existing) {
            (XattrHow::Create, Some(_)) => return Err(Errno::EEXIST),
            (XattrHow::Replace, None) => return Err(Errno::ENODATA),
            _ => {}
        }
        let list = self.xattrs.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
        let others: usize = list
            .iter()
            .filter(|(n, _)| &**n != name)
            .map(|(n, v)| n.len() + v.len())
            .sum();
        if others + name.len() + value.len() > XATTR_TOTAL_MAX {
            return Err(Errno::ENOSPC);
        }

        let list = self.xattrs.entry(ino).or_default();
        match list.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => list[i].1 = Box::from(value),
            Err(i) => list.insert(i, (Box::from(name), Box::from(value))),
        }
        self.touch_meta(ino, ctx);
        self.record_inode(ctx, ino, ChangeKind::Xattr);
        Ok(MetaReply::Done)
    }

    pub(crate) fn removexattr(
        &mut self,
        ctx: &Ctx,
        ino: Ino,
        name: &[u8],
    ) -> MetaResult<MetaReply> {
        name::check_xattr_name(name)?;
        let inode = *self.inode(ino)?;
        check_change(ctx.creds, &inode, name)?;
        let i = self.xattr_index(ino, name).ok_or(Errno::ENODATA)?;

        let list = self.xattrs.get_mut(&ino).expect("found above");
        list.remove(i);
        if list.is_empty() {
            self.xattrs.remove(&ino);
        }
        self.touch_meta(ino, ctx);
        self.record_inode(ctx, ino, ChangeKind::Xattr);
        Ok(MetaReply::Done)
    }

    fn xattr_index(&self, ino: Ino, name: &[u8]) -> Option<usize> {
        self.xattrs
            .get(&ino)?
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
    }
}

/// Who may set or remove `name`.
fn check_change(creds: &Credentials, inode: &Inode, name: &[u8]) -> MetaResult<()> {
    if name.starts_with(USER) {
        perm::check(creds, inode, W_OK)
    } else if creds.is_root() {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}
