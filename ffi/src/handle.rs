//! Handles: numbers naming an open connection to a cluster, in a registry,
//! so a closed or made-up handle is refused instead of dereferenced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use govfs_client::{Client, FileSystem, FsOptions};
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

fn registry() -> MutexGuard<'static, Option<HashMap<u64, Arc<Handle>>>> {
    // A panic while holding it cannot leave the map half-changed (every
    // change is one insert or remove), so a poisoned lock is still good.
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
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
