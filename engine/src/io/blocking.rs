//! The fallback backend: `pwrite` and `fdatasync` through the page cache,
//! for hosts where io_uring is blocked (some container sandboxes) or for
//! filesystems without `O_DIRECT`. Works everywhere; one syscall per step.

use super::{AlignedBuf, Chosen, DiskError, DiskIo, IoFile, OpenMode};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub struct BlockingIo {
    /// Why io_uring is not used, for the log line (`None`: asked for).
    unavailable: Option<String>,
}

impl BlockingIo {
    pub fn new(unavailable: Option<String>) -> Self {
        BlockingIo { unavailable }
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
        opts.write(true);
        if mode == OpenMode::CreateNew {
            opts.create_new(true);
        }
        let file = opts.open(path).map_err(os("open"))?;
        Ok(IoFile {
            file,
            direct: false,
        })
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

    fn truncate(&mut self, file: &IoFile, len: u64) -> Result<(), DiskError> {
        file.file().set_len(len).map_err(os("ftruncate"))?;
        file.file().sync_all().map_err(os("fsync"))
    }
}
