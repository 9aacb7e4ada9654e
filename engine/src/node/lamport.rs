//! The node's Lamport clock (seed 000): every message this node sends
//! another carries its time ([`govfs_core::node::Stamped`]), every message
//! it receives moves the clock past the sender's, and the storage shards
//! stamp writes past it and move it past their stamps. So a write stamped
//! on one node after it heard, however indirectly, of a write on another
//! gets the larger stamp, whichever nodes the news travelled through.
//!
//! The clock never goes back across restarts: like each storage shard, the
//! node keeps a floor ahead of it on disk (`lamport` in the data
//! directory), raised in steps of [`FLOOR_STEP`], so a sync happens once
//! per million events at most.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use govfs_core::data::{LamportError, Stamp, MAX_OBSERVED};
use tracing::error;

/// The Lamport floor on disk runs this far ahead of the clock.
pub const FLOOR_STEP: u64 = 1 << 20;

/// An on-disk Lamport floor: the clock starts at it after a restart.
pub struct Floor {
    path: PathBuf,
    pub at: u64,
    /// What is on disk: the clock may run up to this before it is raised.
    bound: u64,
}

impl Floor {
    /// The floor in `dir/lamport` (0 when there is none yet), raised at once.
    pub fn open(dir: &Path) -> std::io::Result<Floor> {
        let path = dir.join("lamport");
        let at = match std::fs::read(&path) {
            Ok(b) if b.len() == 8 => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "lamport floor file is not 8 bytes",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut f = Floor {
            path,
            at,
            bound: at,
        };
        f.raise(at)?;
        Ok(f)
    }

    /// What the clock may reach before the floor must be raised.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Makes sure the floor on disk is above `now` before a stamp past the
    /// old floor is handed out.
    pub fn raise(&mut self, now: u64) -> std::io::Result<()> {
        if now < self.bound {
            return Ok(());
        }
        let next = now.saturating_add(FLOOR_STEP);
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&next.to_le_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.bound = next;
        Ok(())
    }
}

/// The clock every core loop and storage shard of the node shares.
pub struct NodeClock {
    now: AtomicU64,
    /// Mirrors `floor.bound()`: read without the lock on every send.
    bound: AtomicU64,
    floor: Mutex<Floor>,
}

impl NodeClock {
    pub fn open(dir: &Path) -> std::io::Result<NodeClock> {
        std::fs::create_dir_all(dir)?;
        let floor = Floor::open(dir)?;
        Ok(NodeClock {
            now: AtomicU64::new(floor.at),
            bound: AtomicU64::new(floor.bound()),
            floor: Mutex::new(floor),
        })
    }

    pub fn now(&self) -> Stamp {
        self.now.load(Ordering::Acquire)
    }

    /// The time of a message this node sends (an event of its own).
    pub fn send(&self) -> Stamp {
        let t = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.keep_floor_above(t);
        t
    }

    /// Moves the clock past `remote`, a time some other party sent. A time
    /// beyond [`MAX_OBSERVED`] is refused: it would exhaust the clock.
    pub fn observe(&self, remote: Stamp) -> Result<(), LamportError> {
        if remote > MAX_OBSERVED {
            return Err(LamportError::TooFarAhead(remote));
        }
        let before = self.now.fetch_max(remote, Ordering::AcqRel);
        if remote > before {
            self.keep_floor_above(remote);
        }
        Ok(())
    }

    fn keep_floor_above(&self, t: Stamp) {
        if t < self.bound.load(Ordering::Acquire) {
            return;
        }
        let mut floor = self.floor.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = floor.raise(t) {
            // Messages still go out (Raft and leases must not stop on a
            // full disk); a restart may then reuse times sent since.
            error!("cannot raise the node's Lamport floor: {e}");
            return;
        }
        self.bound.store(floor.bound(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_what_it_hears_and_never_goes_back_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = NodeClock::open(dir.path()).expect("open");
        assert_eq!(clock.now(), 0);
        assert_eq!(clock.send(), 1);
        clock.observe(10).expect("observe");
        assert_eq!(clock.send(), 11, "past what it heard");
        clock.observe(5).expect("an older time changes nothing");
        assert_eq!(clock.now(), 11);
        assert!(clock.observe(MAX_OBSERVED + 1).is_err());
        assert_eq!(clock.now(), 11, "a refused time changes nothing");
        // Past the floor: it is raised before the time is used.
        clock.observe(3 * FLOOR_STEP).expect("observe");
        let sent = clock.send();
        drop(clock);
        let again = NodeClock::open(dir.path()).expect("reopen");
        assert!(again.now() > sent, "{} after {sent}", again.now());
        assert!(again.send() > sent);
    }
}
