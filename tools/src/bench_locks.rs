//! `govfs bench locks`: the ranged-locking experiments of the thesis
//! (section 5.2) and the lease targets of issue 5, on a local cluster
//! (3 node processes, the namespace app, one ministry of 3).
//!
//! * **uncontended**: one holder acquires and releases a whole-file write
//!   lease, over and over: on one file (`hot`: its clerk lock lingers, so
//!   the grant skips the lock round trip) and on a new file each time
//!   (`cold`: the minister locks the range on every clerk first).
//! * **table**: a file of 10 rows; W writers at once. *One row*: each
//!   writer writes one row (writer i row i mod 10, so up to 10 writers the
//!   rows are disjoint), holding a write lease on that row (`by row`) or on
//!   the whole file (`whole file`). *All rows*: each writer writes all 10
//!   rows, by row in its own random order with one lease per row, or
//!   under one whole-file lease. A writer's time runs from the common start
//!   to its last release; the table shows the mean over writers and runs,
//!   as the thesis did. Swept over row sizes (at `--row-writers` writers)
//!   and writer counts (at `--writers-row-mb`).
//! * **ops**: `--ops-clients` holders, each on its own file, acquire and
//!   release write leases (from the minister), then read leases (from the
//!   clerks), as fast as they can: lease operations per second.
//!
//! IO (`--io`): `real` (the default) writes the rows through the data
//! plane, each writer through a `File` under its own lease, on files of
//! `--replicas` copies (default 1); `none` measures the leases alone;
//! `simulated` sleeps while a lease is held for the time writing the row
//! would take at `--io-mbps` (the thesis's own method: it had no data plane
//! and slept at 200 MB/s, so every writer had a disk of its own). Real IO
//! on one machine shares one disk and two cores among all writers, which
//! caps what writing rows in parallel can gain; simulated IO shows what the
//! leases allow when each writer has its own bandwidth. A writer checks its
//! lease before every 4 MiB slice, as a real writer
//! checks it before every write; a lease revoked for a waiting writer
//! (after `revoke_after` = H) is re-acquired and the rest written under the
//! new one. Revocations are counted in the output. `GOVFS_BENCH_TRACE=1`
//! prints each write's timeline (lease granted, IO done, flushed,
//! released) to standard error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use govfs_client::{
    Client, ClientOptions, FileSystem, FsError, FsOptions, LeaseOptions, OpenMode, RegionLease,
    Session,
};
use govfs_core::lease::{Mode, Region};
use govfs_core::meta::{Ino, Layout};
use govfs_core::raft::GroupId;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bench_cmd::{percentile, Running};
use crate::cluster_cmd::{self, UpArgs};
use crate::config::AppKind;
pub(crate) use crate::thesis_data::Io;
use crate::thesis_data::{LockExperiment as Experiment, LockKind as Lock};

const ROWS: u64 = 10;
const MB: f64 = 1_000_000.0;
/// IO is done (and the lease checked) in slices of this many bytes.
const SLICE: u64 = 4 << 20;
const DIR: &str = "/bench-locks";

#[derive(Args, Debug)]
pub struct LocksArgs {
    /// Row sizes in MB (10^6 bytes) for the row-size sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [0.1f64, 1.0, 10.0, 20.0, 40.0, 80.0])]
    row_mb: Vec<f64>,
    /// Writers during the row-size sweep (the thesis used 6).
    #[arg(long, default_value_t = 6)]
    row_writers: usize,
    /// Writer counts for the writers sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16, 32])]
    writers: Vec<usize>,
    /// Row size in MB during the writers sweep (the thesis used 10).
    #[arg(long, default_value_t = 10.0)]
    writers_row_mb: f64,
    /// Runs of every table cell (the thesis made 5).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Copies of each chunk of the bench files (real IO).
    #[arg(long, default_value_t = 1)]
    replicas: u8,
    #[arg(long, value_enum, default_value_t = Io::Real)]
    io: Io,
    /// Simulated write speed in MB/s (the thesis used 200).
    #[arg(long, default_value_t = 200.0)]
    io_mbps: f64,
    /// Acquire-release cycles for the uncontended latency.
    #[arg(long, default_value_t = 2000)]
    uncontended: usize,
    /// Holders in the operations-per-second phase.
    #[arg(long, default_value_t = 64)]
    ops_clients: usize,
    /// Seconds each mode of the operations phase runs.
    #[arg(long, default_value_t = 3.0)]
    ops_seconds: f64,
    /// Skip parts: any of uncontended, table, ops.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Also write every measurement to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// What every task needs to take leases.
#[derive(Clone)]
pub(crate) struct Ctx {
    client: Client,
    ministry: GroupId,
    /// The index at which the bench files exist.
    seen: u64,
    opts: LeaseOptions,
    io: Io,
    io_mbps: f64,
    /// One slice of row data (real IO).
    data: Arc<Vec<u8>>,
    /// Copies of each chunk of the bench files.
    replicas: u8,
}

/// A bench file.
#[derive(Clone)]
struct Target {
    ino: Ino,
    path: String,
}

impl Ctx {
    fn session(&self) -> Session {
        let mut s = self.client.session();
        s.saw_index(self.ministry, self.seen);
        s
    }

    /// One uncontended lease operation pair: a whole-file `mode` lease
    /// on `file`, acquired and released.
    async fn cycle(
        &self,
        session: &mut Session,
        file: Ino,
        mode: Mode,
    ) -> Result<(), govfs_client::ClientError> {
        let grant = session
            .acquire_lease(self.ministry, file, Region::WHOLE, mode, &self.opts)
            .await?;
        session.release_lease(&grant).await
    }

    async fn lease(
        &self,
        session: &mut Session,
        file: Ino,
        region: Region,
    ) -> Result<RegionLease, String> {
        let grant = session
            .acquire_lease(self.ministry, file, region, Mode::Write, &self.opts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(RegionLease::start(session, grant, &self.opts))
    }

    /// Writes `bytes` at `offset` of `target` under a lease on `region`,
    /// re-acquiring it when it is lost; returns the revocations (or
    /// expiries) met.
    async fn write(
        &self,
        session: &mut Session,
        target: &Target,
        region: Region,
        offset: u64,
        bytes: u64,
    ) -> Result<u64, String> {
        let file = target.ino;
        let trace = std::env::var_os("GOVFS_BENCH_TRACE").is_some();
        let t0 = Instant::now();
        let mut lease = self.lease(session, file, region).await?;
        let t_lease = t0.elapsed();
        let mut lost = 0;
        let mut done = 0;
        let mut handle = match self.io {
            Io::Real => {
                let mut fs = FileSystem::new(self.client.clone(), FsOptions::default());
                Some(
                    fs.open_file(&target.path, OpenMode::Read)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            _ => None,
        };
        while self.io != Io::None && done < bytes {
            if lease.check().is_err() {
                lost += 1;
                lease = self.lease(session, file, region).await?;
            }
            let n = (bytes - done).min(SLICE);
            match &mut handle {
                Some(f) => {
                    // The write goes under this writer's lease, then the
                    // lease comes back for the next slice.
                    if let Err(l) = f.replace_lease(Some(lease)) {
                        return Err(format!("lease {:?} is for another file", l.grant().lease()));
                    }
                    let r = f.write_at(offset + done, &self.data[..n as usize]).await;
                    lease = match f.replace_lease(None) {
                        Ok(Some(l)) => l,
                        _ => return Err("the file handle lost the lease".into()),
                    };
                    match r {
                        Ok(()) => {}
                        Err(FsError::LeaseLost { .. }) => continue,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                None => {
                    tokio::time::sleep(Duration::from_secs_f64(n as f64 / (self.io_mbps * MB)))
                        .await;
                }
            }
            done += n;
        }
        let t_io = t0.elapsed();
        if let Some(mut f) = handle {
            f.flush().await.map_err(|e| e.to_string())?;
        }
        let t_flush = t0.elapsed();
        lease.release().await.map_err(|e| e.to_string())?;
        if trace {
            eprintln!(
                "write {region} {bytes} B: lease {t_lease:?}, io done {t_io:?}, flushed {t_flush:?}, released {:?}",
                t0.elapsed()
            );
        }
        Ok(lost)
    }
}

pub async fn run(a: &LocksArgs) -> Result<(), String> {
    if a.io == Io::Simulated && a.io_mbps <= 0.0 {
        return Err("--io-mbps must be positive".into());
    }
    let mut up = UpArgs::local(3);
    up.app = AppKind::Meta;
    eprintln!("bench locks: starting 3 nodes, one ministry of 3 (namespace app)");
    let cluster = Running(cluster_cmd::up(&up).await?);
    let clients = a
        .ops_clients
        .max(a.writers.iter().copied().max().unwrap_or(1))
        .max(a.row_writers);
    let options = ClientOptions::with_timeout(Duration::from_secs(2)).max_in_flight(clients * 4);
    let client = cluster.0.client_with(options).await?;
    let mut fs = FileSystem::new(client.clone(), FsOptions::default());
    let mut ctx = Ctx::prepare(&mut fs, a.io, a.io_mbps, a.replicas).await?;

    let mut csv = String::from("part,experiment,lock,row_mb,writers,run,writer,ms,lost\n");
    let skip = |p: &str| a.skip.iter().any(|s| s == p);
    if !skip("uncontended") {
        uncontended(a, &mut fs, &mut ctx, &mut csv).await?;
    }
    if !skip("table") {
        table(a, &mut fs, &mut ctx, &mut csv).await?;
    }
    if !skip("ops") {
        ops(a, &mut fs, &mut ctx, &mut csv).await?;
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("bench locks: wrote {}", path.display());
    }
    Ok(())
}

impl Ctx {
    /// The same, with writers doing `io`.
    pub(crate) fn with_io(&self, io: Io) -> Ctx {
        Ctx { io, ..self.clone() }
    }

    /// Makes the bench directory (in the ministry of "/") and warms the
    /// lease and data paths with one write.
    pub(crate) async fn prepare(
        fs: &mut FileSystem,
        io: Io,
        io_mbps: f64,
        replicas: u8,
    ) -> Result<Ctx, String> {
        fs.mkdir(DIR, 0o755).await.map_err(|e| e.to_string())?;
        let (ministry, _) = fs.locate(DIR, true).await.map_err(|e| e.to_string())?;
        let mut ctx = Ctx {
            client: fs.client().clone(),
            ministry,
            seen: 0,
            opts: LeaseOptions::default(),
            io,
            io_mbps,
            data: Arc::new(vec![0xA5; SLICE as usize]),
            replicas,
        };
        // The first lease waits out the new minister's quiet period.
        let warm = new_file(fs, &mut ctx, "warm").await?;
        let mut s = ctx.session();
        // ... and the first data written warms the data path (files, connections).
        ctx.write(&mut s, &warm, Region::WHOLE, 0, SLICE).await?;
        Ok(ctx)
    }
}

async fn new_file(fs: &mut FileSystem, ctx: &mut Ctx, name: &str) -> Result<Target, String> {
    let path = format!("{DIR}/{name}");
    let layout = Layout {
        replicas: ctx.replicas,
        ..Layout::default()
    };
    let attr = fs
        .create_with_layout(&path, 0o644, true, Some(layout))
        .await
        .map_err(|e| format!("create {name}: {e}"))?;
    ctx.seen = ctx.seen.max(fs.session().seen(ctx.ministry));
    Ok(Target {
        ino: attr.0.ino,
        path,
    })
}

fn summary(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    (mean, percentile(ms, 0.5), percentile(ms, 0.99))
}

async fn uncontended(
    a: &LocksArgs,
    fs: &mut FileSystem,
    ctx: &mut Ctx,
    csv: &mut String,
) -> Result<(), String> {
    let n = a.uncontended.max(1);
    let hot = new_file(fs, ctx, "hot").await?.ino;
    let mut cold = Vec::with_capacity(n);
    for i in 0..n {
        cold.push(new_file(fs, ctx, &format!("cold-{i}")).await?.ino);
    }
    let mut session = ctx.session();
    println!("\nUncontended whole-file write lease, acquire + release ({n} cycles, one holder):");
    println!(
        "{:>8} {:>10} {:>10} {:>10}",
        "file", "mean µs", "p50 µs", "p99 µs"
    );
    for (name, files) in [("hot", vec![hot; n]), ("cold", cold)] {
        let mut us = Vec::with_capacity(n);
        for (i, file) in files.into_iter().enumerate() {
            let t = Instant::now();
            ctx.cycle(&mut session, file, Mode::Write)
                .await
                .map_err(|e| e.to_string())?;
            let took = t.elapsed().as_secs_f64() * 1e6;
            us.push(took);
            let _ = writeln!(
                csv,
                "uncontended,{name},whole file,0,1,0,{i},{},0",
                took / 1e3
            );
        }
        let (mean, p50, p99) = summary(&mut us);
        println!("{name:>8} {mean:>10.0} {p50:>10.0} {p99:>10.0}");
    }
    Ok(())
}

/// One run of one cell on a new file: each writer's time in ms and the
/// leases it lost.
pub(crate) async fn cell(
    ctx: &Ctx,
    fs: &mut FileSystem,
    exp: Experiment,
    lock: Lock,
    row_mb: f64,
    writers: usize,
    run: usize,
) -> Result<Vec<(f64, u64)>, String> {
    // Names stay unique when two sweeps meet at the same point.
    static CELLS: AtomicU64 = AtomicU64::new(0);
    let row = (row_mb * MB).round().max(1.0) as u64;
    let name = format!(
        "{}-{}-{row}-{writers}-{run}-{}",
        exp.name(),
        lock.name(),
        CELLS.fetch_add(1, Ordering::Relaxed)
    );
    let mut ctx = ctx.clone();
    let file = new_file(fs, &mut ctx, &name).await?;
    let ctx = Arc::new(ctx);
    let barrier = Arc::new(Barrier::new(writers));
    let mut set = JoinSet::new();
    for w in 0..writers {
        let (ctx, barrier, file) = (Arc::clone(&ctx), Arc::clone(&barrier), file.clone());
        // Each writer's own row order, from a small per-writer generator.
        let mut order: Vec<u64> = (0..ROWS).collect();
        let mut x = (run as u64 * 1_000_003 + w as u64 * 7919) | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        set.spawn(async move {
            let mut session = ctx.session();
            barrier.wait().await;
            let start = Instant::now();
            let rows = |r: u64, n: u64| Region::new(r * row, (r + n) * row).expect("rows");
            let lost = match (exp, lock) {
                (Experiment::OneRow, Lock::ByRow) => {
                    let r = w as u64 % ROWS;
                    ctx.write(&mut session, &file, rows(r, 1), r * row, row)
                        .await?
                }
                (Experiment::OneRow, Lock::WholeFile) => {
                    let r = w as u64 % ROWS;
                    ctx.write(&mut session, &file, Region::WHOLE, r * row, row)
                        .await?
                }
                (Experiment::AllRows, Lock::ByRow) => {
                    let mut lost = 0;
                    for r in order {
                        lost += ctx
                            .write(&mut session, &file, rows(r, 1), r * row, row)
                            .await?;
                    }
                    lost
                }
                (Experiment::AllRows, Lock::WholeFile) => {
                    ctx.write(&mut session, &file, Region::WHOLE, 0, ROWS * row)
                        .await?
                }
            };
            Ok::<_, String>((start.elapsed().as_secs_f64() * 1e3, lost))
        });
    }
    let mut out = Vec::with_capacity(writers);
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

struct Cell {
    mean_ms: f64,
    lost: u64,
}

#[allow(clippy::too_many_arguments)]
async fn sweep_cell(
    a: &LocksArgs,
    ctx: &Ctx,
    fs: &mut FileSystem,
    exp: Experiment,
    lock: Lock,
    row_mb: f64,
    writers: usize,
    csv: &mut String,
) -> Result<Cell, String> {
    let mut all = Vec::new();
    let mut lost = 0;
    for run in 0..a.repeats.max(1) {
        for (w, (t, l)) in cell(ctx, fs, exp, lock, row_mb, writers, run)
            .await?
            .into_iter()
            .enumerate()
        {
            let _ = writeln!(
                csv,
                "table,{},{},{row_mb},{writers},{run},{w},{t},{l}",
                exp.name(),
                lock.name(),
            );
            all.push(t);
            lost += l;
        }
    }
    let (mean_ms, _, _) = summary(&mut all);
    Ok(Cell { mean_ms, lost })
}

async fn table(
    a: &LocksArgs,
    fs: &mut FileSystem,
    ctx: &mut Ctx,
    csv: &mut String,
) -> Result<(), String> {
    let io = match a.io {
        Io::None => "IO not included (no data is written; the leases alone)".to_string(),
        Io::Simulated => format!(
            "IO simulated by sleeping at {} MB/s while holding the lease, as the thesis did",
            a.io_mbps
        ),
        Io::Real => format!(
            "real data written through the data plane under each writer's lease, R={}",
            a.replicas
        ),
    };
    println!(
        "\nThesis section 5.2, mean time per writer in ms ({io}; {} runs a cell)",
        a.repeats
    );
    let sweeps: [(&str, Vec<(f64, usize)>); 2] = [
        (
            "row size (MB)",
            a.row_mb.iter().map(|&mb| (mb, a.row_writers)).collect(),
        ),
        (
            "writers",
            a.writers.iter().map(|&w| (a.writers_row_mb, w)).collect(),
        ),
    ];
    let mut targets = Vec::new();
    for (label, points) in sweeps {
        if points.is_empty() {
            continue;
        }
        let fixed = if label == "writers" {
            format!("rows of {} MB", a.writers_row_mb)
        } else {
            format!("{} writers", a.row_writers)
        };
        println!("\n{label:<24} ({fixed})");
        let mut head = format!("{:<24}", "");
        for (mb, w) in &points {
            let v = if label == "writers" {
                w.to_string()
            } else {
                mb.to_string()
            };
            let _ = write!(head, "{v:>10}");
        }
        println!("{head}");
        for exp in [Experiment::OneRow, Experiment::AllRows] {
            let mut by = Vec::new();
            for lock in [Lock::ByRow, Lock::WholeFile] {
                let mut line = format!("{:<24}", format!("{}, {}", exp.label(), lock.label()));
                let mut lost_line = String::new();
                let mut row = Vec::new();
                for &(mb, w) in &points {
                    let c = sweep_cell(a, ctx, fs, exp, lock, mb, w, csv).await?;
                    let _ = write!(line, "{:>10.2}", c.mean_ms);
                    if c.lost > 0 {
                        let _ = write!(
                            lost_line,
                            " {}:{}",
                            if label == "writers" { w as f64 } else { mb },
                            c.lost
                        );
                    }
                    row.push((mb, w, c.mean_ms));
                }
                println!("{line}");
                if !lost_line.is_empty() {
                    println!(
                        "{:<24}leases lost and re-acquired (point:count):{lost_line}",
                        ""
                    );
                }
                by.push(row);
            }
            if label == "writers" && exp == Experiment::OneRow {
                for ((_, w, row_ms), (_, _, whole_ms)) in by[0].iter().zip(&by[1]) {
                    targets.push((*w, *row_ms, *whole_ms));
                }
            }
        }
    }
    for (w, row_ms, whole_ms) in targets {
        if w == 1 {
            println!(
                "\ntarget: one writer, by row / whole file = {:.3} (goal within 10%: {})",
                row_ms / whole_ms,
                if (row_ms / whole_ms - 1.0).abs() <= 0.10 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        if w == 8 {
            println!(
                "target: 8 writers on disjoint rows, whole file / by row = {:.2}x (goal at least 4x: {})",
                whole_ms / row_ms,
                if whole_ms / row_ms >= 4.0 { "met" } else { "NOT met" }
            );
        }
    }
    Ok(())
}

async fn ops(
    a: &LocksArgs,
    fs: &mut FileSystem,
    ctx: &mut Ctx,
    csv: &mut String,
) -> Result<(), String> {
    let n = a.ops_clients.max(1);
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        files.push(new_file(fs, ctx, &format!("ops-{i}")).await?.ino);
    }
    println!(
        "\nLease operations per second, {n} holders on a file each ({:.1} s a mode):",
        a.ops_seconds
    );
    println!(
        "{:>6} {:>12} {:>10} {:>10} {:>10}",
        "mode", "ops/s", "p50 µs", "p99 µs", "errors"
    );
    for mode in [Mode::Write, Mode::Read] {
        let until = Instant::now() + Duration::from_secs_f64(a.ops_seconds.max(0.1));
        let started = Instant::now();
        let mut set = JoinSet::new();
        for &file in &files {
            let ctx = ctx.clone();
            set.spawn(async move {
                let mut session = ctx.session();
                let (mut us, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < until {
                    let t = Instant::now();
                    match ctx.cycle(&mut session, file, mode).await {
                        Ok(()) => us.push(t.elapsed().as_secs_f64() * 1e6),
                        Err(_) => errors += 1,
                    }
                }
                (us, errors)
            });
        }
        let (mut us, mut errors) = (Vec::new(), 0);
        while let Some(r) = set.join_next().await {
            let (u, e) = r.map_err(|e| e.to_string())?;
            us.extend(u);
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        // An acquire and a release are two lease operations.
        let rate = 2.0 * us.len() as f64 / secs;
        let (_, p50, p99) = summary(&mut us);
        let name = match mode {
            Mode::Write => "write",
            Mode::Read => "read",
        };
        let _ = writeln!(csv, "ops,{name},whole file,0,{n},0,0,{rate},{errors}");
        println!("{name:>6} {rate:>12.0} {p50:>10.0} {p99:>10.0} {errors:>10}");
    }
    println!("(an operation is an acquire or a release; latency is one acquire + release)");
    Ok(())
}
