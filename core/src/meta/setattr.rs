//! setattr: chmod, chown, truncate and utimens in one operation, as FUSE
//! sends them.
//!
//! Checks, in order: arguments (mode bits EINVAL, size EFBIG); the inode;
//! truncate (EISDIR, EINVAL for a symlink, EACCES without write
//! permission); chown (EPERM unless root, or the owner keeping the uid and
//! choosing one of its groups); chmod (EPERM unless owner or root); times
//! (explicit: owner or root, EPERM; "now": also anyone who may write,
//! EACCES).

use super::changes::ChangeKind;
use super::create::check_mode;
use super::namespace::{Ctx, Namespace};
use super::ops::{MetaReply, SetAttr, TimeSet};
use super::perm::{self, W_OK};
use super::types::{Errno, FileType, Ino, MetaResult, S_ISGID, S_ISUID};

/// Largest file size (off_t).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

impl Namespace {
    pub(crate) fn setattr(&mut self, ctx: &Ctx, ino: Ino, set: &SetAttr) -> MetaResult<MetaReply> {
        if let Some(mode) = set.mode {
            check_mode(mode)?;
        }
        if set.size.is_some_and(|s| s > MAX_FILE_SIZE) {
            return Err(Errno::EFBIG);
        }
        let inode = *self.inode(ino)?;
        let creds = ctx.creds;
        if set.size.is_some() {
            match inode.kind {
                FileType::Dir => return Err(Errno::EISDIR),
                FileType::Symlink => return Err(Errno::EINVAL),
                FileType::File => perm::check(creds, &inode, W_OK)?,
            }
        }
        if let Some(uid) = set.uid {
            if !creds.is_root() && (uid != inode.uid || creds.uid != inode.uid) {
                return Err(Errno::EPERM);
            }
        }
        if let Some(gid) = set.gid {
            let may = creds.is_root()
                || (creds.uid == inode.uid && (gid == inode.gid || creds.in_group(gid)));
            if !may {
                return Err(Errno::EPERM);
            }
        }
        if set.mode.is_some() {
            perm::check_owner(creds, &inode)?;
        }
        let times = [set.atime, set.mtime];
        if times.iter().any(|t| matches!(t, Some(TimeSet::At(_)))) {
            perm::check_owner(creds, &inode)?;
        } else if times.iter().any(Option::is_some)
            && !(creds.uid == inode.uid || perm::may(creds, &inode, W_OK))
        {
            return Err(Errno::EACCES);
        }
        if *set == SetAttr::default() {
            return Ok(MetaReply::Attr(self.attr(ino, &inode)));
        }

        let mut next = inode;
        let chown = set.uid.is_some() || set.gid.is_some();
        next.uid = set.uid.unwrap_or(inode.uid);
        next.gid = set.gid.unwrap_or(inode.gid);
        if let Some(mode) = set.mode {
            // Only members of the file's group may keep set-group-ID.
            let keep_sgid = creds.is_root() || creds.in_group(next.gid);
            next.mode = if keep_sgid { mode } else { mode & !S_ISGID };
        } else if chown && inode.kind != FileType::Dir {
            // A new owner must not inherit set-ID powers.
            next.mode &= !S_ISUID;
            if next.mode & 0o010 != 0 {
                next.mode &= !S_ISGID;
            }
        }
        if let Some(size) = set.size {
            self.total_bytes = self.total_bytes - u128::from(inode.size) + u128::from(size);
            next.size = size;
            next.mtime = ctx.now;
            next.data_seq = ctx.index;
        }
        let time = |t: TimeSet| match t {
            TimeSet::Now => ctx.now,
            TimeSet::At(at) => at,
        };
        if let Some(t) = set.atime {
            next.atime = time(t);
        }
        if let Some(t) = set.mtime {
            next.mtime = time(t);
        }
        next.ctime = ctx.now;
        next.meta_seq = ctx.index;
        *self.inode_mut(ino) = next;
        let kind = if set.size.is_some() {
            ChangeKind::Truncate
        } else {
            ChangeKind::Setattr
        };
        self.record_inode(ctx, ino, kind);
        Ok(MetaReply::Attr(self.attr(ino, &next)))
    }
}
