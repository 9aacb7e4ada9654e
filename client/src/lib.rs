//! The GovFS client, async on tokio: talks to a cluster's nodes over
//! authenticated connections, follows the president's map to a ministry's
//! minister, and resends a change with the same request id until it is
//! answered, so a change applies once across failovers.
//!
//! Most programs want the namespace by path, [`FileSystem`]:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use govfs_client::{Client, ClientOptions, FileSystem, FsOptions};
//! use govfs_net::ClusterKey;
//!
//! let addrs = vec!["127.0.0.1:7001".parse()?, "127.0.0.1:7002".parse()?];
//! let key = ClusterKey::from_file("cluster.key")?;
//! let client = Client::connect(addrs, key, ClientOptions::default()).await?;
//! let mut fs = FileSystem::new(client, FsOptions::default());
//! fs.mkdir_all("/home/ada", 0o755).await?;
//! let (attr, _created) = fs.create("/home/ada/notes", 0o644, true).await?;
//! assert_eq!(fs.stat("/home/ada/notes").await?.ino, attr.ino);
//! for entry in fs.readdir("/home/ada").await? {
//!     println!("{}", String::from_utf8_lossy(&entry.name));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Underneath, a [`Session`] submits any ministry command exactly once:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use govfs_client::{Client, ClientOptions};
//! use govfs_net::ClusterKey;
//! use std::time::Duration;
//!
//! let addrs = vec!["127.0.0.1:7001".parse()?, "127.0.0.1:7002".parse()?];
//! let key = ClusterKey::from_file("cluster.key")?;
//! let client = Client::connect(addrs, key, ClientOptions::default()).await?;
//! let mut session = client.session();
//! let (index, answer) = session
//!     .submit(1, b"a ministry command".to_vec(), Duration::from_secs(10))
//!     .await?;
//! # let _ = (index, answer);
//! # Ok(())
//! # }
//! ```
//!
//! Runnable examples are in `client/examples/`: `kv_append` appends values
//! to a key of a cluster running the key-value app, `create_file` makes
//! directories and a file on one running the namespace. Both find the cluster through
//! `GOVFS_CLUSTER` and `GOVFS_KEY_FILE` (as printed by
//! `govfs cluster up --shell`):
//!
//! ```text
//! eval "$(govfs cluster up --nodes 3 --shell)"
//! cargo run --release -p govfs-client --example kv_append -- 7 100
//! ```
//!
//! # Connections
//!
//! A [`Client`] is a cheap handle (an `Arc` inside): clone it into as many
//! tasks as you like; every clone shares the same connections. It opens one
//! connection per node address
//! ([`ClientOptions::connections_per_node`]) the first time a request goes
//! there, runs the cluster-key handshake of `govfs-net` on it, and hands it
//! to a task that writes queued requests in batches and matches each
//! answer to its request by the frame's request id. So many requests are in
//! flight on one connection at once (pipelining), and answers may come back
//! in any order. At most [`ClientOptions::max_in_flight`] requests are in
//! flight per connection; more wait for a slot (back-pressure).
//!
//! A connection dies on any socket or framing error, and when a request
//! waited out [`ClientOptions::request_timeout`] while nothing at all
//! arrived on it (the node is stuck or gone); every request waiting on it
//! fails at once, and the next request to that node dials again.
//! Connections are driven by tasks spawned on the tokio runtime that ran
//! [`Client::connect`]; they end when the last clone of the client is
//! dropped.
//!
//! # Sessions, exactly-once and resends
//!
//! Each ministry keeps, per client id, the id of the last request it applied
//! and its answer (`govfs_core::node::Sessions`). A resent request with the
//! same `(client, seq)` is answered from there instead of being applied
//! again; a request older than the last is dropped. So a client id may have
//! only **one** request outstanding. A [`Session`] is that client id with
//! its request sequence: [`Client::session`] draws a fresh random id, and
//! [`Session::submit`] takes `&mut self`, so a session holds one request at
//! a time. For concurrency, give each task its own session (or several
//! sessions to one task to keep several requests outstanding); sessions
//! share the client's connections. The cluster remembers every session id,
//! so keep sessions for long rather than making one per request.
//!
//! [`Session::submit`] sends to the ministry's minister (the node that last
//! answered for the ministry, else the one the cluster map names), follows
//! `NotLeader` hints, and when a node fails or stays silent for one request
//! timeout, resends the **same** request to another member, until it is
//! answered or its deadline passes. A change acknowledged by a minister that
//! died right after is thus found by its successor, and a change whose
//! answer was lost is not applied twice.
//!
//! # The namespace by path
//!
//! [`FileSystem`] resolves a path to the ministry that holds it with the
//! cluster map's subtrees (fetched once, refreshed after a move), following
//! a foreign root met on the way with one redirect, and sends one namespace
//! request there: changes through the log, reads as [`ReadConsistency`]
//! says (by default from any member, session-consistent; or linearizable
//! through the log). A rename between ministries, removing a directory
//! another ministry holds, and [`FileSystem::split`] go through the
//! president. Failures are [`FsError`]s: the POSIX errno the namespace
//! answered (with the path), a path refused before sending, or the
//! underlying [`ClientError`]; [`FsError::errno`] maps each to a Linux
//! errno for FUSE and the C API.
//!
//! # Errors
//!
//! [`ClientError`] says what failed: `Net` (a connection to one node:
//! refused, reset, bad key, no answer in time; the source is a
//! [`NetError`]), `BadAnswer` (bytes we do not understand), `Refused` (the
//! node answered with an error), `NoNode` (nobody answered at all, with the
//! last error seen), and `Timeout` from [`Session::submit`], which names the
//! request: it may still apply, but at most once. Nothing received from the
//! network can make the client panic.

mod chunks;
mod client;
mod conn;
mod data_path;
mod error;
mod file;
mod fs;
mod lease;
mod readahead;
mod session;

pub use chunks::ReplicaAck;
pub use client::{Client, ClientOptions};
pub use error::{ClientError, NetError};
pub use file::{AsyncAck, Completion, File, OpenMode};
pub use fs::{FileSystem, FsError, FsOptions, ReadConsistency, MAX_REDIRECTS, PATH_MAX};
pub use lease::{LeaseGrant, LeaseLost, LeaseOptions, OnRefresh, RegionLease};
pub use session::Session;
