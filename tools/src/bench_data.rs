//! `govfs bench data`: the data plane on a local cluster (3 node processes,
//! one ministry of 3, every node a storage node), against the raw disk it
//! sits on, measured in the same run (io_uring, O_DIRECT, the same block
//! size, the same file system: the nodes' data directories and the raw
//! file are both under the system's temporary directory).
//!
//! * sequential write and read, `--block` (1 MiB) at a time, R=1 and R=3:
//!   one at a time (every write durable on every replica before the next,
//!   no readahead), and `--depth` blocks in flight (async writes, and the
//!   client's readahead), against the raw disk at the same depth;
//! * random 4 KiB reads, one at a time, R=1;
//! * 4 KiB replicated writes (R=3), one at a time: p50 and p99 latency;
//! * async 4 KiB writes (R=3) with `--window` in flight: acknowledgements
//!   per second, and how long each write waits until the low watermark
//!   passes it (the lag a consumer committing offsets would see).
//!
//! With three nodes on one machine, R=3 writes the same disk three times.
//!
//! `--rounds N` measures the raw disk and the GovFS rows N times, each
//! round the raw disk first (the cluster up, idle) and then GovFS right
//! after it, and reports
//! each row's medians and the spread of its ratio: on a shared host the
//! disk's own speed drifts between runs by a quarter, so ratios of two
//! measurements taken close together, repeated, say more than one taken
//! once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use govfs_client::{ClientOptions, File, FileSystem, FsOptions, OpenMode};
use govfs_core::meta::Layout;

use crate::bench_chunks::raw_disk;
use crate::bench_cmd::{percentile, Running};
use crate::cluster_cmd::{self, UpArgs};
use crate::config::AppKind;

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Bytes written and read sequentially per file.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: u64,
    /// Bytes per sequential write or read.
    #[arg(long, default_value_t = 1 << 20)]
    block: u64,
    /// Random 4 KiB reads.
    #[arg(long, default_value_t = 5000)]
    random_reads: usize,
    /// Replicated 4 KiB writes for the latency.
    #[arg(long, default_value_t = 2000)]
    small_writes: usize,
    /// Async 4 KiB writes.
    #[arg(long, default_value_t = 20_000)]
    async_writes: u64,
    /// Async writes kept in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Sequential blocks in flight in the pipelined rows (GovFS and raw).
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// Rounds of raw disk then GovFS rows (medians and the ratios' spread).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

const K4: u64 = 4096;

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / f64::from(1 << 20) / secs
}

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

async fn file(fs: &mut FileSystem, path: &str, replicas: u8) -> Result<File, String> {
    let layout = Layout {
        replicas,
        ..Layout::default()
    };
    fs.create_with_layout(path, 0o644, true, Some(layout))
        .await
        .map_err(e)?;
    fs.open_file(path, OpenMode::Write).await.map_err(e)
}

/// Sequential write then read of `a.bytes`, `depth` blocks in flight (1:
/// each write durable before the next, no readahead); MiB/s each.
async fn sequential(
    fs: &mut FileSystem,
    path: &str,
    r: u8,
    a: &DataArgs,
    depth: usize,
) -> Result<(f64, f64), String> {
    let mut f = file(fs, path, r).await?;
    let block = vec![0xA5u8; a.block as usize];
    let blocks = a.bytes / a.block;
    let t = Instant::now();
    if depth <= 1 {
        for i in 0..blocks {
            f.write_at(i * a.block, &block).await.map_err(e)?;
        }
    } else {
        for i in 0..blocks {
            while f.async_in_flight() >= depth {
                if let Some(c) = f.next_completion().await {
                    c.result.map_err(e)?;
                }
            }
            f.write_async(i + 1, i * a.block, block.clone())
                .await
                .map_err(e)?;
        }
        while let Some(c) = f.next_completion().await {
            c.result.map_err(e)?;
        }
    }
    let write = t.elapsed().as_secs_f64();
    f.close().await.map_err(e)?;
    let mut f = fs.open_file(path, OpenMode::Read).await.map_err(e)?;
    f.set_readahead(if depth <= 1 {
        0
    } else {
        depth as u64 * a.block
    });
    let t = Instant::now();
    for i in 0..blocks {
        let got = f.read_at(i * a.block, a.block).await.map_err(e)?;
        if got.len() as u64 != a.block {
            return Err(format!("short read at block {i}"));
        }
    }
    let read = t.elapsed().as_secs_f64();
    Ok((
        mib_s(blocks * a.block, write),
        mib_s(blocks * a.block, read),
    ))
}

/// One round: the raw disk, then the same rows through GovFS; (raw,
/// GovFS) per row, in the order of [`row_names`].
async fn round(
    fs: &mut FileSystem,
    a: &DataArgs,
    n: usize,
    dir: &std::path::Path,
) -> Result<Vec<(f64, f64)>, String> {
    let label = if a.rounds > 1 {
        format!(" (round {} of {})", n + 1, a.rounds)
    } else {
        String::new()
    };
    eprintln!("bench data: raw disk{label}");
    let raw = raw_disk(dir, a.bytes as usize, a.block as usize, a.random_reads, 1)?;
    let raw_d = raw_disk(dir, a.bytes as usize, a.block as usize, 0, a.depth)?;
    let file = |name: &str| format!("/{name}-{n}");
    eprintln!("bench data: sequential, R=1, one at a time{label}");
    let (w1, r1) = sequential(fs, &file("seq-r1"), 1, a, 1).await?;
    eprintln!("bench data: sequential, R=3, one at a time{label}");
    let (w3, r3) = sequential(fs, &file("seq-r3"), 3, a, 1).await?;
    eprintln!("bench data: sequential, R=1, {} in flight{label}", a.depth);
    let (dw1, dr1) = sequential(fs, &file("seq-d-r1"), 1, a, a.depth).await?;
    eprintln!("bench data: sequential, R=3, {} in flight{label}", a.depth);
    let (dw3, dr3) = sequential(fs, &file("seq-d-r3"), 3, a, a.depth).await?;

    eprintln!("bench data: random 4 KiB reads, R=1{label}");
    let mut f = fs
        .open_file(&file("seq-r1"), OpenMode::Read)
        .await
        .map_err(e)?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let t = Instant::now();
    for _ in 0..a.random_reads {
        let at = next(&mut rng) % (a.bytes / K4) * K4;
        let got = f.read_at(at, K4).await.map_err(e)?;
        if got.len() as u64 != K4 {
            return Err(format!("short random read at {at}"));
        }
    }
    let iops = a.random_reads as f64 / t.elapsed().as_secs_f64();
    Ok(vec![
        (raw.write_mib_s, w1),
        (raw.read_mib_s, r1),
        (raw.write_mib_s, w3),
        (raw.read_mib_s, r3),
        (raw_d.write_mib_s, dw1),
        (raw_d.read_mib_s, dr1),
        (raw_d.write_mib_s, dw3),
        (raw_d.read_mib_s, dr3),
        (raw.random_iops, iops),
    ])
}

/// The rows [`round`] measures, in its order.
fn row_names(a: &DataArgs) -> Vec<String> {
    let kib = a.block >> 10;
    let mut names = Vec::new();
    for depth in [
        "one at a time".to_string(),
        format!("{} in flight", a.depth),
    ] {
        for r in [1, 3] {
            for op in ["write", "read"] {
                names.push(format!(
                    "sequential {op}, {kib} KiB blocks, {depth}, R={r} (MiB/s)"
                ));
            }
        }
    }
    names.push("random 4 KiB reads, one at a time, R=1 (IOPS)".into());
    names
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The table: one round's numbers, or each row's medians with the
/// smallest and largest of its per-round ratios.
fn table(a: &DataArgs, rounds: &[Vec<(f64, f64)>]) -> String {
    use std::fmt::Write;
    let names = row_names(a);
    assert!(
        rounds.iter().all(|r| r.len() == names.len()),
        "a round measures every row"
    );
    let mut out = String::new();
    if let [one] = rounds {
        out.push_str("| measure | raw disk | GovFS | GovFS / raw |\n|---|---:|---:|---:|\n");
        for (name, (raw, ours)) in names.iter().zip(one) {
            let _ = writeln!(out, "| {name} | {raw:.0} | {ours:.0} | {:.2} |", ours / raw);
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{} rounds, medians; a round's ratio is GovFS over the raw disk measured just before it.\n",
        rounds.len()
    );
    out.push_str(
        "| measure | raw disk | GovFS | GovFS / raw | lowest | highest |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (i, name) in names.iter().enumerate() {
        let raw = median(rounds.iter().map(|r| r[i].0).collect());
        let ours = median(rounds.iter().map(|r| r[i].1).collect());
        let ratios: Vec<f64> = rounds.iter().map(|r| r[i].1 / r[i].0).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = writeln!(
            out,
            "| {name} | {raw:.0} | {ours:.0} | {:.2} | {lo:.2} | {hi:.2} |",
            median(ratios)
        );
    }
    out
}

pub async fn run(a: &DataArgs) -> Result<(), String> {
    let most = govfs_engine::io::uring::MAX_IN_FLIGHT;
    if a.depth == 0 || a.depth > most {
        return Err(format!(
            "--depth must be 1 to {most} (the raw disk's limit)"
        ));
    }
    if a.block == 0 || !a.block.is_multiple_of(K4) || a.block > 4 << 20 || a.bytes < a.block {
        return Err(
            "--block must be a multiple of 4096 up to 4 MiB, and --bytes at least that".into(),
        );
    }
    if a.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let tmp = tempfile::Builder::new()
        .prefix("govfs-bench-data-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    eprintln!("bench data: raw disk under {}", tmp.path().display());

    let mut up = UpArgs::local(3);
    up.app = AppKind::Meta;
    eprintln!("bench data: starting 3 nodes, one ministry of 3");
    let cluster = Running(cluster_cmd::up(&up).await?);
    let options =
        ClientOptions::with_timeout(Duration::from_secs(5)).max_in_flight(4 * a.window + 64);
    let client = cluster.0.client_with(options).await?;
    let mut fs = FileSystem::new(client, FsOptions::default());

    let mut rounds = Vec::with_capacity(a.rounds);
    for n in 0..a.rounds {
        rounds.push(round(&mut fs, a, n, tmp.path()).await?);
    }
    drop(tmp);

    eprintln!("bench data: 4 KiB replicated writes, R=3");
    let mut f = file(&mut fs, "/small-r3", 3).await?;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let small = vec![0x5Au8; K4 as usize];
    let span = 64 << 20;
    let mut lat = Vec::with_capacity(a.small_writes);
    for _ in 0..a.small_writes {
        let at = next(&mut rng) % (span / K4) * K4;
        let t = Instant::now();
        f.write_at(at, &small).await.map_err(e)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    f.close().await.map_err(e)?;

    eprintln!(
        "bench data: async 4 KiB writes, R=3, {} in flight",
        a.window
    );
    let mut f = file(&mut fs, "/async-r3", 3).await?;
    let mut issued: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut lag_ms = Vec::with_capacity(a.async_writes as usize);
    let mut acked = 0u64;
    let mut failed = 0u64;
    let t = Instant::now();
    for id in 1..=a.async_writes {
        while f.async_in_flight() >= a.window {
            match f.next_completion().await {
                Some(c) if c.result.is_ok() => acked += 1,
                Some(_) => failed += 1,
                None => break,
            }
            watermark_lag(&mut f, &mut issued, &mut lag_ms);
        }
        let at = (id - 1) % (span / K4) * K4;
        issued.insert(id, Instant::now());
        f.write_async(id, at, small.clone()).await.map_err(e)?;
    }
    while let Some(c) = f.next_completion().await {
        if c.result.is_ok() {
            acked += 1;
        } else {
            failed += 1;
        }
        watermark_lag(&mut f, &mut issued, &mut lag_ms);
    }
    let async_secs = t.elapsed().as_secs_f64();
    f.close().await.map_err(e)?;
    lag_ms.sort_by(f64::total_cmp);

    print!("\n{}", table(a, &rounds));
    println!(
        "\n4 KiB replicated write (R=3), one at a time, {} writes: p50 {:.0} µs, p99 {:.0} µs",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "async 4 KiB writes (R=3), {} in flight: {:.0} acknowledgements/s ({acked} durable, {failed} failed); \
         low-watermark lag p50 {:.2} ms, p99 {:.2} ms",
        a.window,
        acked as f64 / async_secs,
        percentile(&lag_ms, 0.5),
        percentile(&lag_ms, 0.99)
    );
    Ok(())
}

/// Records, for every write the low watermark passed since last time, how
/// long after its issue that was.
fn watermark_lag(f: &mut File, issued: &mut BTreeMap<u64, Instant>, lag_ms: &mut Vec<f64>) {
    let Some(low) = f.low_watermark() else {
        return;
    };
    let now = Instant::now();
    while let Some(entry) = issued.first_entry() {
        if *entry.key() > low {
            break;
        }
        lag_ms.push(now.duration_since(*entry.get()).as_secs_f64() * 1e3);
        entry.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rounds: usize) -> DataArgs {
        DataArgs {
            bytes: 1 << 20,
            block: 1 << 20,
            random_reads: 1,
            small_writes: 1,
            async_writes: 1,
            window: 1,
            depth: 8,
            rounds,
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
    }

    #[test]
    fn rounds_report_medians_and_the_spread_of_each_rows_ratio() {
        let a = args(3);
        let names = row_names(&a);
        assert_eq!(names.len(), 9);
        // Row 0's ratios per round: 0.5, 0.25, 1.0; the raw disk moves too.
        let round = |raw: f64, ours: f64| vec![(raw, ours); names.len()];
        let rounds = [round(100.0, 50.0), round(200.0, 50.0), round(80.0, 80.0)];
        let t = table(&a, &rounds);
        let first = t
            .lines()
            .find(|l| l.contains("write, 1024 KiB blocks, one at a time, R=1"))
            .unwrap();
        assert_eq!(
            first,
            "| sequential write, 1024 KiB blocks, one at a time, R=1 (MiB/s) | 100 | 50 | 0.50 | 0.25 | 1.00 |"
        );
        assert!(t.contains("| random 4 KiB reads, one at a time, R=1 (IOPS) |"));
        assert!(t.contains("8 in flight, R=3"));
        // One round: the plain table, ratio only.
        let one = table(&args(1), &[round(100.0, 50.0)]);
        assert!(one.contains(
            "| sequential read, 1024 KiB blocks, 8 in flight, R=1 (MiB/s) | 100 | 50 | 0.50 |\n"
        ));
        assert!(!one.contains("lowest"));
    }
}
