//! The namespace's half of moving subtrees between ministries: the steps
//! the president's transfer program (`crate::president::transfer`) sends to
//! the source and the target ministry.
//!
//! - split: `Detach` (source), `Attach` without a parent (target: a new
//!   top-level root), `ForgetExport` (source; its foreign root stays and
//!   redirects there);
//! - rename: `Detach`, `Attach` under the new name, `UnmountExport`,
//!   `ForgetExport`;
//! - a refused attach: `Reattach` (source) undoes the detach;
//! - removing a directory another ministry holds: `DropRoot` (target),
//!   then `Unmount` (source).
//!
//! Every step is root only and idempotent by the president's transfer id:
//! the source keeps the image under the id until `ForgetExport`, and both
//! sides keep a small record of each finished id, so a step resent after a
//! crash answers as the first one did and changes nothing more. Like every
//! operation, each checks everything first and then changes the state with
//! steps that cannot fail.

use serde::{Deserialize, Serialize};

use super::changes::ChangeKind;
use super::image::SubtreeImage;
use super::name;
use super::namespace::{Ctx, Mount, Namespace, Target};
use super::ops::MetaReply;
use super::types::{Errno, FileType, Ino, MetaResult, MinistryId};

/// A detach whose image the source keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Export {
    /// Where the detached entry was, and its foreign root is while
    /// `mounted`.
    pub parent: Ino,
    pub name: Box<[u8]>,
    pub to: MinistryId,
    /// The foreign root the detach left is still there (a reattach needs
    /// it; an unmount removes it).
    pub mounted: bool,
    pub image: SubtreeImage,
}

/// What became of a transfer this ministry took part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Finished {
    /// Source: the image was forgotten; whether the foreign root was still
    /// there then.
    Forgotten { mounted: bool },
    /// Source: the image was put back.
    Reattached,
    /// Target: the image was attached.
    Attached,
}

impl Namespace {
    pub(crate) fn detach(
        &mut self,
        ctx: &Ctx,
        transfer: u64,
        parent: Ino,
        name: &[u8],
        to: MinistryId,
    ) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        if let Some(e) = self.exports.get(&transfer) {
            if e.parent != parent || *e.name != *name || e.to != to {
                return Err(Errno::EINVAL);
            }
            return Ok(MetaReply::Detached(e.image.clone()));
        }
        if self.finished.contains_key(&transfer) {
            return Err(Errno::EINVAL);
        }
        name::existing_name(name)?;
        self.dir(parent)?;
        let (ino, kind) = match self.child_target(parent, name).ok_or(Errno::ENOENT)? {
            Target::Foreign(_) => return Err(Errno::EBUSY),
            Target::Local(ino, inode) => (ino, inode.kind),
        };
        let image = self.image_of(ino)?;

        // The entry stays: it names the foreign root now, with the same
        // number, and counts in the parent's nlink as the same type.
        self.cut(&image);
        self.foreign.insert(
            ino,
            Mount {
                ministry: to,
                parent,
                kind,
            },
        );
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Detach);
        self.exports.insert(
            transfer,
            Export {
                parent,
                name: Box::from(name),
                to,
                mounted: true,
                image: image.clone(),
            },
        );
        Ok(MetaReply::Detached(image))
    }

    pub(crate) fn attach(
        &mut self,
        ctx: &Ctx,
        transfer: u64,
        parent: Option<(Ino, &[u8])>,
        image: &SubtreeImage,
    ) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        match self.finished.get(&transfer) {
            Some(Finished::Attached) => return Ok(MetaReply::Done),
            Some(_) => return Err(Errno::EINVAL),
            None if self.exports.contains_key(&transfer) => return Err(Errno::EINVAL),
            None => {}
        }
        image.check().map_err(|_| Errno::EINVAL)?;
        let kind = image.kind();
        match parent {
            Some((dir, name)) => {
                name::new_name(name)?;
                let d = self.dir(dir)?;
                if self.child(dir, name).is_some() {
                    return Err(Errno::EEXIST);
                }
                if kind == FileType::Dir && d.nlink == u32::MAX {
                    return Err(Errno::EMLINK);
                }
            }
            None if kind != FileType::Dir => return Err(Errno::ENOTDIR),
            None => {}
        }
        if !self.image_fits(image, None) {
            return Err(Errno::EINVAL);
        }

        let root = image.root();
        match parent {
            Some((dir, name)) => {
                self.paste(image, dir);
                self.insert_entry(dir, name, root);
                if kind == FileType::Dir {
                    self.inode_mut(dir).nlink += 1;
                }
                self.touch_dir(dir, ctx);
                self.record(ctx, root, dir, name, ChangeKind::Attach);
            }
            None => {
                self.paste(image, root);
                self.roots.insert(root);
                self.record(ctx, root, root, b"", ChangeKind::Attach);
            }
        }
        self.finished.insert(transfer, Finished::Attached);
        Ok(MetaReply::Done)
    }

    pub(crate) fn unmount_export(&mut self, ctx: &Ctx, transfer: u64) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        let Some(e) = self.exports.get(&transfer) else {
            return match self.finished.get(&transfer) {
                Some(Finished::Forgotten { mounted: false }) => Ok(MetaReply::Done),
                _ => Err(Errno::EINVAL),
            };
        };
        if e.mounted {
            let (parent, name, root) = (e.parent, e.name.clone(), e.image.root());
            self.remove_foreign_entry(ctx, parent, &name, root);
        }
        Ok(MetaReply::Done)
    }

    pub(crate) fn forget_export(&mut self, ctx: &Ctx, transfer: u64) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        if let Some(e) = self.exports.remove(&transfer) {
            let mounted = e.mounted;
            self.finished
                .insert(transfer, Finished::Forgotten { mounted });
            return Ok(MetaReply::Done);
        }
        match self.finished.get(&transfer) {
            Some(Finished::Forgotten { .. } | Finished::Reattached) => Ok(MetaReply::Done),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn reattach(&mut self, ctx: &Ctx, transfer: u64) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        let Some(e) = self.exports.get(&transfer) else {
            return match self.finished.get(&transfer) {
                Some(Finished::Reattached) => Ok(MetaReply::Done),
                _ => Err(Errno::EINVAL),
            };
        };
        if !e.mounted {
            return Err(Errno::EINVAL);
        }
        let root = e.image.root();
        if !self.image_fits(&e.image, Some(root)) {
            return Err(Errno::EBUSY);
        }

        let e = self.exports.remove(&transfer).expect("found above");
        self.foreign.remove(&root).expect("a mounted export's root");
        self.paste(&e.image, e.parent);
        self.touch_dir(e.parent, ctx);
        self.record(ctx, root, e.parent, &e.name, ChangeKind::Reattach);
        self.finished.insert(transfer, Finished::Reattached);
        Ok(MetaReply::Done)
    }

    pub(crate) fn drop_root(&mut self, ctx: &Ctx, ino: Ino) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        if !self.roots.contains(&ino) {
            let known = self.inodes.get(ino).is_some() || self.foreign.contains_key(&ino);
            return if known {
                Err(Errno::EINVAL)
            } else {
                Ok(MetaReply::Done)
            };
        }
        if !self.is_empty_dir(ino) {
            return Err(Errno::ENOTEMPTY);
        }

        self.record(ctx, ino, ino, b"", ChangeKind::DropRoot);
        self.free_inode(ino);
        self.roots.remove(&ino);
        Ok(MetaReply::Done)
    }
}
