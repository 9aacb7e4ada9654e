//! The fallback backend: `pwrite` and `fdatasync` through the page cache,
//! for hosts where io_uring is blocked (some container sandboxes) or for
//! filesystems without `O_DIRECT`. Works everywhere; one syscall per step.
//!
//! Its "asynchronous" write+sync and read are synchronous: the work is done
//! at submit time and the result handed out at the next poll. Callers get
//! the same interface as with io_uring but no overlap of IO with their own
//! work.

use super::{AlignedBuf, Chosen, Completion, DiskError, DiskIo, IoFile, OpenMode, SubmissionId};
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub struct BlockingIo {
    /// Why io_uring is not used, for the log line (`None`: asked for).
    unavailable: Option<String>,
    /// Last id handed out by `submit_write_and_sync` or `submit_read`.
    last_id: SubmissionId,
    /// Submissions done but not reaped yet, oldest first.
    done: VecDeque<Completion>,
}

impl BlockingIo {
    pub fn new(unavailable: Option<String>) -> Self {
        BlockingIo {
            unavailable,
            last_id: 0,
            done: VecDeque::new(),
        }
    }
}

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> DiskError {
    move |source| DiskError::Os { op, source }
}

impl DiskIo for BlockingIo {
    fn chosen(&self) -> Chosen {
        Chosen::Blocking {
            unavailable: self.unavailable.clone(),
        }
    }

    fn open(&mut self, path: &Path, mode: OpenMode) -> Result<IoFile, DiskError> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if mode == OpenMode::CreateNew {
            opts.create_new(true);
        }
        let file = opts.open(path).map_err(os("open"))?;
        Ok(IoFile::new(file, false))
    }

    fn buffer(&mut self, capacity: usize) -> AlignedBuf {
        AlignedBuf::new(capacity)
    }

    fn write_at(&mut self, file: &IoFile, offset: u64, buf: &AlignedBuf) -> Result<(), DiskError> {
        file.check_aligned(offset, buf)?;
        // `write_all_at` retries short writes and EINTR; a zero-length write is `WriteZero`.
        file.file()
            .write_all_at(buf.as_slice(), offset)
            .map_err(os("pwrite"))
    }

    fn write_at_and_sync(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
    ) -> Result<(), DiskError> {
        self.write_at(file, offset, buf)?;
        self.sync(file)
    }

    fn sync(&mut self, file: &IoFile) -> Result<(), DiskError> {
        file.file().sync_data().map_err(os("fdatasync"))
    }

    fn read_at(
        &mut self,
        file: &IoFile,
        offset: u64,
        len: usize,
        buf: &mut AlignedBuf,
    ) -> Result<(), DiskError> {
        file.check_aligned_read(offset, len)?;
        let dst = buf.prepare_read(len);
        let mut done = 0;
        while done < len {
            match file.file().read_at(&mut dst[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(os("pread")(e)),
            }
        }
        buf.truncate(done);
        Ok(())
    }

    fn truncate(&mut self, file: &IoFile, len: u64) -> Result<(), DiskError> {
        file.file().set_len(len).map_err(os("ftruncate"))?;
        file.file().sync_all().map_err(os("fsync"))
    }

    /// Writes and syncs now; the result waits for the next poll.
    fn submit_write_and_sync(
        &mut self,
        file: &IoFile,
        offset: u64,
        buf: &AlignedBuf,
    ) -> Result<SubmissionId, DiskError> {
        file.check_aligned(offset, buf)?;
        let result = self.write_at_and_sync(file, offset, buf);
        self.last_id += 1;
        self.done.push_back((self.last_id, result));
        Ok(self.last_id)
    }

    /// Reads now; the result waits for the next poll. The buffer is never
    /// left in flight, but one still in flight on another backend is refused.
    fn submit_read(
        &mut self,
        file: &IoFile,
        offset: u64,
        len: usize,
        buf: &mut AlignedBuf,
    ) -> Result<SubmissionId, DiskError> {
        file.check_aligned_read(offset, len)?;
        if buf.read_in_flight() {
            return Err(DiskError::BufferInUse);
        }
        let dst = buf.prepare_read(len);
        let mut done = 0;
        let result = loop {
            if done == len {
                break Ok(());
            }
            match file.file().read_at(&mut dst[done..], offset + done as u64) {
                Ok(0) => break Err(DiskError::ShortRead { read: done, len }),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(os("pread")(e)),
            }
        };
        self.last_id += 1;
        self.done.push_back((self.last_id, result));
        Ok(self.last_id)
    }

    fn poll_completions(&mut self, out: &mut Vec<Completion>) {
        out.extend(self.done.drain(..));
    }

    fn wait_completion(&mut self, id: SubmissionId) -> Result<(), DiskError> {
        let at = self
            .done
            .iter()
            .position(|(done, _)| *done == id)
            .ok_or(DiskError::UnknownSubmission { id })?;
        let (_, result) = self.done.remove(at).expect("position is in range");
        result
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }
}
