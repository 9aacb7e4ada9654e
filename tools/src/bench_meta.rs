//! `govfs bench meta`: namespace operation rates on a local cluster.
//!
//! For each ministries count M: start 3 node processes running the
//! namespace (`--app meta`, ministries of 3, so every node hosts M shards),
//! then for each task count T and layout run four timed phases in order:
//!
//! * create: each task creates `--files` files (exclusive creates through
//!   the log, `Session::submit`);
//! * stat: each task looks its files up by parent inode and name
//!   (`MetaOp::Lookup` through `Session::read`, any serving member);
//! * readdir: each task pages through its own files' entries
//!   (`MetaOp::Readdir` through `Session::read`; counted in entries, the
//!   latency is per page);
//! * remove: each task unlinks its files (through the log).
//!
//! The two read phases repeat their passes until `--min-seconds` have
//! passed, so that they last long enough to measure. `--total-files N`
//! gives every run a namespace of N files (N / T per task) instead of
//! `--files` per task.
//!
//! Layouts: `per-task` (each task in its own directory, made before the
//! create phase and not timed) and `shared` (every task of a ministry in one
//! directory of that ministry). Task i uses ministry `i % M + 1`; each
//! ministry owns its own namespace whose root is inode `ROOT`, addressed by
//! the ministry id, as `govfs --ministry N` does. A task keeps `--pipeline`
//! operations outstanding through as many sessions, each owning a
//! contiguous slice of the task's files (so its reads see its own writes).
//! File names are `tTTT-fNNNNNNNN`: a task's files are contiguous in name
//! order, so in the shared directory each reader pages through exactly its
//! own entries.
//!
//! Per phase: ops/s, p50/p99 latency, the CPU seconds the node processes
//! used (utime + stime from `/proc/PID/stat`) and ops per node CPU-second,
//! and the CPU of this (client) process. Memory: the nodes' RSS growth
//! (`VmRSS`) per created inode and replica over the first create phase of
//! the largest run (task counts run largest first, so that phase starts on
//! a fresh cluster), next to the namespace's own in-process estimate
//! (`Namespace::bytes_per_inode`) for the same files.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use govfs_client::{Client, ClientOptions, Session};
use govfs_core::meta::{
    decode_reply, encode_request, Credentials, Found, Ino, MetaOp, MetaReply, MetaRequest,
    Namespace, ROOT,
};
use tokio::task::JoinSet;

use crate::bench_cmd::{percentile, Running};
use crate::cluster_cmd::{self, UpArgs};
use crate::config::AppKind;

const NODES: u64 = 3;
/// How long one operation may take, resends included.
const DEADLINE: Duration = Duration::from_secs(20);

#[derive(Args, Debug)]
pub struct MetaArgs {
    /// Ministries counts to run, each on a fresh cluster.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4])]
    ministries: Vec<usize>,
    /// Client task counts.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 16, 64])]
    tasks: Vec<usize>,
    /// Files each task creates, stats, lists and removes.
    #[arg(long, default_value_t = 2000)]
    files: u64,
    /// Instead of `--files`: this many files in all, split over the tasks
    /// (each task gets total / tasks, rounded up), so that every run
    /// creates a namespace of the same size.
    #[arg(long, conflicts_with = "files")]
    total_files: Option<u64>,
    /// Operations each task keeps outstanding, through as many sessions.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[arg(long, value_enum, default_value_t = LayoutArg::Both)]
    layout: LayoutArg,
    /// Entries per readdir page (1 to 1024).
    #[arg(long, default_value_t = 1024)]
    page: u32,
    /// The read phases (stat, readdir) repeat their passes over the files
    /// until this many seconds have passed, so that they last long enough
    /// to measure (creates and removes run once).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Also write every row to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    PerTask,
    Shared,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layout {
    PerTask,
    Shared,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::PerTask => "per-task",
            Layout::Shared => "shared",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Create,
    Stat,
    Readdir,
    Remove,
}

const PHASES: [Phase; 4] = [Phase::Create, Phase::Stat, Phase::Readdir, Phase::Remove];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Stat => "stat",
            Phase::Readdir => "readdir",
            Phase::Remove => "remove",
        }
    }
}

/// One phase of one run, measured.
struct Row {
    ministries: usize,
    layout: Layout,
    tasks: usize,
    files_per_task: u64,
    phase: Phase,
    ops: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    node_cpu_s: f64,
    client_cpu_s: f64,
    errors: u64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    fn per_node_cpu_s(&self) -> f64 {
        if self.node_cpu_s > 0.0 {
            self.ops as f64 / self.node_cpu_s
        } else {
            f64::NAN
        }
    }
}

/// RSS growth over one create phase.
struct MemoryRow {
    ministries: usize,
    layout: Layout,
    tasks: usize,
    files: u64,
    rss_growth_bytes: i64,
    inproc_bytes_per_inode: usize,
    inproc_heap_per_inode: f64,
}

pub async fn run(a: &MetaArgs) -> Result<(), String> {
    if a.ministries.contains(&0) || a.tasks.contains(&0) {
        return Err("--ministries and --tasks take counts of at least 1".into());
    }
    if a.files == 0 || a.total_files == Some(0) || a.page == 0 || a.page > 1024 {
        return Err("--files must be at least 1 and --page 1 to 1024".into());
    }
    if !(0.0..=3600.0).contains(&a.min_seconds) {
        return Err("--min-seconds must be 0 to 3600".into());
    }
    let layouts: Vec<Layout> = match a.layout {
        LayoutArg::PerTask => vec![Layout::PerTask],
        LayoutArg::Shared => vec![Layout::Shared],
        LayoutArg::Both => vec![Layout::PerTask, Layout::Shared],
    };
    // Largest first: its first create phase then starts on a fresh cluster,
    // which is where the RSS growth per inode is measured.
    let mut tasks = a.tasks.clone();
    tasks.sort_unstable_by(|x, y| y.cmp(x));
    tasks.dedup();
    let ticks = clock_ticks();
    if ticks.assumed {
        eprintln!("bench meta: sysconf(_SC_CLK_TCK) failed, assuming 100 ticks per second");
    }
    let mut csv = match &a.csv {
        Some(path) => {
            let mut f = String::new();
            let _ = writeln!(f, "ministries,layout,tasks,pipeline,files_per_task,phase,ops,seconds,ops_per_s,p50_ms,p99_ms,node_cpu_s,ops_per_node_cpu_s,client_cpu_s,errors");
            Some((path.clone(), f))
        }
        None => None,
    };
    for &m in &a.ministries {
        let (rows, mem) = run_ministries(a, m, &tasks, &layouts, ticks.per_second).await?;
        print_table(a, m, &rows);
        if let Some(mem) = &mem {
            print_memory(mem);
        }
        if let Some((path, text)) = &mut csv {
            for r in &rows {
                let _ = writeln!(
                    text,
                    "{},{},{},{},{},{},{},{:.3},{:.0},{:.3},{:.3},{:.3},{:.0},{:.3},{}",
                    r.ministries,
                    r.layout.name(),
                    r.tasks,
                    a.pipeline,
                    r.files_per_task,
                    r.phase.name(),
                    r.ops,
                    r.seconds,
                    r.rate(),
                    r.p50_ms,
                    r.p99_ms,
                    r.node_cpu_s,
                    r.per_node_cpu_s(),
                    r.client_cpu_s,
                    r.errors
                );
            }
            std::fs::write(&*path, text.as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if ticks.assumed {
        println!("\n(CPU seconds assume 100 clock ticks per second: sysconf failed.)");
    }
    Ok(())
}

struct Ticks {
    per_second: f64,
    assumed: bool,
}

fn clock_ticks() -> Ticks {
    // SAFETY: sysconf reads a configuration value and touches no memory.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        Ticks {
            per_second: t as f64,
            assumed: false,
        }
    } else {
        Ticks {
            per_second: 100.0,
            assumed: true,
        }
    }
}

/// utime + stime of a process (all its threads), in clock ticks; `who` is a
/// pid or "self".
fn cpu_ticks(who: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{who}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size in bytes.
fn rss_bytes(pid: i32) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn node_pids(dir: &Path) -> Result<Vec<i32>, String> {
    (1..=NODES)
        .map(|id| {
            let path = dir.join(format!("n{id}/pid"));
            std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

/// CPU ticks of each node and of this process.
fn cpu_now(pids: &[i32]) -> Result<(Vec<u64>, u64), String> {
    let nodes = pids
        .iter()
        .map(|&pid| {
            cpu_ticks(&pid.to_string())
                .ok_or_else(|| format!("cannot read /proc/{pid}/stat: did the node exit?"))
        })
        .collect::<Result<_, _>>()?;
    Ok((nodes, cpu_ticks("self").unwrap_or(0)))
}

fn total_rss(pids: &[i32]) -> i64 {
    pids.iter().filter_map(|&p| rss_bytes(p)).sum()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn creds() -> Credentials {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Credentials {
        uid,
        gid,
        groups: Vec::new(),
    }
}

fn file_name(task: usize, j: u64) -> Vec<u8> {
    format!("t{task:03}-f{j:08}").into_bytes()
}

/// One namespace operation through the log (`read` false) or answered by
/// any serving member (`read` true).
async fn call(
    session: &mut Session,
    ministry: u64,
    op: MetaOp,
    creds: &Credentials,
    read: bool,
) -> Result<MetaReply, String> {
    let request = encode_request(&MetaRequest {
        op,
        creds: creds.clone(),
        now: now_ns(),
    });
    let answer = if read {
        session.read(ministry, request, DEADLINE).await
    } else {
        session.submit(ministry, request, DEADLINE).await
    };
    let (_, out) = answer.map_err(|e| e.to_string())?;
    match decode_reply(&out) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(errno)) => Err(errno.to_string()),
        Err(e) => Err(format!("undecodable answer: {e}")),
    }
}

/// One session of one task: its slice of the task's files.
struct Worker {
    session: Session,
    ministry: u64,
    dir: Ino,
    task: usize,
    files: Range<u64>,
    creds: Credentials,
}

#[derive(Default)]
struct Outcome {
    latencies_ms: Vec<f64>,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn record(&mut self, started: Instant, result: Result<u64, String>) {
        self.latencies_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        match result {
            Ok(n) => self.ops += n,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

impl Worker {
    /// One pass over the worker's files; reads repeat passes until
    /// `min` has passed since `began` (or a pass failed).
    async fn run(
        mut self,
        phase: Phase,
        page: u32,
        began: Instant,
        min: Duration,
    ) -> (Worker, Outcome) {
        let mut out = Outcome::default();
        loop {
            match phase {
                Phase::Readdir => self.readdir(page, &mut out).await,
                _ => {
                    for j in self.files.clone() {
                        let t = Instant::now();
                        let r = self.one(phase, j).await;
                        out.record(t, r);
                    }
                }
            }
            let reads = matches!(phase, Phase::Stat | Phase::Readdir);
            if !reads || out.errors > 0 || began.elapsed() >= min {
                return (self, out);
            }
        }
    }

    async fn one(&mut self, phase: Phase, j: u64) -> Result<u64, String> {
        let (parent, name) = (self.dir, file_name(self.task, j));
        let (op, read) = match phase {
            Phase::Create => (
                MetaOp::Create {
                    parent,
                    name,
                    mode: 0o644,
                    exclusive: true,
                    layout: None,
                },
                false,
            ),
            Phase::Stat => (MetaOp::Lookup { parent, name }, true),
            Phase::Remove => (MetaOp::Unlink { parent, name }, false),
            Phase::Readdir => unreachable!("readdir pages, see Worker::readdir"),
        };
        match (
            phase,
            call(&mut self.session, self.ministry, op, &self.creds, read).await?,
        ) {
            (Phase::Create, MetaReply::Created { created: true, .. })
            | (Phase::Stat, MetaReply::Found(Found::Local(_)))
            | (Phase::Remove, MetaReply::Done) => Ok(1),
            (_, other) => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Pages through this worker's slice of the directory: the entries
    /// after the name just before its first file.
    async fn readdir(&mut self, page: u32, out: &mut Outcome) {
        let mut after = if self.files.start == 0 {
            format!("t{:03}-f", self.task).into_bytes()
        } else {
            file_name(self.task, self.files.start - 1)
        };
        let mut left = self.files.end - self.files.start;
        while left > 0 {
            let op = MetaOp::Readdir {
                dir: self.dir,
                after: Some(after.clone()),
                limit: page.min(u32::try_from(left).unwrap_or(u32::MAX)),
            };
            let t = Instant::now();
            let reply = call(&mut self.session, self.ministry, op, &self.creds, true).await;
            let result = match reply {
                Ok(MetaReply::Dir(p)) => match p.entries.last() {
                    Some(last) => {
                        after = last.name.clone();
                        let n = p.entries.len() as u64;
                        left = left.saturating_sub(n);
                        Ok(n)
                    }
                    None => Err(format!("{left} entries missing")),
                },
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            out.record(t, result);
            if failed {
                return;
            }
        }
    }
}

async fn run_ministries(
    a: &MetaArgs,
    m: usize,
    tasks: &[usize],
    layouts: &[Layout],
    ticks_per_s: f64,
) -> Result<(Vec<Row>, Option<MemoryRow>), String> {
    // Every ministry has a member on each of the 3 nodes: M shards a node.
    let (cores, shards_per_core) = if m % 2 == 1 { (1, m) } else { (2, m / 2) };
    let mut up = UpArgs::local(NODES);
    up.ministries = m;
    up.app = AppKind::Meta;
    up.cores = cores as u32;
    up.shards_per_core = shards_per_core as u32;
    eprintln!(
        "bench meta: starting 3 nodes, {m} ministries of 3 ({cores} core(s) x {shards_per_core} shard(s) a node)"
    );
    let cluster = Running(cluster_cmd::up(&up).await?);
    eprintln!(
        "bench meta: cluster in {} serves {m} ministries",
        cluster.0.dir.display()
    );
    let pids = node_pids(&cluster.0.dir)?;
    let max_tasks = tasks.iter().copied().max().unwrap_or(1);
    let options = ClientOptions::with_timeout(Duration::from_secs(2))
        .max_in_flight((max_tasks * a.pipeline.max(1)).max(256));
    let client = cluster.0.client_with(options).await?;
    let creds = creds();
    let mut rows = Vec::new();
    let mut memory = None;
    let mut run_id = 0;
    for &t in tasks {
        for &layout in layouts {
            run_id += 1;
            let files = match a.total_files {
                Some(total) => total.div_ceil(t as u64),
                None => a.files,
            };
            let dirs = make_dirs(&client, m, t, layout, run_id, &creds).await?;
            let mut workers = workers(&client, m, a.pipeline, files, &dirs, &creds);
            for phase in PHASES {
                let rss_before = total_rss(&pids);
                let (n0, c0) = cpu_now(&pids)?;
                let started = Instant::now();
                let min = Duration::from_secs_f64(a.min_seconds.max(0.0));
                let (back, outcome) = run_phase(workers, phase, a.page, started, min).await;
                workers = back;
                let seconds = started.elapsed().as_secs_f64();
                let (n1, c1) = cpu_now(&pids)?;
                let per_node: Vec<f64> = n1
                    .iter()
                    .zip(&n0)
                    .map(|(b, a)| b.saturating_sub(*a) as f64 / ticks_per_s)
                    .collect();
                if phase == Phase::Create && memory.is_none() {
                    let (per_inode, heap) = inproc_memory(t, files, layout);
                    memory = Some(MemoryRow {
                        ministries: m,
                        layout,
                        tasks: t,
                        files: outcome.ops,
                        rss_growth_bytes: total_rss(&pids) - rss_before,
                        inproc_bytes_per_inode: per_inode,
                        inproc_heap_per_inode: heap,
                    });
                }
                let mut lat = outcome.latencies_ms;
                lat.sort_by(|x, y| x.total_cmp(y));
                let row = Row {
                    ministries: m,
                    layout,
                    tasks: t,
                    files_per_task: files,
                    phase,
                    ops: outcome.ops,
                    seconds,
                    p50_ms: percentile(&lat, 0.5),
                    p99_ms: percentile(&lat, 0.99),
                    node_cpu_s: per_node.iter().sum(),
                    client_cpu_s: c1.saturating_sub(c0) as f64 / ticks_per_s,
                    errors: outcome.errors,
                };
                eprintln!(
                    "bench meta: M={m} {} T={t} {:<7} {:>8} ops in {:.2} s = {:>8.0}/s, p50 {:.2} ms, p99 {:.2} ms, nodes {:.2} CPU-s ({}), client {:.2} CPU-s{}",
                    layout.name(),
                    phase.name(),
                    row.ops,
                    row.seconds,
                    row.rate(),
                    row.p50_ms,
                    row.p99_ms,
                    row.node_cpu_s,
                    per_node
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("n{}: {c:.2}", i + 1))
                        .collect::<Vec<_>>()
                        .join(", "),
                    row.client_cpu_s,
                    match (&outcome.first_error, row.errors) {
                        (Some(e), n) => format!(", {n} errors (first: {e})"),
                        (None, _) => String::new(),
                    }
                );
                rows.push(row);
            }
            remove_dirs(&client, m, t, layout, run_id, &creds).await;
        }
    }
    drop(cluster);
    rows.sort_by_key(|r| (r.layout, r.tasks, r.phase));
    Ok((rows, memory))
}

async fn run_phase(
    workers: Vec<Worker>,
    phase: Phase,
    page: u32,
    began: Instant,
    min: Duration,
) -> (Vec<Worker>, Outcome) {
    let mut set = JoinSet::new();
    for w in workers {
        set.spawn(w.run(phase, page, began, min));
    }
    let mut back = Vec::new();
    let mut all = Outcome::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((w, out)) => {
                back.push(w);
                all.latencies_ms.extend(out.latencies_ms);
                all.ops += out.ops;
                all.errors += out.errors;
                if all.first_error.is_none() {
                    all.first_error = out.first_error;
                }
            }
            Err(e) => {
                all.errors += 1;
                all.first_error
                    .get_or_insert(format!("a worker failed: {e}"));
            }
        }
    }
    (back, all)
}

fn dir_name(layout: Layout, run_id: usize, task: usize) -> Vec<u8> {
    match layout {
        Layout::PerTask => format!("run{run_id}-t{task:03}").into_bytes(),
        Layout::Shared => format!("run{run_id}-shared").into_bytes(),
    }
}

/// The directories a run uses, by task; made in each task's ministry's root
/// (not timed). A new minister proposes its inode grant first, so a mkdir
/// may fail right after start: retried for a while.
async fn make_dirs(
    client: &Client,
    m: usize,
    tasks: usize,
    layout: Layout,
    run_id: usize,
    creds: &Credentials,
) -> Result<Vec<Ino>, String> {
    let mut session = client.session();
    let mut shared: Vec<Option<Ino>> = vec![None; m];
    let mut dirs = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let ministry = task % m;
        if let (Layout::Shared, Some(ino)) = (layout, shared[ministry]) {
            dirs.push(ino);
            continue;
        }
        let name = dir_name(layout, run_id, task);
        let mut tries = 0;
        let ino = loop {
            let op = MetaOp::Mkdir {
                parent: ROOT,
                name: name.clone(),
                mode: 0o755,
            };
            match call(&mut session, ministry as u64 + 1, op, creds, false).await {
                Ok(MetaReply::Attr(attr)) => break attr.ino,
                Ok(other) => return Err(format!("mkdir: unexpected answer {other:?}")),
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!("mkdir in ministry {}: {e}; retrying", ministry + 1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "mkdir {} in ministry {}: {e}",
                        String::from_utf8_lossy(&name),
                        ministry + 1
                    ))
                }
            }
        };
        shared[ministry] = Some(ino);
        dirs.push(ino);
    }
    Ok(dirs)
}

/// Remove a run's (by now empty) directories; failures only warn.
async fn remove_dirs(
    client: &Client,
    m: usize,
    tasks: usize,
    layout: Layout,
    run_id: usize,
    creds: &Credentials,
) {
    let mut session = client.session();
    let count = match layout {
        Layout::PerTask => tasks,
        Layout::Shared => tasks.min(m),
    };
    for task in 0..count {
        let op = MetaOp::Rmdir {
            parent: ROOT,
            name: dir_name(layout, run_id, task),
        };
        if let Err(e) = call(&mut session, (task % m) as u64 + 1, op, creds, false).await {
            eprintln!("bench meta: removing a run directory: {e}");
        }
    }
}

/// `pipeline` workers per task, each a session with a contiguous slice of
/// the task's files.
fn workers(
    client: &Client,
    m: usize,
    pipeline: usize,
    files: u64,
    dirs: &[Ino],
    creds: &Credentials,
) -> Vec<Worker> {
    let k = (pipeline.max(1) as u64).min(files);
    let mut out = Vec::new();
    for (task, &dir) in dirs.iter().enumerate() {
        for w in 0..k {
            let (start, end) = (files * w / k, files * (w + 1) / k);
            out.push(Worker {
                session: client.session(),
                ministry: (task % m) as u64 + 1,
                dir,
                task,
                files: start..end,
                creds: creds.clone(),
            });
        }
    }
    out
}

/// The namespace's own estimate for the same files, applied in process to
/// one namespace with the nodes' default change feed: `bytes_per_inode()`
/// (feed left out) and all heap bytes (feed included) per inode.
fn inproc_memory(tasks: usize, files: u64, layout: Layout) -> (usize, f64) {
    let mut ns = Namespace::default();
    let creds = Credentials::root();
    let mut index = 0;
    let mut apply = |ns: &mut Namespace, op: MetaOp| {
        index += 1;
        ns.execute(
            index,
            &MetaRequest {
                op,
                creds: creds.clone(),
                now: index as i64,
            },
        )
    };
    let _ = apply(
        &mut ns,
        MetaOp::GrantInodes {
            start: 1 << 40,
            count: 1 << 40,
        },
    );
    let ndirs = if layout == Layout::Shared { 1 } else { tasks };
    let mut dirs = Vec::new();
    for d in 0..ndirs {
        let op = MetaOp::Mkdir {
            parent: ROOT,
            name: dir_name(layout, 0, d),
            mode: 0o755,
        };
        if let Ok(MetaReply::Attr(a)) = apply(&mut ns, op) {
            dirs.push(a.ino);
        }
    }
    for task in 0..tasks {
        let Some(&parent) = dirs.get(task % ndirs.max(1)) else {
            break;
        };
        for j in 0..files {
            let op = MetaOp::Create {
                parent,
                name: file_name(task, j),
                mode: 0o644,
                exclusive: true,
                layout: None,
            };
            let _ = apply(&mut ns, op);
        }
    }
    let inodes = ns.statfs().inodes.max(1);
    (ns.bytes_per_inode(), ns.heap_bytes() as f64 / inodes as f64)
}

fn print_table(a: &MetaArgs, m: usize, rows: &[Row]) {
    println!(
        "\n### {m} {} (3 nodes, ministries of 3), pipeline {}\n",
        if m == 1 { "ministry" } else { "ministries" },
        a.pipeline.max(1)
    );
    println!("readdir counts entries (latency per page of up to {}); stat and readdir repeat their passes for at least {} s.\n", a.page, a.min_seconds);
    println!("| layout | tasks | files/task | phase | ops | s | ops/s | p50 ms | p99 ms | node CPU-s | cores used by nodes | ops per node CPU-s | client CPU-s | errors |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} | {} |",
            r.layout.name(),
            r.tasks,
            r.files_per_task,
            r.phase.name(),
            r.ops,
            r.seconds,
            r.rate(),
            r.p50_ms,
            r.p99_ms,
            r.node_cpu_s,
            r.node_cpu_s / r.seconds,
            r.per_node_cpu_s(),
            r.client_cpu_s,
            r.errors
        );
    }
}

fn print_memory(mem: &MemoryRow) {
    let replicas = mem.files.max(1) as f64 * 3.0;
    println!(
        "\nMemory, {} ministries, {} x {} layout, {} files created: nodes' RSS growth {:.1} MiB = {:.0} B per inode and replica (RSS: includes the in-memory log since the last snapshot, the change feed, allocator slack); in-process `bytes_per_inode()` for the same files: {} B ({:.0} B of heap per inode with the default change feed)",
        mem.ministries,
        mem.tasks,
        mem.layout.name(),
        mem.files,
        mem.rss_growth_bytes as f64 / (1024.0 * 1024.0),
        mem.rss_growth_bytes as f64 / replicas,
        mem.inproc_bytes_per_inode,
        mem.inproc_heap_per_inode
    );
}
