//! `govfs bench`: measurements against a real local cluster.
//!
//! * `failover`: SIGKILL the minister N times; time from the kill to the
//!   first write its successor commits (as a client sees it).
//! * `commit`: committed client writes per second through a 3-node cluster
//!   on loopback, against the in-process consensus driver at the same
//!   concurrency, measured in the same run and reported as a ratio. The
//!   load is `--clients` tokio tasks sharing one client (its pipelined
//!   connections), each keeping `--pipeline` writes outstanding through as
//!   many sessions.
//! * `meta`: namespace operation rates (`bench_meta.rs`).
//! * `chunks`: the chunk store against the raw disk (`bench_chunks.rs`).
//! * `locks`: ranged write leases, the thesis's table (`bench_locks.rs`).
//! * `data`: the data plane against the raw disk (`bench_data.rs`).
//! * `rtt`: where the time of one small request goes (`bench_rtt.rs`).
//! * `thesis`: the thesis's evaluation, plotted and reported (`bench_thesis.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use govfs_benches::consensus::{Cluster as InProcess, Options, Storage};
use govfs_client::{Client, ClientOptions, Session};
use govfs_core::node::kv::KvOp;
use tokio::task::JoinSet;

use crate::cluster_cmd::{self, LocalCluster, UpArgs};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Minister failover time over repeated SIGKILLs.
    Failover(FailoverArgs),
    /// Cluster commit throughput against the in-process consensus core.
    Commit(CommitArgs),
    /// Namespace create/stat/readdir/remove rates on a local `--app meta` cluster.
    Meta(crate::bench_meta::MetaArgs),
    /// The chunk store against the raw disk under it (io_uring, O_DIRECT).
    Chunks(crate::bench_chunks::ChunksArgs),
    /// The data plane against the raw disk: bandwidth, IOPS, write latency, async acks.
    Data(crate::bench_data::DataArgs),
    /// Ranged write leases: the thesis's section 5.2 table, lease latency and rate.
    Locks(crate::bench_locks::LocksArgs),
    /// One request at a time, hop by hop: ping-pong, core loop, storage shard, disk.
    Rtt(crate::bench_rtt::RttArgs),
    /// The thesis's five experiments (section 5): CSV, figures and docs/evaluation.md.
    Thesis(crate::bench_thesis::ThesisArgs),
}

#[derive(Args, Debug)]
pub struct FailoverArgs {
    #[arg(long, default_value_t = 20)]
    kills: usize,
    #[arg(long, default_value_t = 5)]
    nodes: u64,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Concurrent client tasks, each with its own session(s) over the shared connections.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Writes each task keeps outstanding, through as many sessions.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Client connections per node (requests go round-robin over them).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

pub async fn run(cmd: BenchCmd) -> i32 {
    let bench = async {
        match cmd {
            BenchCmd::Failover(a) => failover(&a).await,
            BenchCmd::Commit(a) => commit(&a).await,
            BenchCmd::Meta(a) => crate::bench_meta::run(&a).await,
            BenchCmd::Chunks(a) => crate::bench_chunks::run(&a),
            BenchCmd::Locks(a) => crate::bench_locks::run(&a).await,
            BenchCmd::Data(a) => crate::bench_data::run(&a).await,
            BenchCmd::Rtt(a) => crate::bench_rtt::run(&a).await,
            BenchCmd::Thesis(a) => crate::bench_thesis::run(&a).await,
        }
    };
    // Interrupted, the bench's future is dropped, and with it the local
    // cluster it started (`Running` stops and deletes it): no node
    // processes are left behind.
    let result = tokio::select! {
        r = bench => r,
        _ = interrupted() => Err("interrupted: the cluster it started is stopped".to_string()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs bench: {e}");
            1
        }
    }
}

/// SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        // No signal handling: never interrupted this way.
        _ => std::future::pending().await,
    }
}

/// A local cluster, stopped and deleted when dropped.
pub(crate) struct Running(pub(crate) LocalCluster);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = cluster_cmd::down(&self.0.dir);
        let _ = std::fs::remove_dir_all(&self.0.dir);
    }
}

async fn start(nodes: u64) -> Result<Running, String> {
    Ok(Running(cluster_cmd::up(&UpArgs::local(nodes)).await?))
}

fn append(value: u64) -> Vec<u8> {
    postcard::to_stdvec(&KvOp::Append {
        key: (value % 16) as u8,
        value,
    })
    .expect("ops encode")
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// When a write's answer arrived, and which node gave it.
type Answered = (Instant, Option<std::net::SocketAddr>);

async fn failover(a: &FailoverArgs) -> Result<(), String> {
    let cluster = start(a.nodes).await?;
    let probe = probe_client(&cluster).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let commits: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let mut writer = probe_client(&cluster).await?.session();
    let (s, log) = (stop.clone(), commits.clone());
    let w = tokio::spawn(async move {
        let mut v = 0;
        while !s.load(Ordering::Relaxed) {
            v += 1;
            if writer
                .submit(1, append(v), Duration::from_secs(30))
                .await
                .is_ok()
            {
                log.lock()
                    .expect("lock")
                    .push((Instant::now(), writer.last_answer_from()));
            }
        }
    });
    let mut times = Vec::new();
    for i in 0..a.kills {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let minister = wait_minister(&probe, Duration::from_secs(20))
            .await
            .ok_or("no serving minister within 20 s")?;
        let killed_addr = probe.node_addr(minister);
        let killed_at = Instant::now();
        cluster_cmd::kill_node(&cluster.0.dir, minister, "KILL")?;
        let deadline = killed_at + Duration::from_secs(30);
        let first = loop {
            // The dead minister's last answers may still arrive: count the successor's only.
            let found = commits
                .lock()
                .expect("lock")
                .iter()
                .find(|(t, from)| *t > killed_at && *from != killed_addr)
                .map(|(t, _)| *t);
            if let Some(t) = found {
                break t;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "kill {i}: no write committed within 30 s of killing node {minister}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let ms = (first - killed_at).as_secs_f64() * 1000.0;
        eprintln!(
            "kill {:>2}: minister {minister} -> first write by its successor after {ms:.0} ms",
            i + 1
        );
        times.push(ms);
        cluster_cmd::start_node(&cluster.0.dir, minister)?;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = w.await;
    times.sort_by(|x, y| x.total_cmp(y));
    println!("| kills | p50 | p99 | min | max |\n|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.first().copied().unwrap_or(f64::NAN),
        times.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

async fn probe_client(c: &Running) -> Result<Client, String> {
    c.0.client(Duration::from_millis(500)).await
}

/// Repairs after a kill re-appoint the ministry; wait for a serving minister.
async fn wait_minister(client: &Client, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(m) = minister_of(client).await {
            return Some(m);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn minister_of(client: &Client) -> Option<u64> {
    client
        .status_all()
        .await
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .find(|s| s.serving_ministers().any(|g| g == 1))
        .map(|s| s.id)
}

/// One write through `session`; hands the session back for the next.
async fn write_once(mut session: Session, value: u64) -> (Session, bool) {
    let ok = session
        .submit(1, append(value), Duration::from_secs(10))
        .await
        .is_ok();
    (session, ok)
}

/// One client task: `pipeline` sessions, each with one write outstanding.
async fn client_task(client: Client, task: u64, pipeline: usize, done: Arc<AtomicU64>) {
    let mut writes = JoinSet::new();
    let mut v = task << 32;
    for _ in 0..pipeline {
        v += 1;
        writes.spawn(write_once(client.session(), v));
    }
    while let Some(joined) = writes.join_next().await {
        let Ok((session, ok)) = joined else { continue };
        if ok {
            done.fetch_add(1, Ordering::Relaxed);
        }
        v += 1;
        writes.spawn(write_once(session, v));
    }
}

async fn commit(a: &CommitArgs) -> Result<(), String> {
    let clients = a.clients.max(1);
    let pipeline = a.pipeline.max(1);
    let outstanding = clients * pipeline;
    // In-process: the same Raft core, three members, in-memory transport,
    // durable logs, as many proposers as writes outstanding.
    let mut inproc = InProcess::new(Options::new(outstanding, Storage::Durable));
    let t = Instant::now();
    let stats = inproc.run(20_000.max(outstanding as u64 * 50));
    let inproc_rate = stats.committed as f64 / t.elapsed().as_secs_f64();
    inproc.finish();

    let cluster = start(3).await?;
    let options = ClientOptions::with_timeout(Duration::from_secs(2))
        .connections_per_node(a.connections)
        .max_in_flight(outstanding);
    let client = cluster.0.client_with(options).await?;
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client_task(
                client.clone(),
                c as u64,
                pipeline,
                done.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (n0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let cluster_rate = (done.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(cluster);
    println!("| clients | pipeline | in-process durable (entries/s) | 3-node cluster on loopback (writes/s) | ratio |\n|---:|---:|---:|---:|---:|");
    println!(
        "| {clients} | {pipeline} | {inproc_rate:.0} | {cluster_rate:.0} | {:.3} |",
        cluster_rate / inproc_rate
    );
    Ok(())
}
