//! Leases on byte regions of files (issue 5), from the holder's side.
//!
//! [`Session::acquire_lease`] asks the minister (write) or a clerk (read)
//! and retries `Elsewhere`, conflicts and not-serving answers until its
//! deadline. The holder believes a lease until its own clock reads the
//! request's *send* time plus `Drift::holder_span(duration)` (the holder
//! rule of `govfs_core::lease::clock`), so its belief ends before any
//! granter's. [`RegionLease`] (from `FileSystem::open_region`) renews in
//! the background, watches for revocation and releases a revoked lease at
//! once; [`RegionLease::check`] fails as soon as the lease is not held.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use govfs_core::ids::node_of;
use govfs_core::lease::{Drift, Granted, LeaseId, Mode, Region};
use govfs_core::meta::types::Ino;
use govfs_core::node::{ClientMsg, LeaseRefusal, LeaseReply, LeaseRequest, ServerMsg};
use govfs_core::raft::{GroupId, NodeId, Term};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::ClientError;
use crate::session::Session;

/// Pause before retrying a lease request that could not be granted yet.
const LEASE_RETRY: Duration = Duration::from_millis(20);

/// How a holder asks for and keeps leases.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// Asked for; the granter may shorten it (read leases to H, write to 2H by default).
    pub duration: Duration,
    /// Largest clock-rate error of any node, as the holder knows it. The
    /// holder rule uses the larger of this and the granter's bound (sent
    /// with every grant), so a low value here never makes a holder trust a
    /// lease too long.
    pub drift_ppm: u32,
    /// How long acquiring may take, retries included.
    pub deadline: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            duration: Duration::from_secs(1),
            drift_ppm: 10_000,
            deadline: Duration::from_secs(20),
        }
    }
}

/// A lease as granted, with the holder's own deadline.
#[derive(Clone, Debug)]
pub struct LeaseGrant {
    pub ministry: GroupId,
    pub mode: Mode,
    pub granted: Granted,
    /// The granter's term and shard.
    pub term: Term,
    pub node: NodeId,
    /// Where the granter answers (refresh, release and watch go there).
    pub addr: SocketAddr,
    /// The holder believes the lease until this (holder rule).
    pub deadline: Instant,
    /// The clock-rate bound the holder rule uses: the larger of the
    /// holder's (`LeaseOptions::drift_ppm`) and the granter's.
    pub drift_ppm: u32,
}

impl LeaseGrant {
    pub fn lease(&self) -> LeaseId {
        self.granted.lease
    }
}

/// Why a lease is not held (any more).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error("lease {0:?} expired (not renewed in time)")]
    Expired(LeaseId),
    #[error("lease {0:?} was revoked for a conflicting request")]
    Revoked(LeaseId),
    #[error("lease {0:?} was released")]
    Released(LeaseId),
    #[error("lease {lease:?}: the granter refused to renew it: {refusal}")]
    RenewRefused {
        lease: LeaseId,
        refusal: LeaseRefusal,
    },
}

/// What to answer a retried request with.
enum Next {
    Done(Box<LeaseReply>),
    Retry(Option<SocketAddr>, Option<LeaseRefusal>),
}

impl Session {
    /// Acquires a `mode` lease on `region` of `file` in `ministry` for this
    /// session: a write lease from the minister, a read lease from a clerk.
    /// Retries until granted or `opts.deadline` passes (then
    /// [`ClientError::LeaseTimeout`] with the last refusal seen); a request
    /// that cannot be granted at all fails at once ([`ClientError::Lease`]).
    pub async fn acquire_lease(
        &mut self,
        ministry: GroupId,
        file: Ino,
        region: Region,
        mode: Mode,
        opts: &LeaseOptions,
    ) -> Result<LeaseGrant, ClientError> {
        let drift = drift(opts)?;
        let client = self.client().clone();
        let end = Instant::now() + opts.deadline;
        let msg = ClientMsg::Lease(LeaseRequest::Acquire {
            ministry,
            file,
            region,
            mode,
            session: self.id(),
            duration: micros(opts.duration),
            min_index: self.seen(ministry),
        });
        let mut target = match mode {
            Mode::Write => client.minister_addr(ministry).await,
            Mode::Read => None,
        };
        let mut attempt = self.id() as usize;
        let mut last = None;
        while Instant::now() < end {
            attempt = attempt.wrapping_add(1);
            let addr = match target.take() {
                Some(a) => a,
                None => {
                    let members = client.member_addrs(ministry, false).await;
                    let pool = if members.is_empty() {
                        client.addrs().to_vec()
                    } else {
                        members
                    };
                    pool[attempt % pool.len()]
                }
            };
            let sent = Instant::now();
            let wait = client
                .options()
                .request_timeout
                .max(Duration::from_secs(5))
                .min(end.saturating_duration_since(sent));
            let next = match client.call_within(addr, &msg, wait).await {
                Ok(ServerMsg::Lease(LeaseReply::Granted {
                    granted,
                    term,
                    node,
                    drift_ppm,
                })) => {
                    if mode == Mode::Write {
                        client.set_leader(ministry, Some(addr));
                    }
                    let drift = Drift::from_ppm(drift.ppm().max(drift_ppm).min(Drift::MAX_PPM));
                    let span = Duration::from_micros(drift.holder_span(granted.duration));
                    let mut grant = LeaseGrant {
                        ministry,
                        mode,
                        granted,
                        term,
                        node,
                        addr: client.node_addr(node).unwrap_or(addr),
                        deadline: sent + span,
                        drift_ppm: drift.ppm(),
                    };
                    // A request that waited long (parked behind a conflict)
                    // holds little by the holder rule, which counts from its
                    // send time: renew at once. If that fails the grant is
                    // returned as it is, and its deadline says how little is left.
                    if grant.deadline < Instant::now() + span / 2 {
                        let _ = refresh(&client, self.id(), &mut grant, opts.duration, drift).await;
                    }
                    return Ok(grant);
                }
                Ok(ServerMsg::Lease(LeaseReply::Elsewhere { hint, members })) => {
                    if mode == Mode::Write {
                        client.forget_leader(ministry, addr);
                    }
                    let pick = match mode {
                        Mode::Write => hint,
                        Mode::Read => members
                            .get(attempt % members.len().max(1))
                            .copied()
                            .or(hint),
                    };
                    let to = pick.and_then(|n| client.node_addr(node_of(n)));
                    if to.is_none() {
                        client.member_addrs(ministry, true).await;
                    }
                    Next::Retry(to.filter(|a| *a != addr), last.take())
                }
                Ok(ServerMsg::Lease(LeaseReply::Refused(r))) => match r {
                    LeaseRefusal::BadRequest(_) | LeaseRefusal::NoClerks => {
                        return Err(ClientError::Lease {
                            ministry,
                            refusal: r,
                        })
                    }
                    // Conflicts wait for the holder; a not-serving granter
                    // (a new minister's quiet period, a clerk loading its
                    // locks) for time; a deposed one for the next minister.
                    LeaseRefusal::NotServing(_) => {
                        if mode == Mode::Write {
                            client.forget_leader(ministry, addr);
                        }
                        Next::Retry(None, Some(r))
                    }
                    other => Next::Retry((mode == Mode::Write).then_some(addr), Some(other)),
                },
                Ok(other) => Next::Done(Box::new(LeaseReply::Refused(LeaseRefusal::BadRequest(
                    format!("unexpected answer {other:?}"),
                )))),
                Err(_) => {
                    if mode == Mode::Write {
                        client.forget_leader(ministry, addr);
                    }
                    Next::Retry(None, last.take())
                }
            };
            match next {
                Next::Done(reply) => {
                    return Err(ClientError::BadAnswer {
                        addr,
                        reason: format!("{reply:?}"),
                    })
                }
                Next::Retry(to, refusal) => {
                    target = to;
                    if refusal.is_some() {
                        last = refusal;
                    }
                }
            }
            tokio::time::sleep_until((Instant::now() + LEASE_RETRY).min(end)).await;
        }
        Err(ClientError::LeaseTimeout {
            ministry,
            waited: opts.deadline,
            last,
        })
    }

    /// Renews `grant` for `duration` more (from now, by the holder rule,
    /// with the grant's clock-rate bound).
    pub async fn refresh_lease(
        &self,
        grant: &mut LeaseGrant,
        duration: Duration,
    ) -> Result<(), ClientError> {
        let drift = Drift::from_ppm(grant.drift_ppm.min(Drift::MAX_PPM));
        refresh(self.client(), self.id(), grant, duration, drift).await
    }

    /// Gives `grant` back (its holder stops believing it first).
    pub async fn release_lease(&self, grant: &LeaseGrant) -> Result<(), ClientError> {
        release(self.client(), self.id(), grant).await
    }

    /// Waits (a bounded time, on the node) for leases of this session that
    /// the node at `addr` revoked; empty when none was.
    pub async fn watch_leases(
        &self,
        ministry: GroupId,
        addr: SocketAddr,
    ) -> Result<Vec<LeaseId>, ClientError> {
        watch(self.client(), self.id(), ministry, addr).await
    }
}

fn drift(opts: &LeaseOptions) -> Result<Drift, ClientError> {
    if opts.drift_ppm > Drift::MAX_PPM || opts.duration.is_zero() {
        return Err(ClientError::Lease {
            ministry: 0,
            refusal: LeaseRefusal::BadRequest("drift above 10% or a zero duration".into()),
        });
    }
    Ok(Drift::from_ppm(opts.drift_ppm))
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

async fn refresh(
    client: &Client,
    session: u64,
    grant: &mut LeaseGrant,
    duration: Duration,
    drift: Drift,
) -> Result<(), ClientError> {
    let msg = ClientMsg::Lease(LeaseRequest::Refresh {
        ministry: grant.ministry,
        session,
        lease: grant.lease(),
        mode: grant.mode,
        duration: micros(duration),
    });
    let sent = Instant::now();
    match client.call(grant.addr, &msg).await? {
        ServerMsg::Lease(LeaseReply::Refreshed { lease, duration }) if lease == grant.lease() => {
            let until = sent + Duration::from_micros(drift.holder_span(duration));
            grant.deadline = grant.deadline.max(until);
            grant.granted.duration = duration;
            Ok(())
        }
        ServerMsg::Lease(LeaseReply::Refused(refusal)) => Err(ClientError::Lease {
            ministry: grant.ministry,
            refusal,
        }),
        other => Err(crate::client::unexpected(grant.addr, other)),
    }
}

async fn release(client: &Client, session: u64, grant: &LeaseGrant) -> Result<(), ClientError> {
    let msg = ClientMsg::Lease(LeaseRequest::Release {
        ministry: grant.ministry,
        session,
        lease: grant.lease(),
        mode: grant.mode,
    });
    match client.call(grant.addr, &msg).await? {
        ServerMsg::Lease(LeaseReply::Done) => Ok(()),
        ServerMsg::Lease(LeaseReply::Refused(refusal)) => Err(ClientError::Lease {
            ministry: grant.ministry,
            refusal,
        }),
        other => Err(crate::client::unexpected(grant.addr, other)),
    }
}

async fn watch(
    client: &Client,
    session: u64,
    ministry: GroupId,
    addr: SocketAddr,
) -> Result<Vec<LeaseId>, ClientError> {
    let msg = ClientMsg::Lease(LeaseRequest::Watch { ministry, session });
    match client.call(addr, &msg).await? {
        ServerMsg::Lease(LeaseReply::Revoked(ids)) => Ok(ids),
        ServerMsg::Lease(LeaseReply::Done) => Ok(Vec::new()),
        ServerMsg::Lease(LeaseReply::Refused(refusal)) => {
            Err(ClientError::Lease { ministry, refusal })
        }
        other => Err(crate::client::unexpected(addr, other)),
    }
}

/// Called after each renewal of a lease (see [`RegionLease::on_refresh`]).
pub type OnRefresh = Arc<dyn Fn() + Send + Sync>;

struct Held {
    grant: LeaseGrant,
    lost: Option<LeaseLost>,
    on_refresh: Option<OnRefresh>,
}

/// A held lease on a region of a file, from `FileSystem::open_region`. It
/// renews itself in the background (a tokio task) and watches for
/// revocation (another task): a revoked lease is released at once and
/// [`check`](Self::check) fails from then on, as it does once the holder's
/// deadline passes without a renewal. Dropping it marks it released (both
/// tasks end by themselves, within one watch wait) and releases it on the
/// node (best effort); [`release`](Self::release) waits for that.
///
/// Each `RegionLease` is its own holder (its own session id): two of them
/// conflict like two clients' leases would.
pub struct RegionLease {
    client: Client,
    session: u64,
    held: Arc<Mutex<Held>>,
    tasks: Vec<JoinHandle<()>>,
}

fn lock(h: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

impl RegionLease {
    /// Holds `grant`, acquired by `session` with `opts`: renews it and
    /// watches for its revocation from now on.
    pub fn start(session: &Session, grant: LeaseGrant, opts: &LeaseOptions) -> RegionLease {
        let drift = Drift::from_ppm(grant.drift_ppm.min(Drift::MAX_PPM));
        let client = session.client().clone();
        let id = session.id();
        let held = Arc::new(Mutex::new(Held {
            grant,
            lost: None,
            on_refresh: None,
        }));
        let renew = {
            let (client, held, want) = (client.clone(), Arc::clone(&held), opts.duration);
            tokio::spawn(async move { renew_loop(client, id, held, want, drift).await })
        };
        let watcher = {
            let (client, held) = (client.clone(), Arc::clone(&held));
            tokio::spawn(async move { watch_loop(client, id, held).await })
        };
        RegionLease {
            client,
            session: id,
            held,
            tasks: vec![renew, watcher],
        }
    }

    /// Runs `f` after every renewal from now on (`None`: nothing). A file
    /// handle reports its size to the ministry this way, in one batch per
    /// renewal rather than per write.
    pub fn on_refresh(&self, f: Option<OnRefresh>) {
        lock(&self.held).on_refresh = f;
    }

    /// The lease as last granted or renewed.
    pub fn grant(&self) -> LeaseGrant {
        lock(&self.held).grant.clone()
    }

    /// The holder's session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Held now: not revoked, released or refused, and before the holder's deadline.
    pub fn valid(&self) -> bool {
        self.check().is_ok()
    }

    /// `Ok` only while the lease is held; check before every read or write
    /// it covers.
    pub fn check(&self) -> Result<(), LeaseLost> {
        let h = lock(&self.held);
        if let Some(lost) = &h.lost {
            return Err(lost.clone());
        }
        if Instant::now() >= h.grant.deadline {
            return Err(LeaseLost::Expired(h.grant.lease()));
        }
        Ok(())
    }

    /// When the holder stops believing the lease unless it is renewed.
    pub fn deadline(&self) -> Instant {
        lock(&self.held).grant.deadline
    }

    /// Stops renewing and gives the lease back. A lease that is not held
    /// any more (revoked and already given back by the watcher, expired, or
    /// unknown to the granter) needs no release: that is not an error.
    pub async fn release(mut self) -> Result<(), ClientError> {
        // The tasks see the lease lost and end by themselves (within one
        // watch wait): aborting one in the middle of a call would make the
        // client take the shared connection for stuck.
        self.tasks.clear();
        let grant = {
            let mut h = lock(&self.held);
            if matches!(h.lost, Some(LeaseLost::Revoked(_))) {
                return Ok(()); // the watcher gave it back
            }
            let lease = h.grant.lease();
            h.lost.get_or_insert(LeaseLost::Released(lease));
            h.grant.clone()
        };
        match release(&self.client, self.session, &grant).await {
            Err(ClientError::Lease {
                refusal: LeaseRefusal::Unknown(_) | LeaseRefusal::Expired(_),
                ..
            }) => Ok(()),
            other => other,
        }
    }
}

impl Drop for RegionLease {
    fn drop(&mut self) {
        if self.tasks.is_empty() {
            return; // released
        }
        // Not aborted, see `release`.
        self.tasks.clear();
        let grant = {
            let mut h = lock(&self.held);
            let lease = h.grant.lease();
            h.lost.get_or_insert(LeaseLost::Released(lease));
            h.grant.clone()
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, session) = (self.client.clone(), self.session);
            rt.spawn(async move {
                let _ = release(&client, session, &grant).await;
            });
        }
    }
}

/// Renew when about half the held span is left; stop once the lease is lost.
async fn renew_loop(
    client: Client,
    session: u64,
    held: Arc<Mutex<Held>>,
    want: Duration,
    drift: Drift,
) {
    loop {
        let (mut grant, span) = {
            let h = lock(&held);
            if h.lost.is_some() {
                return;
            }
            let span = Duration::from_micros(drift.holder_span(h.grant.granted.duration));
            (h.grant.clone(), span)
        };
        let at = grant
            .deadline
            .checked_sub(span / 2)
            .unwrap_or(grant.deadline);
        tokio::time::sleep_until(at).await;
        if lock(&held).lost.is_some() {
            return;
        }
        if Instant::now() >= grant.deadline {
            let mut h = lock(&held);
            let lease = h.grant.lease();
            h.lost.get_or_insert(LeaseLost::Expired(lease));
            return;
        }
        match refresh(&client, session, &mut grant, want, drift).await {
            Ok(()) => {
                let after = {
                    let mut h = lock(&held);
                    h.grant.deadline = h.grant.deadline.max(grant.deadline);
                    h.grant.granted.duration = grant.granted.duration;
                    h.on_refresh.clone()
                };
                if let Some(f) = after {
                    f();
                }
            }
            Err(ClientError::Lease { refusal, .. })
                if !matches!(refusal, LeaseRefusal::NotServing(_)) =>
            {
                let mut h = lock(&held);
                let lease = h.grant.lease();
                h.lost
                    .get_or_insert(LeaseLost::RenewRefused { lease, refusal });
                return;
            }
            // A granter briefly not serving, or a network error: try again
            // soon; the deadline stands meanwhile.
            Err(_) => tokio::time::sleep(LEASE_RETRY).await,
        }
    }
}

/// Long-poll the granter for revocations; release a revoked lease at once.
async fn watch_loop(client: Client, session: u64, held: Arc<Mutex<Held>>) {
    loop {
        let grant = {
            let h = lock(&held);
            if h.lost.is_some() || Instant::now() >= h.grant.deadline {
                return;
            }
            h.grant.clone()
        };
        match watch(&client, session, grant.ministry, grant.addr).await {
            Ok(ids) if ids.contains(&grant.lease()) => {
                lock(&held)
                    .lost
                    .get_or_insert(LeaseLost::Revoked(grant.lease()));
                let _ = release(&client, session, &grant).await;
                return;
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(LEASE_RETRY * 5).await,
        }
    }
}
