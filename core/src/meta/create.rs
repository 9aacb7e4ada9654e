//! Operations that add a name: mkdir, create, symlink, link; and the
//! administrative ones that add inode numbers or a foreign subtree.

use super::changes::ChangeKind;
use super::name;
use super::namespace::{Ctx, Mount, Namespace, Target, LINK_MAX};
use super::ops::MetaReply;
use super::perm::{self, W_OK, X_OK};
use super::table::Inode;
use super::types::{Errno, FileType, ForeignRoot, Ino, Layout, MetaResult, MODE_MASK, S_ISGID};

impl Namespace {
    /// Checks shared by every new name: `parent` is a local directory the
    /// caller may search, `name` is not taken, and the caller may write.
    fn check_new_entry(&self, ctx: &Ctx, parent: Ino, name: &[u8]) -> MetaResult<Inode> {
        let dir = *self.dir(parent)?;
        perm::check(ctx.creds, &dir, X_OK)?;
        if self.child(parent, name).is_some() {
            return Err(Errno::EEXIST);
        }
        perm::check(ctx.creds, &dir, W_OK)?;
        Ok(dir)
    }

    /// A new inode's fields. Its group is the directory's when the directory
    /// is set-group-ID (and a new directory inherits the bit), else the
    /// caller's; a caller outside that group cannot set set-group-ID.
    fn fresh(&self, ctx: &Ctx, dir: &Inode, parent: Ino, kind: FileType, mode: u32) -> Inode {
        let inherit = dir.mode & S_ISGID != 0;
        let gid = if inherit { dir.gid } else { ctx.creds.gid };
        let mut mode = mode;
        if kind == FileType::Dir && inherit {
            mode |= S_ISGID;
        } else if mode & S_ISGID != 0 && !ctx.creds.is_root() && !ctx.creds.in_group(gid) {
            mode &= !S_ISGID;
        }
        Inode {
            size: 0,
            atime: ctx.now,
            mtime: ctx.now,
            ctime: ctx.now,
            meta_seq: ctx.index,
            data_seq: ctx.index,
            parent,
            mode,
            uid: ctx.creds.uid,
            gid,
            nlink: if kind == FileType::Dir { 2 } else { 1 },
            chunk_size: dir.chunk_size,
            stripe_count: dir.stripe_count,
            replicas: dir.replicas,
            kind,
        }
    }

    pub(crate) fn mkdir(
        &mut self,
        ctx: &Ctx,
        parent: Ino,
        name: &[u8],
        mode: u32,
    ) -> MetaResult<MetaReply> {
        name::new_name(name)?;
        check_mode(mode)?;
        let dir = self.check_new_entry(ctx, parent, name)?;
        if dir.nlink == u32::MAX {
            return Err(Errno::EMLINK);
        }
        let ino = self.peek_free()?;
        let inode = self.fresh(ctx, &dir, parent, FileType::Dir, mode);

        assert_eq!(self.take_free(), ino);
        self.new_inode(ino, inode);
        self.insert_entry(parent, name, ino);
        self.inode_mut(parent).nlink += 1;
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Mkdir);
        Ok(MetaReply::Attr(self.attr_of(ino)))
    }

    pub(crate) fn create(
        &mut self,
        ctx: &Ctx,
        parent: Ino,
        name: &[u8],
        mode: u32,
        exclusive: bool,
        layout: Option<Layout>,
    ) -> MetaResult<MetaReply> {
        name::new_name(name)?;
        check_mode(mode)?;
        if layout.is_some_and(|l| !l.is_valid()) {
            return Err(Errno::EINVAL);
        }
        let dir = *self.dir(parent)?;
        perm::check(ctx.creds, &dir, X_OK)?;
        if let Some(existing) = self.child_target(parent, name) {
            // O_CREAT without O_EXCL opens what is there, if it is a file.
            return match existing {
                _ if exclusive => Err(Errno::EEXIST),
                Target::Foreign(_) => Err(Errno::EISDIR),
                Target::Local(_, i) if i.kind == FileType::Dir => Err(Errno::EISDIR),
                // The client follows a symlink itself and creates its target.
                Target::Local(_, i) if i.kind == FileType::Symlink => Err(Errno::EEXIST),
                Target::Local(ino, i) => Ok(MetaReply::Created {
                    attr: self.attr(ino, i),
                    created: false,
                }),
            };
        }
        perm::check(ctx.creds, &dir, W_OK)?;
        let ino = self.peek_free()?;
        let mut inode = self.fresh(ctx, &dir, parent, FileType::File, mode);
        if let Some(layout) = layout {
            inode.set_layout(layout);
        }

        assert_eq!(self.take_free(), ino);
        self.new_inode(ino, inode);
        self.insert_entry(parent, name, ino);
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Create);
        Ok(MetaReply::Created {
            attr: self.attr_of(ino),
            created: true,
        })
    }

    pub(crate) fn symlink(
        &mut self,
        ctx: &Ctx,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> MetaResult<MetaReply> {
        name::new_name(name)?;
        name::check_target(target)?;
        let dir = self.check_new_entry(ctx, parent, name)?;
        let ino = self.peek_free()?;
        let mut inode = self.fresh(ctx, &dir, parent, FileType::Symlink, 0o777);
        inode.mode = 0o777;
        inode.size = target.len() as u64;

        assert_eq!(self.take_free(), ino);
        self.new_inode(ino, inode);
        self.symlinks.insert(ino, Box::from(target));
        self.insert_entry(parent, name, ino);
        self.touch_dir(parent, ctx);
        self.record(ctx, ino, parent, name, ChangeKind::Symlink);
        Ok(MetaReply::Attr(self.attr_of(ino)))
    }

    /// link(2). EXDEV when the file or the new directory belongs to another
    /// ministry: a name and its inode must live in the same ministry.
    pub(crate) fn link(
        &mut self,
        ctx: &Ctx,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
    ) -> MetaResult<MetaReply> {
        name::new_name(new_name)?;
        let source = self.object(ino)?;
        let parent = self.object(new_parent)?;
        if let Target::Local(_, p) = parent {
            if p.kind != FileType::Dir {
                return Err(Errno::ENOTDIR);
            }
        }
        let (Target::Local(_, inode), Target::Local(_, dir)) = (source, parent) else {
            return Err(Errno::EXDEV);
        };
        let (inode, dir) = (*inode, *dir);
        perm::check(ctx.creds, &dir, X_OK)?;
        if self.child(new_parent, new_name).is_some() {
            return Err(Errno::EEXIST);
        }
        perm::check(ctx.creds, &dir, W_OK)?;
        if inode.kind == FileType::Dir {
            return Err(Errno::EPERM);
        }
        if inode.nlink >= LINK_MAX {
            return Err(Errno::EMLINK);
        }

        self.add_link(ino, new_parent);
        self.insert_entry(new_parent, new_name, ino);
        self.touch_meta(ino, ctx);
        self.touch_dir(new_parent, ctx);
        self.record(ctx, ino, new_parent, new_name, ChangeKind::Link);
        Ok(MetaReply::Attr(self.attr_of(ino)))
    }

    /// Adds the president's range `start..start+count` of inode numbers.
    pub(crate) fn grant_inodes(
        &mut self,
        ctx: &Ctx,
        start: u64,
        count: u64,
    ) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        let end = start.checked_add(count).ok_or(Errno::EINVAL)?;
        if count == 0 || start < self.granted_to || self.number_used(start, end) {
            return Err(Errno::EINVAL);
        }
        self.free.push_back((start, end));
        self.free_count += count;
        self.granted_to = end;
        Ok(MetaReply::Done)
    }

    /// Hangs another ministry's subtree at (parent, name). Counts as a
    /// subdirectory of `parent`.
    pub(crate) fn mount(
        &mut self,
        ctx: &Ctx,
        parent: Ino,
        name: &[u8],
        root: ForeignRoot,
    ) -> MetaResult<MetaReply> {
        if !ctx.creds.is_root() {
            return Err(Errno::EPERM);
        }
        name::new_name(name)?;
        // Another ministry's number: never one of ours, used or free.
        let ours = self.inodes.get(root.ino).is_some() || self.is_free(root.ino);
        if root.ino.0 == 0 || ours || self.foreign.contains_key(&root.ino) {
            return Err(Errno::EINVAL);
        }
        let dir = self.check_new_entry(ctx, parent, name)?;
        if dir.nlink == u32::MAX {
            return Err(Errno::EMLINK);
        }

        self.foreign.insert(
            root.ino,
            Mount {
                ministry: root.ministry,
                parent,
                kind: FileType::Dir,
            },
        );
        self.insert_entry(parent, name, root.ino);
        self.inode_mut(parent).nlink += 1;
        self.touch_dir(parent, ctx);
        self.record(ctx, root.ino, parent, name, ChangeKind::Mount);
        Ok(MetaReply::Done)
    }
}

/// Modes carry permission and special bits only (the type is the
/// operation's): anything else is EINVAL.
pub(crate) fn check_mode(mode: u32) -> MetaResult<()> {
    if mode & !MODE_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}
