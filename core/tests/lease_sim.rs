//! A deterministic, seeded simulation of one ministry's leases: a minister,
//! 2-4 clerks and several clients on drifting clocks, with message loss,
//! delay and reordering, partitions (including one-way ones), clerk crashes
//! and restarts, and a minister replaced by a new term while the old one
//! keeps running. After every step it checks on real (simulated) time that
//! no two conflicting leases are believed by their holders at once.

use std::collections::{BTreeMap, BTreeSet};

use govfs_core::lease::{
    Clerk, ClerkAction, ClerkReply, Drift, Granted, LeaseConfig, LeaseError, LeaseFaults, LeaseId,
    LockBatch, Minister, MinisterAction, Mode, Region, WriteRequest,
};
use govfs_core::meta::types::Ino;
use govfs_core::raft::{Micros, NodeId, Term};

const H: Micros = 100_000;
const STEP: Micros = 1_000;
const RHO_PPM: u32 = 10_000;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len() as u64) as usize])
    }
}

/// A node's clock: `local = offset + real * rate`, rate within 1 ± ρ.
#[derive(Clone, Copy)]
struct Clock {
    offset: u64,
    rate_ppm: u64,
}

impl Clock {
    fn random(rng: &mut Rng) -> Clock {
        let rho = u64::from(RHO_PPM);
        let rate_ppm = match rng.below(3) {
            0 => 1_000_000 - rho,
            1 => 1_000_000 + rho,
            _ => 1_000_000 - rho + rng.below(2 * rho + 1),
        };
        Clock {
            offset: rng.below(1 << 40),
            rate_ppm,
        }
    }
    fn local(&self, real: u64) -> Micros {
        self.offset + ((u128::from(real) * u128::from(self.rate_ppm)) / 1_000_000) as u64
    }
    /// The first real time at which the clock reads at least `local`.
    fn real_at(&self, local: Micros) -> u64 {
        let d = u128::from(local.saturating_sub(self.offset));
        (d * 1_000_000).div_ceil(u128::from(self.rate_ppm)) as u64
    }
}

#[derive(Clone, Debug)]
enum Body {
    Batch(LockBatch),
    Reply(ClerkReply),
    ReadReq { req: u64, file: Ino, region: Region },
    WriteReq { req: u64, file: Ino, region: Region },
    Refresh { req: u64, lease: LeaseId },
    Release { lease: LeaseId },
    Granted { req: u64, granted: Granted },
    Refreshed { req: u64, duration: Micros },
    Refused { req: u64 },
    Revoke { lease: LeaseId },
}

struct Msg {
    at: u64,
    from: NodeId,
    to: NodeId,
    body: Body,
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    Acquire {
        file: Ino,
        region: Region,
        mode: Mode,
        granter: NodeId,
        sent: Micros,
    },
    Refresh {
        lease: LeaseId,
        sent: Micros,
    },
}

#[derive(Clone, Debug)]
struct Holding {
    granter: NodeId,
    lease: LeaseId,
    file: Ino,
    region: Region,
    mode: Mode,
    valid_until: Micros,
    duration: Micros,
    start_real: u64,
    end_real: u64,
    refreshing: bool,
}

struct Client {
    id: NodeId,
    session: u64,
    clock: Clock,
    minister: NodeId,
    next_req: u64,
    pending: BTreeMap<u64, Pending>,
    holdings: Vec<Holding>,
}

struct ClerkNode {
    clock: Clock,
    clerk: Option<Clerk>,
    incarnation: u64,
    down_until: u64,
    last_president: Option<Micros>,
    removed: bool,
    /// How far behind the ministry log this clerk applies.
    apply_lag: u64,
}

struct MinisterNode {
    id: NodeId,
    clock: Clock,
    m: Minister,
    stop_at: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    reads: u64,
    writes: u64,
    conflicts: u64,
    revokes: u64,
    fenced: u64,
    restarts: u64,
    replacements: u64,
    steps: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bugs {
    faults: LeaseFaults,
}

struct Sim {
    rng: Rng,
    now: u64,
    cfg: LeaseConfig,
    drift: Drift,
    clerks: BTreeMap<NodeId, ClerkNode>,
    ministers: Vec<MinisterNode>,
    term: Term,
    clients: Vec<Client>,
    net: Vec<Msg>,
    cut: BTreeSet<(NodeId, NodeId)>,
    president_cut: BTreeSet<NodeId>,
    /// (real time, clerk): the president removes a reported clerk.
    removals: Vec<(u64, NodeId)>,
    /// (real time, clerk, term): a clerk hears of a newer term from the president.
    term_news: Vec<(u64, NodeId, Term)>,
    loss_ppm: u64,
    stats: Stats,
}

const PRESIDENT: NodeId = 0;
/// The ministry log grows by one index every LOG_TICK of real time.
const LOG_TICK: u64 = 10_000;
const FIRST_CLIENT: NodeId = 1000;

impl Sim {
    fn new(seed: u64, bugs: Bugs) -> Sim {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5eed);
        let mut cfg = LeaseConfig::new(H);
        cfg.drift = Drift::from_ppm(RHO_PPM);
        cfg.max_write_duration = 150_000;
        cfg.linger = 50_000;
        cfg.revoke_after = 60_000;
        cfg.max_lingering = 4;
        cfg.max_leases_per_session = 8;
        cfg.faults = bugs.faults;
        let n_clerks = 2 + rng.below(3);
        let mut clerks = BTreeMap::new();
        for id in 1..=n_clerks {
            let clock = Clock::random(&mut rng);
            let clerk = Clerk::start(cfg.clone(), id, 1, clock.local(0));
            clerks.insert(
                id,
                ClerkNode {
                    clock,
                    clerk: Some(clerk),
                    incarnation: 1,
                    down_until: 0,
                    last_president: None,
                    removed: false,
                    apply_lag: rng.below(60_000),
                },
            );
        }
        let ids: Vec<NodeId> = clerks.keys().copied().collect();
        let mclock = Clock::random(&mut rng);
        let m = Minister::new(cfg.clone(), 100, 1, &ids, mclock.local(0));
        let n_clients = 3 + rng.below(4);
        let clients = (0..n_clients)
            .map(|i| Client {
                id: FIRST_CLIENT + i,
                session: i + 1,
                clock: Clock::random(&mut rng),
                minister: 100,
                next_req: 1,
                pending: BTreeMap::new(),
                holdings: Vec::new(),
            })
            .collect();
        let loss_ppm = [0, 10_000, 50_000][rng.below(3) as usize];
        Sim {
            rng,
            now: 0,
            drift: cfg.drift,
            cfg,
            clerks,
            ministers: vec![MinisterNode {
                id: 100,
                clock: mclock,
                m,
                stop_at: u64::MAX,
            }],
            term: 1,
            clients,
            net: Vec::new(),
            cut: BTreeSet::new(),
            president_cut: BTreeSet::new(),
            removals: Vec::new(),
            term_news: Vec::new(),
            loss_ppm,
            stats: Stats::default(),
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, body: Body) {
        if self.cut.contains(&(from, to)) || self.rng.chance(self.loss_ppm) {
            return;
        }
        let delay = if self.rng.chance(10_000) {
            self.rng.below(3 * H)
        } else {
            self.rng.below(6_000)
        };
        self.net.push(Msg {
            at: self.now + delay,
            from,
            to,
            body,
        });
    }

    fn run(&mut self, steps: u64) -> Result<Stats, String> {
        let replace_at = if self.rng.chance(700_000) {
            800 + self.rng.below(1_000)
        } else {
            u64::MAX
        };
        for step in 0..steps {
            self.now += STEP;
            self.stats.steps += 1;
            if step == replace_at {
                self.replace_minister();
            }
            self.faults();
            self.deliver();
            self.tick_nodes();
            self.clients_act();
            self.check()?;
        }
        Ok(self.stats)
    }

    fn faults(&mut self) {
        // Partitions change about every 100 ms.
        if self.rng.chance(10_000) {
            self.cut.clear();
            self.president_cut.clear();
            let clerks: Vec<NodeId> = self.clerks.keys().copied().collect();
            let ministers: Vec<NodeId> = self.ministers.iter().map(|m| m.id).collect();
            for _ in 0..self.rng.below(3) {
                let Some(c) = self.rng.pick(&clerks) else {
                    break;
                };
                let Some(m) = self.rng.pick(&ministers) else {
                    break;
                };
                match self.rng.below(5) {
                    0 => {
                        self.cut.insert((m, c));
                        self.cut.insert((c, m));
                    }
                    // The asymmetric fault of thesis problem 3.
                    1 => {
                        self.cut.insert((m, c));
                    }
                    2 => {
                        self.cut.insert((c, m));
                    }
                    3 => {
                        self.president_cut.insert(c);
                    }
                    _ => {
                        let cl = FIRST_CLIENT + self.rng.below(self.clients.len() as u64);
                        self.cut.insert((cl, c));
                        self.cut.insert((c, cl));
                    }
                }
            }
        }
        // Clerk crashes: the lease table is lost.
        if self.rng.chance(1_500) {
            let up: Vec<NodeId> = self
                .clerks
                .iter()
                .filter(|(_, n)| n.clerk.is_some())
                .map(|(id, _)| *id)
                .collect();
            if let Some(c) = self.rng.pick(&up) {
                let down = self.rng.below(2 * H);
                let n = self.clerks.get_mut(&c).expect("up");
                n.clerk = None;
                n.down_until = self.now + down;
                self.stats.restarts += 1;
            }
        }
        let now = self.now;
        for (id, n) in self.clerks.iter_mut() {
            if n.clerk.is_none() && now >= n.down_until {
                n.incarnation += 1;
                let mut clerk =
                    Clerk::start(self.cfg.clone(), *id, n.incarnation, n.clock.local(now));
                if !self.president_cut.contains(id) {
                    clerk.observe_term(self.term);
                }
                n.clerk = Some(clerk);
            }
        }
        let due: Vec<(u64, NodeId)> = self
            .removals
            .iter()
            .copied()
            .filter(|(t, _)| *t <= now)
            .collect();
        self.removals.retain(|(t, _)| *t > now);
        for (_, c) in due {
            if let Some(n) = self.clerks.get_mut(&c) {
                n.removed = true;
            }
            let keep: Vec<NodeId> = self
                .clerks
                .iter()
                .filter(|(_, n)| !n.removed)
                .map(|(id, _)| *id)
                .collect();
            if let Some(m) = self.ministers.last_mut() {
                let t = m.clock.local(now);
                m.m.set_clerks(t, &keep);
            }
        }
        let news: Vec<(u64, NodeId, Term)> = self
            .term_news
            .iter()
            .copied()
            .filter(|(t, _, _)| *t <= now)
            .collect();
        self.term_news.retain(|(t, _, _)| *t > now);
        for (_, c, term) in news {
            if self.president_cut.contains(&c) {
                continue;
            }
            if let Some(clerk) = self.clerks.get_mut(&c).and_then(|n| n.clerk.as_mut()) {
                clerk.observe_term(term);
            }
        }
        self.ministers.retain(|m| now < m.stop_at);
    }

    /// The president appoints a clerk as minister with a new term; the old
    /// minister keeps running, stale, for a while.
    fn replace_minister(&mut self) {
        let live: Vec<NodeId> = self
            .clerks
            .iter()
            .filter(|(_, n)| !n.removed)
            .map(|(id, _)| *id)
            .collect();
        if live.len() < 2 {
            return;
        }
        let Some(x) = self.rng.pick(&live) else {
            return;
        };
        let Some(node) = self.clerks.remove(&x) else {
            return;
        };
        self.term += 1;
        let others: Vec<NodeId> = live.iter().copied().filter(|c| *c != x).collect();
        let m = Minister::new(
            self.cfg.clone(),
            x,
            self.term,
            &others,
            node.clock.local(self.now),
        );
        let stale_for = self.rng.below(4 * H);
        if let Some(old) = self.ministers.last_mut() {
            old.stop_at = self.now + stale_for;
        }
        self.ministers.push(MinisterNode {
            id: x,
            clock: node.clock,
            m,
            stop_at: u64::MAX,
        });
        for c in others {
            let lag = self.rng.below(3 * H);
            self.term_news.push((self.now + lag, c, self.term));
        }
        for i in 0..self.clients.len() {
            if self.rng.chance(500_000) {
                self.clients[i].minister = x;
            }
        }
        self.stats.replacements += 1;
    }

    fn deliver(&mut self) {
        let now = self.now;
        let mut due: Vec<Msg> = Vec::new();
        let mut i = 0;
        while i < self.net.len() {
            if self.net[i].at <= now {
                due.push(self.net.swap_remove(i));
            } else {
                i += 1;
            }
        }
        // Reordering: shuffle what arrives in this step.
        for k in (1..due.len()).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            due.swap(k, j);
        }
        for msg in due {
            self.handle(msg);
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.now;
        if msg.to >= FIRST_CLIENT {
            self.client_receive(msg);
            return;
        }
        if let Some(mi) = self.ministers.iter().position(|m| m.id == msg.to) {
            let t = self.ministers[mi].clock.local(now);
            let m = &mut self.ministers[mi].m;
            let mut out = Vec::new();
            match msg.body {
                Body::Reply(reply) => m.on_clerk_reply(t, reply),
                Body::WriteReq { req, file, region } => {
                    let session = msg.from - FIRST_CLIENT + 1;
                    // The file exists at the log index of the moment; clerks apply it later.
                    let wr = WriteRequest {
                        session,
                        request: req,
                        file,
                        region,
                        duration: 150_000,
                        index: now / LOG_TICK,
                    };
                    if m.request_write(t, wr).is_err() {
                        out.push(Body::Refused { req });
                    }
                }
                Body::Refresh { req, lease } => {
                    let session = msg.from - FIRST_CLIENT + 1;
                    match m.refresh_write(t, session, lease, 150_000) {
                        Ok(duration) => out.push(Body::Refreshed { req, duration }),
                        Err(_) => out.push(Body::Refused { req }),
                    }
                }
                Body::Release { lease } => {
                    let _ = m.release_write(t, msg.from - FIRST_CLIENT + 1, lease);
                }
                _ => {}
            }
            for body in out {
                self.send(msg.to, msg.from, body);
            }
            return;
        }
        let Some(node) = self.clerks.get_mut(&msg.to) else {
            return;
        };
        let t = node.clock.local(now);
        let Some(clerk) = node.clerk.as_mut() else {
            return;
        };
        let session = msg.from.wrapping_sub(FIRST_CLIENT) + 1;
        let mut out = Vec::new();
        match msg.body {
            Body::Batch(b) => {
                let _ = clerk.on_batch(t, b);
            }
            Body::ReadReq { req, file, region } => {
                match clerk.grant_read(t, session, file, region, H) {
                    Ok(granted) => out.push(Body::Granted { req, granted }),
                    Err(e) => {
                        if matches!(e, LeaseError::Conflict { .. }) {
                            self.stats.conflicts += 1;
                        }
                        out.push(Body::Refused { req });
                    }
                }
            }
            Body::Refresh { req, lease } => match clerk.refresh_read(t, session, lease, H) {
                Ok(duration) => out.push(Body::Refreshed { req, duration }),
                Err(_) => out.push(Body::Refused { req }),
            },
            Body::Release { lease } => {
                let _ = clerk.release_read(t, session, lease);
            }
            _ => {}
        }
        for body in out {
            self.send(msg.to, msg.from, body);
        }
    }

    fn tick_nodes(&mut self) {
        let now = self.now;
        let ids: Vec<NodeId> = self.clerks.keys().copied().collect();
        for id in ids {
            let node = self.clerks.get_mut(&id).expect("listed");
            let t = node.clock.local(now);
            if !self.president_cut.contains(&id) {
                node.last_president = Some(t);
            }
            let serving = !node.removed
                && node
                    .last_president
                    .is_some_and(|p| t < p + self.drift.holder_span(H));
            let Some(clerk) = node.clerk.as_mut() else {
                continue;
            };
            clerk.applied(t, now.saturating_sub(node.apply_lag) / LOG_TICK);
            clerk.tick(t, serving);
            for a in clerk.take_actions() {
                match a {
                    ClerkAction::Reply { to, reply } => self.send(id, to, Body::Reply(reply)),
                    ClerkAction::Revoke { session, lease } => {
                        self.stats.revokes += 1;
                        self.send(id, FIRST_CLIENT + session - 1, Body::Revoke { lease });
                    }
                }
            }
        }
        for mi in 0..self.ministers.len() {
            let id = self.ministers[mi].id;
            let t = self.ministers[mi].clock.local(now);
            let current = mi + 1 == self.ministers.len();
            let m = &mut self.ministers[mi].m;
            m.tick(t, true);
            for a in m.take_actions() {
                match a {
                    MinisterAction::Batch { to, batch } => self.send(id, to, Body::Batch(batch)),
                    MinisterAction::Grant { request, granted } => {
                        let to = FIRST_CLIENT + granted.session - 1;
                        self.send(
                            id,
                            to,
                            Body::Granted {
                                req: request,
                                granted,
                            },
                        );
                    }
                    MinisterAction::Refuse {
                        session, request, ..
                    } => {
                        self.send(
                            id,
                            FIRST_CLIENT + session - 1,
                            Body::Refused { req: request },
                        );
                    }
                    MinisterAction::Revoke { session, lease } => {
                        self.stats.revokes += 1;
                        self.send(id, FIRST_CLIENT + session - 1, Body::Revoke { lease });
                    }
                    MinisterAction::ReportClerk { clerk } => {
                        self.stats.fenced += 1;
                        if current && !self.cut.contains(&(id, PRESIDENT)) {
                            let lag = self.rng.below(H / 2);
                            self.removals.push((now + lag, clerk));
                        }
                    }
                }
            }
        }
    }

    fn clients_act(&mut self) {
        let now = self.now;
        let clerk_ids: Vec<NodeId> = self.clerks.keys().copied().collect();
        let regions = [
            Region::WHOLE,
            Region::new(0, 100).expect("r"),
            Region::new(50, 150).expect("r"),
            Region::new(100, 200).expect("r"),
            Region::new(200, 300).expect("r"),
            Region::new(0, 1000).expect("r"),
        ];
        for ci in 0..self.clients.len() {
            let mut out: Vec<(NodeId, Body)> = Vec::new();
            let c = &mut self.clients[ci];
            let t = c.clock.local(now);
            c.holdings.retain(|h| t < h.valid_until);
            c.pending.retain(|_, p| match p {
                Pending::Acquire { sent, .. } | Pending::Refresh { sent, .. } => t < *sent + 4 * H,
            });
            let acquiring = c
                .pending
                .values()
                .filter(|p| matches!(p, Pending::Acquire { .. }))
                .count();
            if acquiring < 2 && c.holdings.len() < 4 && self.rng.chance(30_000) {
                let file = Ino(1 + self.rng.below(3));
                let region = regions[self.rng.below(regions.len() as u64) as usize];
                let req = c.next_req;
                c.next_req += 1;
                if self.rng.chance(350_000) {
                    let granter = c.minister;
                    c.pending.insert(
                        req,
                        Pending::Acquire {
                            file,
                            region,
                            mode: Mode::Write,
                            granter,
                            sent: t,
                        },
                    );
                    out.push((granter, Body::WriteReq { req, file, region }));
                } else if let Some(granter) = self.rng.pick(&clerk_ids) {
                    c.pending.insert(
                        req,
                        Pending::Acquire {
                            file,
                            region,
                            mode: Mode::Read,
                            granter,
                            sent: t,
                        },
                    );
                    out.push((granter, Body::ReadReq { req, file, region }));
                }
            }
            let mut releases = Vec::new();
            for (k, h) in c.holdings.iter_mut().enumerate() {
                if !h.refreshing
                    && t + h.duration * 2 / 5 >= h.valid_until
                    && self.rng.chance(900_000)
                {
                    let req = c.next_req;
                    c.next_req += 1;
                    h.refreshing = true;
                    c.pending.insert(
                        req,
                        Pending::Refresh {
                            lease: h.lease,
                            sent: t,
                        },
                    );
                    out.push((
                        h.granter,
                        Body::Refresh {
                            req,
                            lease: h.lease,
                        },
                    ));
                } else if self.rng.chance(4_000) {
                    releases.push(k);
                }
            }
            for k in releases.into_iter().rev() {
                let h = c.holdings.remove(k);
                out.push((h.granter, Body::Release { lease: h.lease }));
            }
            let from = c.id;
            for (to, body) in out {
                self.send(from, to, body);
            }
        }
    }

    fn client_receive(&mut self, msg: Msg) {
        let now = self.now;
        let ci = (msg.to - FIRST_CLIENT) as usize;
        let drift = self.drift;
        let c = &mut self.clients[ci];
        let t = c.clock.local(now);
        let mut reply: Option<(NodeId, Body)> = None;
        match msg.body {
            Body::Granted { req, granted } => match c.pending.remove(&req) {
                Some(Pending::Acquire {
                    file,
                    region,
                    mode,
                    granter,
                    sent,
                }) if granter == msg.from => {
                    debug_assert!(file == granted.file && region == granted.region);
                    let valid_until = drift.holder_deadline(sent, granted.duration);
                    if t < valid_until {
                        match mode {
                            Mode::Read => self.stats.reads += 1,
                            Mode::Write => self.stats.writes += 1,
                        }
                        c.holdings.push(Holding {
                            granter,
                            lease: granted.lease,
                            file,
                            region,
                            mode,
                            valid_until,
                            duration: granted.duration,
                            start_real: now,
                            end_real: c.clock.real_at(valid_until),
                            refreshing: false,
                        });
                    } else {
                        reply = Some((
                            msg.from,
                            Body::Release {
                                lease: granted.lease,
                            },
                        ));
                    }
                }
                _ => {
                    reply = Some((
                        msg.from,
                        Body::Release {
                            lease: granted.lease,
                        },
                    ))
                }
            },
            Body::Refreshed { req, duration } => {
                if let Some(Pending::Refresh { lease, sent }) = c.pending.remove(&req) {
                    if let Some(h) = c
                        .holdings
                        .iter_mut()
                        .find(|h| h.lease == lease && h.granter == msg.from)
                    {
                        h.refreshing = false;
                        let until = drift.holder_deadline(sent, duration);
                        if until > h.valid_until {
                            h.valid_until = until;
                            h.end_real = c.clock.real_at(until);
                        }
                    }
                }
            }
            Body::Refused { req } => {
                if let Some(Pending::Refresh { lease, .. }) = c.pending.remove(&req) {
                    if let Some(h) = c.holdings.iter_mut().find(|h| h.lease == lease) {
                        h.refreshing = false;
                    }
                }
            }
            Body::Revoke { lease } => {
                if let Some(k) = c
                    .holdings
                    .iter()
                    .position(|h| h.lease == lease && h.granter == msg.from)
                {
                    // Its interval ends now; earlier steps checked it while it lasted.
                    c.holdings.remove(k);
                    reply = Some((msg.from, Body::Release { lease }));
                }
            }
            _ => {}
        }
        let from = c.id;
        if let Some((to, body)) = reply {
            self.send(from, to, body);
        }
    }

    /// No two conflicting leases believed by their holders at one real instant.
    fn check(&mut self) -> Result<(), String> {
        let now = self.now;
        let mut all: Vec<(u64, &Holding)> = Vec::new();
        for c in &self.clients {
            for h in &c.holdings {
                if h.end_real > now.saturating_sub(STEP) {
                    all.push((c.session, h));
                }
            }
        }
        for (i, (sa, a)) in all.iter().enumerate() {
            for (sb, b) in &all[i + 1..] {
                if a.file == b.file
                    && sa != sb
                    && a.region.overlaps(&b.region)
                    && (a.mode == Mode::Write || b.mode == Mode::Write)
                    && a.start_real.max(b.start_real) < a.end_real.min(b.end_real)
                {
                    return Err(format!(
                        "at {now}: session {sa} {:?} {:?} {} from {} [{}, {}) conflicts with session {sb} {:?} {:?} {} from {} [{}, {})",
                        a.mode, a.file, a.region, a.granter, a.start_real, a.end_real,
                        b.mode, b.file, b.region, b.granter, b.start_real, b.end_real
                    ));
                }
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64, steps: u64, bugs: Bugs) -> Result<Stats, String> {
    Sim::new(seed, bugs).run(steps)
}

const STEPS: u64 = 6_000;

#[test]
fn many_seeds_never_grant_conflicting_leases() {
    let seeds = 300;
    let mut total = Stats::default();
    for seed in 0..seeds {
        match run_seed(seed, STEPS, Bugs::default()) {
            Ok(s) => {
                total.reads += s.reads;
                total.writes += s.writes;
                total.conflicts += s.conflicts;
                total.revokes += s.revokes;
                total.fenced += s.fenced;
                total.restarts += s.restarts;
                total.replacements += s.replacements;
                total.steps += s.steps;
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    println!("{total:?}");
    assert!(total.reads > 10 * seeds, "{total:?}");
    assert!(total.writes > 5 * seeds, "{total:?}");
    assert!(total.revokes > seeds, "{total:?}");
    assert!(total.conflicts > seeds, "{total:?}");
    assert!(total.fenced > seeds / 10, "{total:?}");
    assert!(total.restarts > seeds / 2, "{total:?}");
    assert!(total.replacements > seeds / 2, "{total:?}");
}

/// Runs seeds with a deliberate bug until one shows a conflict.
fn catches(faults: LeaseFaults) -> Option<(u64, String)> {
    (0..300).find_map(|seed| {
        run_seed(seed, STEPS, Bugs { faults })
            .err()
            .map(|e| (seed, e))
    })
}

#[test]
fn catches_a_clerk_that_ignores_terms() {
    let found = catches(LeaseFaults {
        clerk_ignores_term: true,
        ..LeaseFaults::default()
    });
    println!("{found:?}");
    assert!(
        found.is_some(),
        "a clerk accepting stale ministers went unnoticed"
    );
}

#[test]
fn catches_a_minister_that_does_not_wait_2h() {
    let found = catches(LeaseFaults {
        minister_skips_fence_wait: true,
        ..LeaseFaults::default()
    });
    println!("{found:?}");
    assert!(
        found.is_some(),
        "a minister granting without waiting 2H went unnoticed"
    );
}

#[test]
fn catches_a_clerk_that_skips_its_restart_wait() {
    let found = catches(LeaseFaults {
        clerk_skips_restart_wait: true,
        ..LeaseFaults::default()
    });
    println!("{found:?}");
    assert!(
        found.is_some(),
        "a restarted clerk serving at once went unnoticed"
    );
}
