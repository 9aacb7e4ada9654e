//! `govfs bench rtt`: where the time of one small request goes, one
//! request at a time, p50 and p99 of each step on a local cluster (3 node
//! processes, one ministry of 3):
//!
//! * a TCP ping-pong between two threads of this process on 127.0.0.1:
//!   the floor of any request on this machine (two wake-ups);
//! * a request a node's core loop answers itself (`ClientMsg::DataPath`);
//! * a chunk read of a chunk the node does not hold: through a storage
//!   shard's thread and back, without disk IO;
//! * a random 4 KiB read of a file (R=1): the same with the disk;
//! * the raw disk's random 4 KiB O_DIRECT read (io_uring), as a mean.
//!
//! The differences between the rows are the costs of the hops; the
//! `data` benchmark's random-read ratio is the last row over the one
//! before.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use clap::Args;
use govfs_client::{ClientOptions, FileSystem, FsOptions, OpenMode};
use govfs_core::data::ChunkId;
use govfs_core::meta::Layout;
use govfs_core::node::ClientMsg;

use crate::bench_chunks::raw_disk;
use crate::bench_cmd::{percentile, Running};
use crate::cluster_cmd::{self, UpArgs};
use crate::config::AppKind;

#[derive(Args, Debug)]
pub struct RttArgs {
    /// Requests per row.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
}

const FILE_BYTES: u64 = 64 << 20;
const K4: u64 = 4096;

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// p50 and p99 in µs.
fn summary(mut us: Vec<f64>) -> (f64, f64) {
    us.sort_by(f64::total_cmp);
    (percentile(&us, 0.5), percentile(&us, 0.99))
}

fn ping_pong(n: usize) -> Result<Vec<f64>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(e)?;
    let addr = listener.local_addr().map_err(e)?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            let got = s.read(&mut buf)?;
            if got == 0 {
                return Ok(());
            }
            s.write_all(&buf[..got])?;
        }
    });
    let mut s = TcpStream::connect(addr).map_err(e)?;
    s.set_nodelay(true).map_err(e)?;
    let mut us = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&[7u8; 32]).map_err(e)?;
        let mut got = 0;
        while got < 32 {
            got += s.read(&mut buf[got..]).map_err(e)?;
        }
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    echo.join()
        .map_err(|_| "echo thread panicked".to_string())?
        .map_err(e)?;
    Ok(us)
}

pub async fn run(a: &RttArgs) -> Result<(), String> {
    let n = a.requests.max(1);
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    eprintln!("bench rtt: TCP ping-pong between two threads");
    rows.push(("TCP ping-pong, two threads", summary(ping_pong(n)?)));

    let mut up = UpArgs::local(3);
    up.app = AppKind::Meta;
    eprintln!("bench rtt: starting 3 nodes, one ministry of 3");
    let cluster = Running(cluster_cmd::up(&up).await?);
    let client = cluster
        .0
        .client_with(ClientOptions::with_timeout(Duration::from_secs(5)))
        .await?;
    let node = *client.addrs().first().ok_or("no node")?;

    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.call(node, &ClientMsg::DataPath).await.map_err(e)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    rows.push(("request the core loop answers", summary(us)));

    let mut us = Vec::with_capacity(n);
    for i in 0..n {
        // Chunk ids this high belong to no file: the shard finds nothing.
        let chunk = ChunkId(u64::MAX - i as u64);
        let t = Instant::now();
        let answer = client.read_chunk(1, chunk, 0, 0, K4 as u32).await;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if answer.is_ok() {
            return Err(format!("chunk {chunk:?} exists"));
        }
    }
    rows.push(("chunk request via a storage shard, no IO", summary(us)));

    let mut fs = FileSystem::new(client, FsOptions::default());
    let layout = Layout {
        replicas: 1,
        ..Layout::default()
    };
    fs.create_with_layout("/rtt", 0o644, true, Some(layout))
        .await
        .map_err(e)?;
    let mut f = fs.open_file("/rtt", OpenMode::Write).await.map_err(e)?;
    let block = vec![0x5Au8; 1 << 20];
    for i in 0..FILE_BYTES >> 20 {
        f.write_at(i << 20, &block).await.map_err(e)?;
    }
    f.close().await.map_err(e)?;
    let mut f = fs.open_file("/rtt", OpenMode::Read).await.map_err(e)?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = rng % (FILE_BYTES / K4) * K4;
        let t = Instant::now();
        let got = f.read_at(at, K4).await.map_err(e)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if got.len() as u64 != K4 {
            return Err(format!("short read at {at}"));
        }
    }
    rows.push(("random 4 KiB read, R=1", summary(us)));
    drop(cluster);

    let tmp = tempfile::Builder::new()
        .prefix("govfs-bench-rtt-")
        .tempdir()
        .map_err(e)?;
    let raw = raw_disk(tmp.path(), FILE_BYTES as usize, 1 << 20, n, 1)?;
    let mean = 1e6 / raw.random_iops;

    println!("\nOne request at a time ({n} each), µs:");
    println!("{:<44} {:>8} {:>8}", "", "p50", "p99");
    for (name, (p50, p99)) in rows {
        println!("{name:<44} {p50:>8.0} {p99:>8.0}");
    }
    println!(
        "{:<44} {mean:>8.0} {:>8}",
        "raw disk random 4 KiB read (mean)", "-"
    );
    Ok(())
}
