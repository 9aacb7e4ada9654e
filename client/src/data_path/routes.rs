//! Which way chunk requests to each node go: a data path set up in the
//! background, or TCP (with the reason, and when to try again).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use govfs_core::node::{ClientMsg, ServerMsg};
use govfs_net::data_path::{dial, over_tcp, SlotLayout, TcpSlots};
use govfs_net::rdma_choice::{Choice, LocalRdma};
use govfs_net::{ClusterKey, Identity};
use tracing::{info, warn};

use super::link::{Link, Poller};
use crate::client::Client;
use crate::conn::Body;
use crate::error::ClientError;

/// How long a node without a data path, or one whose setup failed,
/// stays on TCP before the next try.
const RETRY: Duration = Duration::from_secs(30);

/// This client's data-path connections, one per storage node address.
#[derive(Default)]
pub(crate) struct DataPaths {
    map: Mutex<HashMap<SocketAddr, Route>>,
    calls: AtomicU64,
    /// Why no data path can be set up from here, if none can (asked once).
    impossible: OnceLock<Option<Choice>>,
    /// The thread serving every link, started with the first.
    poller: Mutex<Option<Poller>>,
}

impl DataPaths {
    pub(super) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn poller(&self) -> Result<Poller, String> {
        let mut poller = lock(&self.poller);
        if let Some(p) = &*poller {
            return Ok(p.clone());
        }
        let p = Poller::start().map_err(|e| format!("data path thread: {e}"))?;
        *poller = Some(p.clone());
        Ok(p)
    }

    /// Why no data path can be set up from here: neither an RDMA device
    /// nor the slots over TCP asked for.
    fn impossible(&self) -> Option<Choice> {
        *self.impossible.get_or_init(|| {
            let local = LocalRdma::probe();
            (local != LocalRdma::Available && !over_tcp())
                .then(|| govfs_net::rdma_choice::choose(local, LocalRdma::Available))
        })
    }
}

enum Route {
    Connecting,
    Ready(Arc<Link>),
    Tcp { why: String, retry_at: Instant },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn describe(client: &Client, addr: SocketAddr) -> String {
    let routes = client.data_paths();
    if let Some(choice) = routes.impossible() {
        return choice.to_string();
    }
    match lock(&routes.map).get(&addr) {
        None => "TCP: no chunk request sent yet".into(),
        Some(Route::Connecting) => "TCP: data path being set up".into(),
        Some(Route::Ready(link)) if !link.is_dead() => format!("data path: {}", link.name()),
        Some(Route::Ready(_)) => "TCP: data path lost".into(),
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
    let routes = client.data_paths();
    if routes.impossible().is_some() {
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
                    reason: format!("over the data path: {e}"),
                }
            }),
        ),
        Err(why) => {
            // This call, and the next ones for a while, go over TCP.
            warn!(%addr, "data path dropped: {why}");
            lock(&routes.map).insert(
                addr,
                Route::Tcp {
                    why: format!("data path dropped: {why}"),
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
            None => Err("the node has no data path".to_string()),
            Some(port) => {
                let to = SocketAddr::new(addr.ip(), port);
                let (key, local) = client.identity();
                let timeout = client.options().request_timeout;
                let opened = match client.data_paths().poller() {
                    Ok(poller) => {
                        tokio::task::spawn_blocking(move || open(&poller, to, &key, local, timeout))
                            .await
                    }
                    Err(why) => Ok(Err(why)),
                };
                match opened {
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
            info!(%addr, over = %link.name(), "chunk requests go over the data path");
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
    lock(&client.data_paths().map).insert(addr, route);
}

/// Sets up the data path to the listener at `addr`: RDMA when both ends
/// have a device, the slots over TCP when that is asked for.
fn open(
    poller: &Poller,
    addr: SocketAddr,
    key: &ClusterKey,
    local: Identity,
    timeout: Duration,
) -> Result<Link, String> {
    let (stream, choice) =
        dial(addr, key, local, LocalRdma::probe(), timeout).map_err(|e| e.to_string())?;
    let layout = SlotLayout::DEFAULT;
    #[cfg(feature = "rdma")]
    if choice == Choice::Rdma {
        let mut stream = stream;
        let link = govfs_net::data_path::RdmaSlots::establish(&mut stream, layout)
            .map_err(|e| e.to_string())?;
        return Link::attach(poller, link, addr.to_string());
    }
    if !over_tcp() {
        return Err(choice.to_string());
    }
    let link = TcpSlots::new(stream, layout).map_err(|e| e.to_string())?;
    Link::attach(poller, link, addr.to_string())
}
