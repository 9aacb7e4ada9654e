//! Operations that remove a name: unlink, rmdir, and unmount of a foreign
//! subtree.

use super::changes::ChangeKind;
use super::name;
use super::namespace::{Ctx, Namespace, Target};
use super::ops::MetaReply;
use super::perm::{self, W_OK, X_OK};
use super::table::Inode;
use super::types::{Errno, FileType, Ino, MetaResult};

impl Namespace {
    /// Checks shared by unlink and rmdir: the caller may search and write
    /// `parent`, and the entry exists. Returns the directory and the entry.
    fn check_remove(&self, ctx: &Ctx, parent: Ino, name: &[u8]) -> MetaResult<(Inode, Target<'_>)> {
        name::existing_name(name)?;
        let dir = *self.dir(parent)?;
        perm::check(ctx.creds, &dir, X_OK)?;
        let target = self.child_target(parent, name).ok_or(Errno::ENOENT)?;
        perm::check(ctx.creds, &dir, W_OK | X_OK)?;
        Ok((dir, target))
    }

    pub(crate) fn unlink(&mut self, ctx: &Ctx, parent: Ino, name: &[u8]) -> MetaResult<MetaReply> {
        let (dir, target) = self.check_remove(ctx, parent, name)?;
        let (ino, inode) = match target {
            // Removing another ministry's subtree is the president's job.
            Target::Foreign(_) => return Err(Errno::EBUSY),
            Target::Local(ino, inode) => (ino, *inode),
        };
        perm::check_sticky(ctx.creds, &dir, &inode)?;
        if inode.kind == FileType::Dir {
            return Err(Errno::EISDIR);
        }

        assert_eq!(self.remove_entry(parent, name), ino);
        if self.drop_link(ino, parent) == 0 {
            self.free_inode(ino);
        } else {
            self.touch_meta(ino, ctx);
        }
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Unlink);
        Ok(MetaReply::Done)
    }

    pub(crate) fn rmdir(&mut self, ctx: &Ctx, parent: Ino, name: &[u8]) -> MetaResult<MetaReply> {
        let (dir, target) = self.check_remove(ctx, parent, name)?;
        let (ino, inode) = match target {
            Target::Foreign(_) => return Err(Errno::EBUSY),
            Target::Local(ino, inode) => (ino, *inode),
        };
        perm::check_sticky(ctx.creds, &dir, &inode)?;
        if inode.kind != FileType::Dir {
            return Err(Errno::ENOTDIR);
        }
        if !self.is_empty_dir(ino) {
            return Err(Errno::ENOTEMPTY);
        }

        assert_eq!(inode.nlink, 2, "an empty directory has two links");
        assert_eq!(self.remove_entry(parent, name), ino);
        self.free_inode(ino);
        self.inode_mut(parent).nlink -= 1;
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Rmdir);
        Ok(MetaReply::Done)
    }

    /// Removes the entry of a foreign subtree (EINVAL if it is local).
    pub(crate) fn unmount(&mut self, ctx: &Ctx, parent: Ino, name: &[u8]) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        let (_, target) = self.check_remove(ctx, parent, name)?;
        let Target::Foreign(root) = target else {
            return Err(Errno::EINVAL);
        };

        self.remove_foreign_entry(ctx, parent, name, root.ino);
        Ok(MetaReply::Done)
    }

    /// Removes the foreign root `ino` named (parent, name), checked. A
    /// detach whose image is kept then no longer has it to put back.
    pub(crate) fn remove_foreign_entry(&mut self, ctx: &Ctx, parent: Ino, name: &[u8], ino: Ino) {
        assert_eq!(self.remove_entry(parent, name), ino);
        let mount = self.foreign.remove(&ino).expect("a foreign root");
        if mount.kind == FileType::Dir {
            self.inode_mut(parent).nlink -= 1;
        }
        for export in self.exports.values_mut() {
            if export.mounted && export.image.root() == ino {
                export.mounted = false;
            }
        }
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Unmount);
    }
}
