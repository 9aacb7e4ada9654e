//! Handles: numbers naming an open connection to a cluster or an open
//! file, in registries, so a closed or made-up handle is refused instead
//! of dereferenced. Both kinds draw from one counter: a file handle passed
//! where a connection is expected (or the other way) is `-EBADF` too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use govfs_client::{Client, Completion, File, FileSystem, FsOptions};
use tokio::runtime::Runtime;

use crate::error::{Failure, GovfsStatus};

/// An open connection: its runtime, the client, and idle namespace
/// handles (each its own session) for calls to take and give back.
pub(crate) struct Handle {
    pub rt: Runtime,
    pub client: Client,
    pub opts: FsOptions,
    idle: Mutex<Vec<FileSystem>>,
}

/// Sessions kept idle per handle; more concurrent calls make more, and
/// the extra ones are dropped when given back.
const MAX_IDLE: usize = 64;

static NEXT: AtomicU64 = AtomicU64::new(1);
static OPEN: Mutex<Option<HashMap<u64, Arc<Handle>>>> = Mutex::new(None);
static FILES: Mutex<Option<HashMap<u64, Arc<FileHandle>>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<HashMap<u64, Arc<Handle>>>> {
    // A panic while holding it cannot leave the map half-changed (every
    // change is one insert or remove), so a poisoned lock is still good.
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
}

fn files() -> MutexGuard<'static, Option<HashMap<u64, Arc<FileHandle>>>> {
    // As for `registry`: one insert or remove per change.
    FILES.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handle {
    pub fn new(rt: Runtime, client: Client, opts: FsOptions) -> Handle {
        Handle {
            rt,
            client,
            opts,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` with a namespace handle of its own, on this handle's runtime.
    pub fn with_fs<T>(
        &self,
        f: impl AsyncFnOnce(&mut FileSystem) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut fs =
            taken.unwrap_or_else(|| FileSystem::new(self.client.clone(), self.opts.clone()));
        let out = self.rt.block_on(f(&mut fs));
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(fs);
        }
        out
    }
}

pub(crate) fn insert(handle: Handle) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry()
        .get_or_insert_with(HashMap::new)
        .insert(id, Arc::new(handle));
    id
}

pub(crate) fn get(id: u64) -> Result<Arc<Handle>, Failure> {
    registry()
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
        .ok_or_else(|| Failure::new(GovfsStatus::BadHandle, format!("handle {id} is not open")))
}

pub(crate) fn remove(id: u64) -> Result<Arc<Handle>, Failure> {
    registry()
        .as_mut()
        .and_then(|m| m.remove(&id))
        .ok_or_else(|| Failure::new(GovfsStatus::BadHandle, format!("handle {id} is not open")))
}

/// An open file: the connection it came from (kept open while the file is)
/// and the file's state behind a lock, so calls on one file from several
/// threads take turns while calls on different files run at once.
pub(crate) struct FileHandle {
    pub conn: Arc<Handle>,
    pub readable: bool,
    pub state: Mutex<FileState>,
}

pub(crate) struct FileState {
    /// `None` once closed (by a call that raced with this one).
    pub file: Option<File>,
    pub side: FileSide,
}

/// What the C API keeps about a file besides the client's `File`.
#[derive(Default)]
pub(crate) struct FileSide {
    /// Completions taken from the file and not yet handed to the caller
    /// (`govfs_poll_completions` with a small buffer).
    pub pending: std::collections::VecDeque<Completion>,
    /// The last async write id tried, so a non-growing one is `-EINVAL`.
    pub last_async_id: Option<u64>,
}

impl FileHandle {
    pub fn new(conn: Arc<Handle>, file: File, readable: bool) -> FileHandle {
        FileHandle {
            conn,
            readable,
            state: Mutex::new(FileState {
                file: Some(file),
                side: FileSide::default(),
            }),
        }
    }

    /// Locks the file's state. A panic in an earlier call is stopped at the
    /// boundary; the file's own state stays usable (every call re-checks
    /// its lease and in-flight writes), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn insert_file(file: FileHandle) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    files()
        .get_or_insert_with(HashMap::new)
        .insert(id, Arc::new(file));
    id
}

pub(crate) fn get_file(id: u64) -> Result<Arc<FileHandle>, Failure> {
    files()
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
        .ok_or_else(|| Failure::new(GovfsStatus::BadHandle, format!("file {id} is not open")))
}

pub(crate) fn remove_file(id: u64) -> Result<Arc<FileHandle>, Failure> {
    files()
        .as_mut()
        .and_then(|m| m.remove(&id))
        .ok_or_else(|| Failure::new(GovfsStatus::BadHandle, format!("file {id} is not open")))
}
