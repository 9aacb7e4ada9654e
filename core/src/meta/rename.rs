//! rename(2): move a name, replacing what the new name held, never making a
//! directory its own descendant.
//!
//! Checks, in order (the model test mirrors it): names; both parents exist
//! and are directories; EXDEV if exactly one of them is another ministry's
//! (EREMOTE if both are); search permission on both; the source exists;
//! EEXIST under `noreplace`; same inode: done, nothing changes (POSIX);
//! write permission on both; EBUSY for a foreign source or target; sticky
//! bits; EINVAL for a cycle; write permission on a directory that changes
//! parent (its ".." changes); type mismatch and non-empty target; EMLINK.

use super::changes::ChangeKind;
use super::name;
use super::namespace::{Ctx, Namespace, Target};
use super::ops::MetaReply;
use super::perm::{self, W_OK, X_OK};
use super::table::Inode;
use super::types::{Errno, FileType, Ino, MetaResult};

/// What the checks found: the source and what the new name held.
struct Plan {
    src: Ino,
    src_kind: FileType,
    replaced: Option<(Ino, FileType)>,
}

impl Namespace {
    pub(crate) fn rename(
        &mut self,
        ctx: &Ctx,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        noreplace: bool,
    ) -> MetaResult<MetaReply> {
        let Some(plan) = self.check_rename(ctx, parent, name, new_parent, new_name, noreplace)?
        else {
            return Ok(MetaReply::Done);
        };

        assert_eq!(self.remove_entry(parent, name), plan.src);
        if let Some((old, kind)) = plan.replaced {
            assert_eq!(self.remove_entry(new_parent, new_name), old);
            if kind == FileType::Dir {
                self.free_inode(old);
                self.inode_mut(new_parent).nlink -= 1;
            } else if self.drop_link(old, new_parent) == 0 {
                self.free_inode(old);
            } else {
                self.touch_meta(old, ctx);
            }
        }
        self.insert_entry(new_parent, new_name, plan.src);
        if plan.src_kind == FileType::Dir {
            if parent != new_parent {
                self.inode_mut(parent).nlink -= 1;
                self.inode_mut(new_parent).nlink += 1;
                self.inode_mut(plan.src).parent = new_parent;
            }
        } else {
            self.move_link(plan.src, parent, new_parent);
        }
        self.touch_meta(plan.src, ctx);
        self.touch_dir(parent, ctx);
        self.touch_dir(new_parent, ctx);
        self.record(ctx, plan.src, parent, name, ChangeKind::RenameFrom);
        self.record(ctx, plan.src, new_parent, new_name, ChangeKind::RenameTo);
        if let Some((old, _)) = plan.replaced {
            self.record(ctx, old, new_parent, new_name, ChangeKind::Replaced);
        }
        Ok(MetaReply::Done)
    }

    /// Every check of a rename; `None` when source and target are the same
    /// file and there is nothing to do.
    fn check_rename(
        &self,
        ctx: &Ctx,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        noreplace: bool,
    ) -> MetaResult<Option<Plan>> {
        name::existing_name(name)?;
        name::existing_name(new_name)?;
        let from = self.object(parent)?;
        check_is_dir(from)?;
        let to = self.object(new_parent)?;
        check_is_dir(to)?;
        let (from, to): (Inode, Inode) = match (from, to) {
            (Target::Local(_, f), Target::Local(_, t)) => (*f, *t),
            (Target::Foreign(_), Target::Foreign(_)) => return Err(Errno::EREMOTE),
            _ => return Err(Errno::EXDEV),
        };
        perm::check(ctx.creds, &from, X_OK)?;
        perm::check(ctx.creds, &to, X_OK)?;
        let src = self.child_target(parent, name).ok_or(Errno::ENOENT)?;
        let dst = self.child_target(new_parent, new_name);
        if noreplace && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if let (Some(s), Some(d)) = (self.child(parent, name), self.child(new_parent, new_name)) {
            if s == d {
                return Ok(None);
            }
        }
        perm::check(ctx.creds, &from, W_OK)?;
        perm::check(ctx.creds, &to, W_OK)?;
        let Target::Local(src_ino, src_inode) = src else {
            return Err(Errno::EBUSY);
        };
        let dst = match dst {
            Some(Target::Foreign(_)) => return Err(Errno::EBUSY),
            Some(Target::Local(ino, inode)) => Some((ino, *inode)),
            None => None,
        };
        perm::check_sticky(ctx.creds, &from, src_inode)?;
        if let Some((_, d)) = &dst {
            perm::check_sticky(ctx.creds, &to, d)?;
        }
        let src_kind = src_inode.kind;
        if src_kind == FileType::Dir {
            if self.is_ancestor(src_ino, new_parent) {
                return Err(Errno::EINVAL);
            }
            if parent != new_parent {
                perm::check(ctx.creds, src_inode, W_OK)?;
            }
        }
        if let Some((d_ino, d)) = &dst {
            match (src_kind == FileType::Dir, d.kind == FileType::Dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.is_empty_dir(*d_ino) => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let replaces_dir = dst.is_some_and(|(_, d)| d.kind == FileType::Dir);
        if src_kind == FileType::Dir
            && parent != new_parent
            && !replaces_dir
            && to.nlink == u32::MAX
        {
            return Err(Errno::EMLINK);
        }
        Ok(Some(Plan {
            src: src_ino,
            src_kind,
            replaced: dst.map(|(ino, d)| (ino, d.kind)),
        }))
    }
}

/// A parent must be a directory (a foreign root is one).
fn check_is_dir(t: Target<'_>) -> MetaResult<()> {
    match t {
        Target::Local(_, i) if i.kind != FileType::Dir => Err(Errno::ENOTDIR),
        _ => Ok(()),
    }
}
