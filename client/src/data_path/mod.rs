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
//! a free slot of the node's buffer, and polls for the answers (without
//! sleeping while calls are out; blocked on its queue when none are).

#[cfg_attr(not(feature = "rdma"), allow(dead_code))]
mod link;

use crate::client::Client;
use crate::conn::Body;
use crate::error::ClientError;
use govfs_core::node::ServerMsg;
use std::net::SocketAddr;
use std::time::Duration;

/// This client's data-path connections, one per storage node address.
#[cfg(feature = "rdma")]
#[derive(Default)]
pub(crate) struct DataPaths {
    routes: rdma::Routes,
}

impl Client {
    /// Sends the chunk request `body` to `addr` over its RDMA data path, if
    /// one is up and both `body` and an answer of `answer_len` bytes fit a
    /// slot. `None`: send it over TCP (starting the data path's setup
    /// first, where one could exist).
    pub(crate) async fn over_data_path(
        &self,
        addr: SocketAddr,
        body: &Body,
        answer_len: usize,
        timeout: Duration,
    ) -> Option<Result<ServerMsg, ClientError>> {
        #[cfg(feature = "rdma")]
        {
            rdma::call(self, addr, body, answer_len, timeout).await
        }
        #[cfg(not(feature = "rdma"))]
        {
            let _ = (addr, body, answer_len, timeout);
            None
        }
    }

    /// Chunk requests this client sent over RDMA data paths so far.
    pub fn data_path_calls(&self) -> u64 {
        #[cfg(feature = "rdma")]
        {
            self.data_paths()
                .routes
                .calls
                .load(std::sync::atomic::Ordering::Relaxed)
        }
        #[cfg(not(feature = "rdma"))]
        {
            0
        }
    }

    /// How chunk requests to the node at `addr` travel, and why.
    pub fn data_path(&self, addr: SocketAddr) -> String {
        #[cfg(feature = "rdma")]
        {
            rdma::describe(self, addr)
        }
        #[cfg(not(feature = "rdma"))]
        {
            let _ = addr;
            govfs_net::rdma_choice::Choice::Tcp(govfs_net::rdma_choice::TcpReason::NotBuilt)
                .to_string()
        }
    }
}

#[cfg(feature = "rdma")]
mod rdma {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    use std::time::{Duration, Instant};

    use govfs_core::node::{ClientMsg, ServerMsg};
    use govfs_net::data_path::{dial, RdmaSlots, SlotLayout};
    use govfs_net::rdma_choice::{Choice, LocalRdma, TcpReason};
    use govfs_net::{ClusterKey, Identity};
    use tracing::{info, warn};

    use super::link::Link;
    use crate::client::Client;
    use crate::conn::Body;
    use crate::error::ClientError;

    /// How long a node without a data path, or one whose setup failed,
    /// stays on TCP before the next try.
    const RETRY: Duration = Duration::from_secs(30);

    #[derive(Default)]
    pub(super) struct Routes {
        map: Mutex<HashMap<SocketAddr, Route>>,
        pub(super) calls: AtomicU64,
        local: OnceLock<LocalRdma>,
    }

    enum Route {
        Connecting,
        Ready(Arc<Link>),
        Tcp { why: String, retry_at: Instant },
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn local(routes: &Routes) -> LocalRdma {
        *routes.local.get_or_init(LocalRdma::probe)
    }

    pub(super) fn describe(client: &Client, addr: SocketAddr) -> String {
        let routes = &client.data_paths().routes;
        if local(routes) != LocalRdma::Available {
            return Choice::Tcp(TcpReason::NoLocalDevice).to_string();
        }
        match lock(&routes.map).get(&addr) {
            None => "TCP: no chunk request sent yet".into(),
            Some(Route::Connecting) => "TCP: RDMA data path being set up".into(),
            Some(Route::Ready(link)) if !link.is_dead() => format!("RDMA ({})", link.name()),
            Some(Route::Ready(_)) => "TCP: RDMA data path lost".into(),
            Some(Route::Tcp { why, .. }) => format!("TCP: {why}"),
        }
    }

    pub(super) async fn call(
        client: &Client,
        addr: SocketAddr,
        body: &Body,
        answer_len: usize,
        timeout: Duration,
    ) -> Option<Result<ServerMsg, ClientError>> {
        let routes = &client.data_paths().routes;
        if local(routes) != LocalRdma::Available {
            return None;
        }
        let link = {
            let mut map = lock(&routes.map);
            match map.get(&addr) {
                Some(Route::Ready(link)) if !link.is_dead() => Arc::clone(link),
                Some(Route::Connecting) => return None,
                Some(Route::Tcp { retry_at, .. }) if Instant::now() < *retry_at => return None,
                _ => {
                    map.insert(addr, Route::Connecting);
                    drop(map);
                    tokio::spawn(set_up(client.clone(), addr));
                    return None;
                }
            }
        };
        let layout = link.layout();
        if !layout.fits(body.len()) || !layout.fits(answer_len) {
            return None;
        }
        routes.calls.fetch_add(1, Ordering::Relaxed);
        match link.call(Arc::clone(body), timeout).await {
            Ok(bytes) => Some(
                govfs_core::codec::decode_exact::<ServerMsg>(&bytes).map_err(|e| {
                    ClientError::BadAnswer {
                        addr,
                        reason: format!("over the RDMA data path: {e}"),
                    }
                }),
            ),
            Err(why) => {
                // This call, and the next ones for a while, go over TCP.
                warn!(%addr, "RDMA data path dropped: {why}");
                lock(&routes.map).insert(
                    addr,
                    Route::Tcp {
                        why: format!("RDMA data path dropped: {why}"),
                        retry_at: Instant::now() + RETRY,
                    },
                );
                None
            }
        }
    }

    async fn set_up(client: Client, addr: SocketAddr) {
        let route = match client.call(addr, &ClientMsg::DataPath).await {
            Ok(ServerMsg::DataPath(info)) => match info.rdma_port {
                None => Err("the node has no RDMA data path".to_string()),
                Some(port) => {
                    let to = SocketAddr::new(addr.ip(), port);
                    let (key, local) = client.identity();
                    let timeout = client.options().request_timeout;
                    match tokio::task::spawn_blocking(move || open(to, &key, local, timeout)).await
                    {
                        Ok(Ok(link)) => Ok(link),
                        Ok(Err(why)) => Err(why),
                        Err(e) => Err(format!("setup task: {e}")),
                    }
                }
            },
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        let route = match route {
            Ok(link) => {
                info!(%addr, device = %link.name(), "chunk requests go over RDMA");
                Route::Ready(Arc::new(link))
            }
            Err(why) => {
                info!(%addr, "chunk requests stay on TCP: {why}");
                Route::Tcp {
                    why,
                    retry_at: Instant::now() + RETRY,
                }
            }
        };
        lock(&client.data_paths().routes.map).insert(addr, route);
    }

    /// Sets up the RDMA data path to the listener at `addr`.
    fn open(
        addr: SocketAddr,
        key: &ClusterKey,
        local: Identity,
        timeout: Duration,
    ) -> Result<Link, String> {
        let (mut stream, choice) =
            dial(addr, key, local, LocalRdma::Available, timeout).map_err(|e| e.to_string())?;
        if choice != Choice::Rdma {
            return Err(choice.to_string());
        }
        let link =
            RdmaSlots::establish(&mut stream, SlotLayout::DEFAULT).map_err(|e| e.to_string())?;
        Link::spawn(link, addr.to_string()).map_err(|e| e.to_string())
    }
}
