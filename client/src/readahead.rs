//! Readahead for a sequential reader: while the caller works on one read,
//! the next ones are already on their way to the storage nodes, so a
//! reader one request at a time overlaps its own work, the network and the
//! disk instead of waiting on each in turn.
//!
//! Only reads the caller would make next are started: the same length,
//! right after the last one, within one chunk and the file's size. A read
//! started ahead goes to one replica; anything but verified bytes (a
//! refusal, a corrupt block, a node down) is dropped and the caller reads
//! the usual way, through every replica in turn, so readahead never changes
//! what a read returns or which errors it reports. The handle's own writes
//! drop everything started ahead (their bytes may be older).

use std::collections::VecDeque;

use govfs_core::data::ChunkId;
use govfs_core::raft::NodeId;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::ClientError;

/// A read started ahead: the bytes, or why the replica did not give them.
pub(crate) type Fetch = JoinHandle<Result<Vec<u8>, ClientError>>;

/// Reads in flight ahead at most, whatever their size.
const MAX_AHEAD: usize = 8;

struct Ahead {
    offset: u64,
    len: u64,
    /// The chunk version it was asked at: a chunk placed again since is
    /// read anew.
    version: u64,
    task: Fetch,
}

/// The reads started ahead of one handle, oldest first.
pub(crate) struct Readahead {
    /// Bytes to keep in flight ahead of the reader (0: off).
    window: u64,
    ahead: VecDeque<Ahead>,
    /// Where the last read ended: a read starting here is sequential.
    end: u64,
    /// Reads answered with bytes read ahead.
    pub(crate) hits: u64,
}

impl Readahead {
    pub(crate) fn new(window: u64) -> Self {
        Readahead {
            window,
            ahead: VecDeque::new(),
            end: 0,
            hits: 0,
        }
    }

    /// Notes a read of `[offset, offset + len)` at `version`: whether it is
    /// sequential (it starts where the last ended; the first read of the
    /// file at 0 counts), and its bytes if they were started ahead.
    /// Everything ahead of another read is dropped (the reader jumped).
    pub(crate) fn take(&mut self, offset: u64, len: u64, version: u64) -> (Option<Fetch>, bool) {
        let sequential = offset == self.end;
        self.end = offset.saturating_add(len);
        if !sequential {
            self.clear();
            return (None, false);
        }
        let Some(first) = self.ahead.pop_front() else {
            return (None, true);
        };
        if (first.offset, first.len, first.version) == (offset, len, version) {
            return (Some(first.task), true);
        }
        first.task.abort();
        self.clear();
        (None, true)
    }

    /// Notes a read this module does not serve (several pieces, or larger
    /// than one): nothing ahead stays.
    pub(crate) fn passed(&mut self, end: u64) {
        self.clear();
        self.end = end;
    }

    /// Whether a read of `len` bytes is to be started at `next` (the end of
    /// the reads already ahead): the reader is sequential, the window has
    /// room for it, and fewer than [`MAX_AHEAD`] are in flight.
    pub(crate) fn wants(&self, len: u64) -> Option<u64> {
        let next = self.ahead.back().map_or(self.end, |a| a.offset + a.len);
        let queued = next - self.end;
        (self.window > 0 && len > 0 && self.ahead.len() < MAX_AHEAD && queued + len <= self.window)
            .then_some(next)
    }

    /// Starts reading `len` bytes at `offset` of `chunk` (at `chunk_offset`
    /// in it) from `node`. `offset` must be what [`Self::wants`] gave.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        client: Client,
        node: NodeId,
        chunk: ChunkId,
        version: u64,
        offset: u64,
        chunk_offset: u64,
        len: u32,
    ) {
        debug_assert_eq!(
            self.ahead.back().map_or(self.end, |a| a.offset + a.len),
            offset
        );
        let task = tokio::spawn(async move {
            client
                .read_chunk(node, chunk, version, chunk_offset, len)
                .await
        });
        self.ahead.push_back(Ahead {
            offset,
            len: u64::from(len),
            version,
            task,
        });
    }

    /// Bytes kept in flight ahead from now on (0: none).
    pub(crate) fn set_window(&mut self, window: u64) {
        self.clear();
        self.window = window;
    }

    /// Drops every read started ahead (the handle wrote, or the reader
    /// jumped).
    pub(crate) fn clear(&mut self) {
        for a in self.ahead.drain(..) {
            a.task.abort();
        }
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        self.clear();
    }
}
