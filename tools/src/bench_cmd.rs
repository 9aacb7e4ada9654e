//! `govfs bench`: measurements against a real local cluster.
//!
//! * `failover`: SIGKILL the minister N times; time from the kill to the
//!   first write its successor commits (as a client sees it).
//! * `commit`: committed client writes per second through a 3-node cluster
//!   on loopback, against the in-process consensus driver at the same
//!   concurrency, measured in the same run and reported as a ratio.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use govfs_benches::consensus::{Cluster as InProcess, Options, Storage};
use govfs_client::Client;
use govfs_core::node::kv::KvOp;
use govfs_core::raft::Role;

use crate::cluster_cmd::{self, LocalCluster, UpArgs};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Minister failover time over repeated SIGKILLs.
    Failover(FailoverArgs),
    /// Cluster commit throughput against the in-process consensus core.
    Commit(CommitArgs),
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
    /// Concurrent clients (each with one write outstanding).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

pub fn run(cmd: BenchCmd) -> i32 {
    let result = match cmd {
        BenchCmd::Failover(a) => failover(&a),
        BenchCmd::Commit(a) => commit(&a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs bench: {e}");
            1
        }
    }
}

struct Running(LocalCluster);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = cluster_cmd::down(&self.0.dir);
        let _ = std::fs::remove_dir_all(&self.0.dir);
    }
}

fn start(nodes: u64) -> Result<(Running, Client), String> {
    let c = Running(cluster_cmd::up(&UpArgs::local(nodes))?);
    let client = c.0.client(Duration::from_secs(2))?;
    Ok((c, client))
}

fn append(value: u64) -> Vec<u8> {
    postcard::to_stdvec(&KvOp::Append {
        key: (value % 16) as u8,
        value,
    })
    .expect("ops encode")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// When a write's answer arrived, and which node gave it.
type Answered = (Instant, Option<std::net::SocketAddr>);

fn failover(a: &FailoverArgs) -> Result<(), String> {
    let (cluster, mut probe) = start(a.nodes)?;
    let stop = Arc::new(AtomicBool::new(false));
    let commits: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let mut writer = probe_client(&cluster)?;
    let (s, log) = (stop.clone(), commits.clone());
    let w = std::thread::spawn(move || {
        let mut v = 0;
        while !s.load(Ordering::Relaxed) {
            v += 1;
            if writer.submit(1, append(v), Duration::from_secs(30)).is_ok() {
                log.lock()
                    .expect("lock")
                    .push((Instant::now(), writer.last_answer_from()));
            }
        }
    });
    let mut times = Vec::new();
    for i in 0..a.kills {
        std::thread::sleep(Duration::from_millis(500));
        let minister = wait_minister(&mut probe, Duration::from_secs(20))
            .ok_or("no serving minister within 20 s")?;
        let killed_addr = probe.node_addr(minister);
        let killed_at = Instant::now();
        cluster_cmd::kill_node(&cluster.0.dir, minister, "KILL")?;
        let deadline = killed_at + Duration::from_secs(30);
        let first = loop {
            // The dead minister's last answers may still arrive: count the successor's only.
            let log = commits.lock().expect("lock");
            if let Some((t, _)) = log
                .iter()
                .find(|(t, from)| *t > killed_at && *from != killed_addr)
            {
                break *t;
            }
            drop(log);
            if Instant::now() > deadline {
                return Err(format!(
                    "kill {i}: no write committed within 30 s of killing node {minister}"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
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
    let _ = w.join();
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

fn probe_client(c: &Running) -> Result<Client, String> {
    c.0.client(Duration::from_millis(500))
}

/// Repairs after a kill re-appoint the ministry; wait for a serving minister.
fn wait_minister(client: &mut Client, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(m) = minister_of(client) {
            return Some(m);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn minister_of(client: &mut Client) -> Option<u64> {
    client
        .status_all()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .find(|s| {
            s.serving
                && s.shard
                    .is_some_and(|m| m.group == 1 && m.role == Role::Leader)
        })
        .map(|s| s.id)
}

fn commit(a: &CommitArgs) -> Result<(), String> {
    let clients = a.clients.max(1);
    // In-process: the same Raft core, three members, in-memory transport, durable logs.
    let mut inproc = InProcess::new(Options::new(clients, Storage::Durable));
    let t = Instant::now();
    let stats = inproc.run(20_000.max(clients as u64 * 50));
    let inproc_rate = stats.committed as f64 / t.elapsed().as_secs_f64();
    inproc.finish();

    let (cluster, _) = start(3)?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..clients {
        let mut client = probe_client(&cluster)?;
        let (done, stop) = (done.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut v = (c as u64) << 32;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                if client.submit(1, append(v), Duration::from_secs(10)).is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (n0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(a.seconds));
    let cluster_rate = (done.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    drop(cluster);
    println!("| clients | in-process durable (entries/s) | 3-node cluster on loopback (writes/s) | ratio |\n|---:|---:|---:|---:|");
    println!(
        "| {clients} | {inproc_rate:.0} | {cluster_rate:.0} | {:.3} |",
        cluster_rate / inproc_rate
    );
    Ok(())
}
