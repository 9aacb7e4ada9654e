//! `govfs bench thesis`: the five experiments of the thesis's evaluation
//! (section 5) on a local cluster, with real data IO; their raw results as
//! CSV, figures like the thesis's 13 to 20 (PNG and SVG) and the report
//! `docs/evaluation.md`, all made from the CSV files.
//!
//! The cluster: 3 node processes running the namespace app, each with one
//! core thread and a ministry shard for each ministry the largest count
//! asks for; ministries of 3 (a member on every node). Ministry 1 holds
//! "/". As in the thesis (static subtree partitioning, `n - 1` extra
//! ministries at paths `/n`), the directories `/d1` .. `/dM` are made
//! first and, for a count of M ministries, `/d2` .. `/dM` are split off
//! to ministries of their own (`govfs ministry split`), so that each
//! ministry holds one of the M directories the workload uses. Counts run
//! in ascending order on the one cluster; a split stays.
//!
//! 1. **List, batch** and 2. **list, stride** (thesis 5.1): `--list-clients`
//!    clients each send `--list-requests` readdir requests, one after the
//!    other, spread evenly over the M directories `/dK/list` (each holding
//!    `--dir-files` files). Batch: all of a client's requests for one
//!    directory, then the next; stride: the next request goes to the next
//!    directory. A client resolves each directory once (its ministry and
//!    inode, as a client that caches its lookups) and then times the
//!    readdir round trip alone, answered by any serving member (session
//!    consistency).
//! 3. **Create** (thesis 5.1): `--create-clients` clients each create
//!    `--create-requests` files at once, request j of client c in
//!    `/dK/new` with K = (c + j) mod M + 1 (exclusive creates through the
//!    ministry's log).
//! 4. **One row** and 5. **all rows** (thesis 5.2): the locking cells of
//!    `govfs bench locks` (a file of 10 rows, writers by row or by whole
//!    file), over row sizes at `--row-writers` writers and over writer
//!    counts at `--writers-row-mb`; real data through the data plane by
//!    default. These use ministry 1.
//!
//! Every cell runs `--runs` times (the thesis: 5). `--render-only` skips the
//! measurements and makes the plots and the report again from the CSV files
//! in `--out`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use govfs_client::{ClientOptions, FileSystem, FsOptions};
use govfs_core::meta::{Ino, MetaOp, MetaReply};
use govfs_core::raft::GroupId;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bench_cmd::Running;
use crate::bench_locks::{self, Ctx, Io};
use crate::cluster_cmd::{self, UpArgs};
use crate::config::AppKind;
use crate::thesis_data::{
    self as data, CreateRow, ListRow, LockExperiment, LockKind, LockRow, Order, Sweep,
};
use crate::{thesis_plot, thesis_report};

const NODES: u64 = 3;
/// The most ministries the cluster is built for (the thesis went to 5).
const MAX_MINISTRIES: usize = 8;
const MB: f64 = 1_000_000.0;

#[derive(Args, Debug, Clone)]
pub struct ThesisArgs {
    /// Where the CSV files and the figures go.
    #[arg(long, default_value = "docs/evaluation")]
    pub out: PathBuf,
    /// The markdown report.
    #[arg(long, default_value = "docs/evaluation.md")]
    pub report: PathBuf,
    /// Ministries counts for the list and create experiments.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3, 4, 5])]
    pub ministries: Vec<usize>,
    /// Runs of every experiment and cell (the thesis: 5).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Concurrent list clients (the thesis: 30).
    #[arg(long, default_value_t = 30)]
    pub list_clients: usize,
    /// List requests per client and run (the thesis: 2000).
    #[arg(long, default_value_t = 2000)]
    pub list_requests: usize,
    /// Files in each listed directory (the thesis: 10).
    #[arg(long, default_value_t = 10)]
    pub dir_files: usize,
    /// Concurrent create clients (the thesis: 9).
    #[arg(long, default_value_t = 9)]
    pub create_clients: usize,
    /// Creates per client and run (the thesis: 10).
    #[arg(long, default_value_t = 10)]
    pub create_requests: usize,
    /// Row sizes in MB for the row-size sweep (the thesis's).
    #[arg(long, value_delimiter = ',', default_values_t = [0.1f64, 1.0, 10.0, 20.0, 40.0, 80.0])]
    pub row_mb: Vec<f64>,
    /// Writers during the row-size sweep (the thesis: 6).
    #[arg(long, default_value_t = 6)]
    pub row_writers: usize,
    /// Writer counts for the writers sweep (the thesis's).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16, 32])]
    pub writers: Vec<usize>,
    /// Row size in MB during the writers sweep (the thesis: 10).
    #[arg(long, default_value_t = 10.0)]
    pub writers_row_mb: f64,
    /// Row IO, each a sweep of its own: real data through the data plane,
    /// simulated (a sleep at 200 MB/s while the lease is held, the thesis's
    /// method), none (the leases alone).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Io::Real, Io::Simulated])]
    pub io: Vec<Io>,
    /// Skip experiments: any of list, create, locks (their CSV file, if
    /// there is one from an earlier run, is used as it is).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Make the plots and the report from the CSV files in `--out` only.
    #[arg(long)]
    pub render_only: bool,
}

impl ThesisArgs {
    fn check(&self) -> Result<(), String> {
        let counts = [
            self.runs,
            self.list_clients,
            self.list_requests,
            self.dir_files,
            self.create_clients,
            self.create_requests,
            self.row_writers,
        ];
        if self.io.is_empty() {
            return Err("--io takes at least one of real, simulated, none".into());
        }
        if counts.contains(&0) || self.writers.contains(&0) {
            return Err(
                "counts (runs, clients, requests, files, writers) must be at least 1".into(),
            );
        }
        if self.ministries.is_empty()
            || self
                .ministries
                .iter()
                .any(|&m| m == 0 || m > MAX_MINISTRIES)
        {
            return Err(format!(
                "--ministries takes counts from 1 to {MAX_MINISTRIES}"
            ));
        }
        if self.dir_files > 1024 {
            return Err("--dir-files: a listing is one page, at most 1024 entries".into());
        }
        let rows = self.row_mb.iter().chain([&self.writers_row_mb]);
        if rows.into_iter().any(|&mb| !(mb > 0.0 && mb <= 1000.0)) {
            return Err("row sizes must be above 0 and at most 1000 MB".into());
        }
        if let Some(s) = self
            .skip
            .iter()
            .find(|s| !["list", "create", "locks"].contains(&s.as_str()))
        {
            return Err(format!(
                "--skip {s:?}: the experiments are list, create, locks"
            ));
        }
        Ok(())
    }

    fn skips(&self, experiment: &str) -> bool {
        self.skip.iter().any(|s| s == experiment)
    }
}

pub async fn run(a: &ThesisArgs) -> Result<(), String> {
    a.check()?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    if !a.render_only {
        measure(a).await?;
    }
    let read = |name: &str| {
        let path = a.out.join(name);
        (path.exists(), path)
    };
    let list = match read(data::LIST_CSV) {
        (true, p) => data::read_list(&p)?,
        _ => Vec::new(),
    };
    let create = match read(data::CREATE_CSV) {
        (true, p) => data::read_create(&p)?,
        _ => Vec::new(),
    };
    let locks = match read(data::LOCKS_CSV) {
        (true, p) => data::read_locks(&p)?,
        _ => Vec::new(),
    };
    if list.is_empty() && create.is_empty() && locks.is_empty() {
        return Err(format!("no results in {}", a.out.display()));
    }
    let figures = thesis_plot::render_all(&a.out, &list, &create, &locks)?;
    let about = std::fs::read_to_string(a.out.join(RUN_FILE)).unwrap_or_default();
    let text = thesis_report::render(&thesis_report::Input {
        out: &a.out,
        report: &a.report,
        about: &about,
        list: &list,
        create: &create,
        locks: &locks,
        figures: &figures,
    });
    std::fs::write(&a.report, text).map_err(|e| format!("{}: {e}", a.report.display()))?;
    eprintln!(
        "bench thesis: {} figures in {}, report {}",
        figures.len(),
        a.out.display(),
        a.report.display()
    );
    Ok(())
}

/// What the measured run was: the command, when, on what.
const RUN_FILE: &str = "run.txt";

fn describe_run() -> String {
    let command: Vec<String> = std::env::args().skip(1).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "command: govfs {}\nunix_time: {secs}\ncpus: {cpus} ({model})\ncommit: {}\n",
        command.join(" "),
        commit()
    )
}

/// The commit of the working directory, if it is a git checkout.
fn commit() -> String {
    std::process::Command::new("git")
        // "-dirty" when the working tree had changes: the binary may not
        // be the commit's.
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A bar for one experiment, under the overall one.
fn bar(multi: &MultiProgress, len: u64, what: &str, bytes: bool) -> ProgressBar {
    let b = multi.add(ProgressBar::new(len));
    let counts = if bytes {
        "{bytes}/{total_bytes}"
    } else {
        "{pos}/{len}"
    };
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix:>12}} [{{bar:30}}] {counts} {{msg}} ({{elapsed}}, {{eta}} left)"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_prefix(what.to_string());
    b
}

async fn measure(a: &ThesisArgs) -> Result<(), String> {
    let mut counts = a.ministries.clone();
    counts.sort_unstable();
    counts.dedup();
    let most = counts.last().copied().unwrap_or(1);
    let mut up = UpArgs::local(NODES);
    up.app = AppKind::Meta;
    up.cores = 1;
    up.shards_per_core = most as u32;
    eprintln!(
        "bench thesis: starting {NODES} nodes with {most} ministry shard(s) each (ministries of 3)"
    );
    let cluster = Running(cluster_cmd::up(&up).await?);
    let in_flight = a
        .list_clients
        .max(a.create_clients)
        .max(a.row_writers)
        .max(a.writers.iter().copied().max().unwrap_or(1))
        * 4;
    let options = ClientOptions::with_timeout(Duration::from_secs(2)).max_in_flight(in_flight);
    let client = cluster.0.client_with(options).await?;
    let mut fs = FileSystem::new(client, FsOptions::default());
    std::fs::write(a.out.join(RUN_FILE), describe_run())
        .map_err(|e| format!("{}: {e}", a.out.display()))?;

    let multi = MultiProgress::new();
    let experiments = [
        ("list", !a.skips("list")),
        ("create", !a.skips("create")),
        ("locks", !a.skips("locks")),
    ];
    let overall = multi.add(ProgressBar::new(
        experiments.iter().filter(|(_, on)| *on).count() as u64,
    ));
    overall.set_style(
        ProgressStyle::with_template("experiments {pos}/{len} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    for d in 1..=most {
        make_dir(&mut fs, d, a.dir_files).await?;
    }
    let mut list_csv = format!("{}\n", data::LIST_HEADER);
    let mut create_csv = format!("{}\n", data::CREATE_HEADER);
    let list_bar = bar(
        &multi,
        if a.skips("list") {
            0
        } else {
            (counts.len() * 2 * a.runs * a.list_clients * a.list_requests) as u64
        },
        "list",
        false,
    );
    let create_bar = bar(
        &multi,
        if a.skips("create") {
            0
        } else {
            (counts.len() * a.runs * a.create_clients * a.create_requests) as u64
        },
        "create",
        false,
    );
    let mut held = 1;
    for &m in &counts {
        while held < m {
            held += 1;
            let path = format!("/d{held}");
            let ministry = fs
                .split(&path)
                .await
                .map_err(|e| format!("split {path}: {e}"))?;
            multi.suspend(|| eprintln!("bench thesis: {path} is now ministry {ministry}"));
        }
        let dirs = resolve(&mut fs, m).await?;
        if !a.skips("list") {
            overall.set_message(format!("list, {m} ministries"));
            for order in [Order::Batch, Order::Stride] {
                for run in 0..a.runs {
                    for r in list_run(a, &fs, &dirs, m, order, run, &list_bar).await? {
                        data::list_line(&mut list_csv, &r);
                    }
                }
            }
        }
        if !a.skips("create") {
            overall.set_message(format!("create, {m} ministries"));
            for run in 0..a.runs {
                for r in create_run(a, &fs, &dirs, m, run, &create_bar).await? {
                    data::create_line(&mut create_csv, &r);
                }
            }
        }
    }
    let write = |name: &str, text: &str| {
        let path = a.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    if !a.skips("list") {
        list_bar.finish();
        overall.inc(1);
        write(data::LIST_CSV, &list_csv)?;
    }
    if !a.skips("create") {
        create_bar.finish();
        overall.inc(1);
        write(data::CREATE_CSV, &create_csv)?;
    }
    if !a.skips("locks") {
        overall.set_message("locks, ministry 1".to_string());
        let text = locks(a, &mut fs, &multi).await?;
        overall.inc(1);
        write(data::LOCKS_CSV, &text)?;
    }
    overall.finish_with_message("done");
    Ok(())
}

/// `/dD/list` with `files` files, and `/dD/new` for the creates.
async fn make_dir(fs: &mut FileSystem, d: usize, files: usize) -> Result<(), String> {
    let err = |p: &str, e: govfs_client::FsError| format!("{p}: {e}");
    for p in [
        format!("/d{d}"),
        format!("/d{d}/list"),
        format!("/d{d}/new"),
    ] {
        fs.mkdir(&p, 0o755).await.map_err(|e| err(&p, e))?;
    }
    for f in 0..files {
        let p = format!("/d{d}/list/f{f:02}");
        fs.create(&p, 0o644, true).await.map_err(|e| err(&p, e))?;
    }
    Ok(())
}

/// One workload directory, resolved.
#[derive(Clone, Copy)]
struct Dir {
    ministry: GroupId,
    list: Ino,
    new: Ino,
    /// What the resolving handle saw of the ministry: a client's reads
    /// wait for it, so a listing is never older than the setup.
    seen: u64,
}

/// The M directories, each in a ministry of its own.
async fn resolve(fs: &mut FileSystem, m: usize) -> Result<Vec<Dir>, String> {
    let mut dirs: Vec<Dir> = Vec::with_capacity(m);
    for d in 1..=m {
        let list = format!("/d{d}/list");
        let (ministry, l) = fs
            .locate(&list, true)
            .await
            .map_err(|e| format!("{list}: {e}"))?;
        let new = format!("/d{d}/new");
        let (_, n) = fs
            .locate(&new, true)
            .await
            .map_err(|e| format!("{new}: {e}"))?;
        if dirs.iter().any(|x| x.ministry == ministry) {
            return Err(format!(
                "/d{d} is in ministry {ministry}, which holds another workload directory"
            ));
        }
        dirs.push(Dir {
            ministry,
            list: l.ino,
            new: n.ino,
            seen: fs.session().seen(ministry),
        });
    }
    Ok(dirs)
}

/// A handle of its own for one client, which has seen the setup.
fn handle(fs: &FileSystem, dirs: &[Dir]) -> FileSystem {
    let mut own = FileSystem::new(fs.client().clone(), fs.options().clone());
    for d in dirs {
        own.saw(d.ministry, d.seen);
    }
    own
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Which of the M directories request j of client c lists.
fn list_dir(order: Order, c: usize, j: usize, requests: usize, m: usize) -> usize {
    match order {
        // The requests in M consecutive blocks, one block per directory.
        Order::Batch => (c + j * m / requests) % m,
        Order::Stride => (c + j) % m,
    }
}

/// What client `c` sends as its request `j`: the index of the directory
/// (`0..M`), the operation, and a name for errors.
type Request = Arc<dyn Fn(usize, usize) -> (usize, MetaOp, String) + Send + Sync>;
/// Whether an answer is the one the request expects.
type Check = Arc<dyn Fn(&MetaReply) -> Result<(), String> + Send + Sync>;

/// `clients` clients, each with a handle of its own, start together and
/// send `requests` requests one after the other, each timed; the first
/// unexpected answer ends the run with an error.
fn timed_clients(
    fs: &FileSystem,
    dirs: &[Dir],
    (clients, requests): (usize, usize),
    request: Request,
    check: Check,
    progress: &ProgressBar,
) -> JoinSet<Result<Vec<Timed>, String>> {
    let barrier = Arc::new(Barrier::new(clients));
    let mut set = JoinSet::new();
    for c in 0..clients {
        let mut own = handle(fs, dirs);
        let (dirs, barrier, progress) = (dirs.to_vec(), barrier.clone(), progress.clone());
        let (request, check) = (Arc::clone(&request), Arc::clone(&check));
        set.spawn(async move {
            barrier.wait().await;
            let mut out = Vec::with_capacity(requests);
            for j in 0..requests {
                let (k, op, name) = request(c, j);
                let sent = Instant::now();
                let reply = own.call(dirs[k].ministry, op, &name).await;
                let took = sent.elapsed();
                reply
                    .map_err(|e| e.to_string())
                    .and_then(|r| check(&r))
                    .map_err(|e| format!("/d{}/{name}: {e}", k + 1))?;
                out.push(((c, j, k + 1), sent, took));
                progress.inc(1);
            }
            Ok(out)
        });
    }
    set
}

#[allow(clippy::too_many_arguments)]
async fn list_run(
    a: &ThesisArgs,
    fs: &FileSystem,
    dirs: &[Dir],
    m: usize,
    order: Order,
    run: usize,
    progress: &ProgressBar,
) -> Result<Vec<ListRow>, String> {
    progress.set_message(format!("{m} ministries, {}, run {}", order.name(), run + 1));
    let (requests, files) = (a.list_requests, a.dir_files);
    let lists: Vec<Ino> = dirs.iter().map(|d| d.list).collect();
    let request: Request = Arc::new(move |c, j| {
        let k = list_dir(order, c, j, requests, m);
        let op = MetaOp::Readdir {
            dir: lists[k],
            after: None,
            limit: 1024,
        };
        (k, op, "list".to_string())
    });
    let check: Check = Arc::new(move |reply| match reply {
        MetaReply::Dir(p) if p.entries.len() == files => Ok(()),
        MetaReply::Dir(p) => Err(format!("{} entries, expected {files}", p.entries.len())),
        other => Err(format!("answer {other:?}")),
    });
    let set = timed_clients(
        fs,
        dirs,
        (a.list_clients, requests),
        request,
        check,
        progress,
    );
    join_timed(set, |(client, request, dir), start_us, us| ListRow {
        ministries: m,
        order,
        run,
        client,
        request,
        dir,
        start_us,
        us,
    })
    .await
}

async fn create_run(
    a: &ThesisArgs,
    fs: &FileSystem,
    dirs: &[Dir],
    m: usize,
    run: usize,
    progress: &ProgressBar,
) -> Result<Vec<CreateRow>, String> {
    progress.set_message(format!("{m} ministries, run {}", run + 1));
    let news: Vec<Ino> = dirs.iter().map(|d| d.new).collect();
    let request: Request = Arc::new(move |c, j| {
        let k = (c + j) % m;
        let name = format!("m{m}-r{run}-c{c}-{j}");
        let op = MetaOp::Create {
            parent: news[k],
            name: name.clone().into_bytes(),
            mode: 0o644,
            exclusive: true,
            layout: None,
        };
        (k, op, format!("new/{name}"))
    });
    let check: Check = Arc::new(|reply| match reply {
        MetaReply::Created { created: true, .. } => Ok(()),
        other => Err(format!("answer {other:?}")),
    });
    let clients = (a.create_clients, a.create_requests);
    let set = timed_clients(fs, dirs, clients, request, check, progress);
    join_timed(set, |(client, request, dir), start_us, us| CreateRow {
        ministries: m,
        run,
        client,
        request,
        dir,
        start_us,
        us,
    })
    .await
}

/// One request as its client timed it: (client, request, directory),
/// when it was sent and how long it took.
type Timed = ((usize, usize, usize), Instant, Duration);

/// Waits for every client of a run and makes each request a row, its
/// start measured from the run's first send (µs), then its time (µs).
async fn join_timed<R>(
    mut set: JoinSet<Result<Vec<Timed>, String>>,
    row: impl Fn((usize, usize, usize), u64, u64) -> R,
) -> Result<Vec<R>, String> {
    let mut timed = Vec::new();
    while let Some(r) = set.join_next().await {
        timed.extend(r.map_err(|e| e.to_string())??);
    }
    let t0 = timed.iter().map(|t| t.1).min();
    Ok(timed
        .into_iter()
        .map(|(who, sent, took)| row(who, t0.map_or(0, |t0| micros(sent - t0)), micros(took)))
        .collect())
}

/// The locking cells: both experiments, both kinds of lock, both sweeps,
/// for each kind of IO. Within a run the two kinds of lock take turns, so
/// that a slow spell of this shared machine falls on both.
async fn locks(
    a: &ThesisArgs,
    fs: &mut FileSystem,
    multi: &MultiProgress,
) -> Result<String, String> {
    let first = a.io.first().copied().unwrap_or(Io::Real);
    let base = Ctx::prepare(fs, first, 200.0, 1).await?;
    let points: Vec<(Sweep, f64, usize)> = a
        .row_mb
        .iter()
        .map(|&mb| (Sweep::RowSize, mb, a.row_writers))
        .chain(
            a.writers
                .iter()
                .map(|&w| (Sweep::Writers, a.writers_row_mb, w)),
        )
        .collect();
    let experiments = [LockExperiment::OneRow, LockExperiment::AllRows];
    let kinds = [LockKind::ByRow, LockKind::WholeFile];
    // Progress in bytes written: the cells differ by four orders of magnitude.
    let bytes = |exp: LockExperiment, mb: f64, w: usize| {
        let rows = match exp {
            LockExperiment::OneRow => 1.0,
            LockExperiment::AllRows => 10.0,
        };
        (mb * MB * rows * w as f64) as u64
    };
    let total: u64 = points
        .iter()
        .flat_map(|&(_, mb, w)| experiments.map(|e| bytes(e, mb, w)))
        .sum::<u64>()
        * (kinds.len() * a.runs * a.io.len()) as u64;
    let progress = bar(multi, total, "locks", true);
    let mut csv = format!("{}\n", data::LOCKS_HEADER);
    for &io in &a.io {
        let ctx = base.with_io(io);
        // One cell not recorded: the first write of a size warms what the
        // first recorded cell would otherwise pay for.
        bench_locks::cell(
            &ctx,
            fs,
            LockExperiment::OneRow,
            LockKind::ByRow,
            a.writers_row_mb,
            1,
            0,
        )
        .await?;
        for &(sweep, row_mb, writers) in &points {
            for experiment in experiments {
                for run in 0..a.runs {
                    for lock in kinds {
                        progress.set_message(format!(
                            "{} IO, {}, {}, {row_mb} MB x {writers}, run {}",
                            io.name(),
                            experiment.label(),
                            lock.label(),
                            run + 1
                        ));
                        let writes =
                            bench_locks::cell(&ctx, fs, experiment, lock, row_mb, writers, run)
                                .await?;
                        for (writer, (ms, lost)) in writes.into_iter().enumerate() {
                            let row = LockRow {
                                io,
                                experiment,
                                sweep,
                                lock,
                                row_mb,
                                writers,
                                run,
                                writer,
                                ms,
                                lost,
                            };
                            data::lock_line(&mut csv, &row);
                        }
                        progress.inc(bytes(experiment, row_mb, writers));
                    }
                }
            }
        }
    }
    progress.finish();
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_and_stride_spread_requests_evenly() {
        for m in 1..=5 {
            for order in [Order::Batch, Order::Stride] {
                let mut per_dir = vec![0; m];
                for c in 0..30 {
                    for j in 0..100 {
                        per_dir[list_dir(order, c, j, 100, m)] += 1;
                    }
                }
                let (lo, hi) = (per_dir.iter().min(), per_dir.iter().max());
                assert!(
                    hi.zip(lo).is_some_and(|(h, l)| h - l <= 30),
                    "{order:?} with {m} ministries: {per_dir:?}"
                );
            }
        }
        // Batch keeps one directory for a block; stride moves every request.
        assert_eq!(list_dir(Order::Batch, 0, 0, 100, 4), 0);
        assert_eq!(list_dir(Order::Batch, 0, 24, 100, 4), 0);
        assert_eq!(list_dir(Order::Batch, 0, 25, 100, 4), 1);
        assert_eq!(list_dir(Order::Stride, 0, 1, 100, 4), 1);
        assert_eq!(list_dir(Order::Stride, 1, 3, 100, 4), 0);
    }

    #[test]
    fn bad_arguments_are_refused() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: ThesisArgs,
        }
        let parse = |args: &[&str]| {
            let mut all = vec!["thesis"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|c| c.a)
        };
        let ok = parse(&[]).expect("defaults parse");
        assert!(ok.check().is_ok());
        for bad in [
            &["--ministries", "0"][..],
            &["--ministries", "9"],
            &["--runs", "0"],
            &["--dir-files", "2000"],
            &["--row-mb", "0"],
            &["--skip", "lists"],
        ] {
            let a = parse(bad).expect("parses");
            assert!(a.check().is_err(), "{bad:?} accepted");
        }
    }
}
