//! The cost of one `fdatasync` on the disk under a directory, to put the
//! durable consensus numbers in context.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct FsyncCost {
    pub count: usize,
    pub bytes_per_write: usize,
    pub mean: Duration,
    pub min: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Appends `bytes` to a fresh file in a temporary directory under `parent`
/// and `sync_data`s it, `count` times (as a log append does: the file grows,
/// so the sync also carries its size). Times write + sync together.
pub fn measure(parent: &Path, count: usize, bytes: usize) -> std::io::Result<FsyncCost> {
    assert!(count > 0);
    let dir = tempfile::Builder::new()
        .prefix("govfs-fsync-")
        .tempdir_in(parent)?;
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(dir.path().join("probe"))?;
    let block = vec![0xA5u8; bytes];
    // One untimed round so that creating the file is not counted.
    file.write_all(&block)?;
    file.sync_data()?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(t.elapsed());
    }
    let mean = times.iter().sum::<Duration>() / count as u32;
    times.sort_unstable();
    let at = |q: f64| times[((count - 1) as f64 * q).round() as usize];
    Ok(FsyncCost {
        count,
        bytes_per_write: bytes,
        mean,
        min: times[0],
        p50: at(0.5),
        p99: at(0.99),
        max: times[count - 1],
    })
}
