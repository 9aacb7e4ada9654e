//! The client's side of the RDMA data path (protocol in
//! `govfs_net::data_path`; the verbs behind this crate's `rdma` feature).
//!
//! The first chunk request to a storage node starts, in the background, a
//! setup: ask the node where its data path listens (`ClientMsg::DataPath`),
//! dial it, and when both ends have an RDMA device, set up a queue pair.
//! Until that is done, and whenever it is not possible, chunk requests go
//! over TCP as always; so does any request or answer that does not fit a
//! slot. A connection that fails or leaves a call unanswered past its
//! timeout is dropped, its calls are sent again over TCP, and the data
//! path to that node is tried again later.
//!
//! Each data-path connection has a thread of its own that owns the queue
//! pair: it copies each request into its registered memory, writes it into
//! a free slot of the node's buffer, and polls for the answers while calls
//! are out (spinning, then napping briefly); it blocks on its queue when
//! none are.
//!
//! With `GOVFS_DATA_PATH_OVER_TCP=1` (`govfs_net::data_path::OVER_TCP_ENV`)
//! on the client and the nodes, the same runs with the slots carried over
//! TCP, so tests exercise it where there is no RDMA device.

mod link;
mod routes;

use crate::client::Client;
use crate::conn::Body;
use crate::error::ClientError;
use govfs_core::node::ServerMsg;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) use routes::DataPaths;

impl Client {
    /// Sends the chunk request `body` to `addr` over its data path, if one
    /// is up and both `body` and an answer of `answer_len` bytes fit a
    /// slot. `None`: send it over TCP (starting the data path's setup
    /// first, where one could exist).
    pub(crate) async fn over_data_path(
        &self,
        addr: SocketAddr,
        body: &Body,
        answer_len: usize,
        timeout: Duration,
    ) -> Option<Result<ServerMsg, ClientError>> {
        routes::call(self, addr, body, answer_len, timeout).await
    }

    /// Chunk requests this client sent over data paths so far.
    pub fn data_path_calls(&self) -> u64 {
        self.data_paths().calls()
    }

    /// How chunk requests to the node at `addr` travel, and why: `data
    /// path: RDMA on DEVICE`, `data path: TCP (emulated)` (see the module),
    /// or `TCP: reason`.
    pub fn data_path(&self, addr: SocketAddr) -> String {
        routes::describe(self, addr)
    }
}
