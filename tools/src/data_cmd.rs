//! `govfs put`, `get` and `cat`: file data through the native client
//! (`File`), with a progress bar for large files on a terminal; and
//! `govfs rereplicate`, which moves a file's chunks off dead nodes.

use std::io::{Read, Write};
use std::path::Path;

use govfs_client::{FileSystem, FsError, OpenMode};
use govfs_core::meta::{MetaOp, MetaReply, PLACE_MAX};
use indicatif::{ProgressBar, ProgressStyle};

/// Bytes moved per call.
const BLOCK: usize = 4 << 20;
/// Blocks `put` keeps in flight.
const PUT_WINDOW: usize = 4;
/// Files at least this large get a progress bar.
const BAR_FROM: u64 = 64 << 20;

fn bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || len < BAR_FROM {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "{bytes}/{total_bytes} [{bar:40}] {bytes_per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

/// Copies the local file `local` to `path` (created or overwritten).
pub async fn put(fs: &mut FileSystem, local: &Path, path: &str, quiet: bool) -> Result<(), String> {
    let mut src = std::fs::File::open(local).map_err(|e| format!("{}: {e}", local.display()))?;
    let len = src
        .metadata()
        .map_err(|e| format!("{}: {e}", local.display()))?
        .len();
    fs.create(path, 0o644, false).await.map_err(fs_err)?;
    fs.truncate(path, 0).await.map_err(fs_err)?;
    let mut file = fs.open_file(path, OpenMode::Write).await.map_err(fs_err)?;
    let progress = bar(len, quiet);
    // Blocks go out as async writes, `PUT_WINDOW` in flight, so reading the
    // next one overlaps the network and the disks; each is kept by the
    // handle (and resent) until every replica has it.
    let mut at = 0u64;
    let mut id = 0u64;
    let mut durable = 0u64;
    let mut done = |c: govfs_client::Completion, progress: &ProgressBar| {
        c.result.map_err(fs_err)?;
        durable += 1;
        progress.set_position((durable * BLOCK as u64).min(len));
        Ok::<(), String>(())
    };
    loop {
        // Read into the buffer's spare capacity: not zeroed first.
        let mut buf = Vec::with_capacity(BLOCK);
        let n = (&mut src)
            .take(BLOCK as u64)
            .read_to_end(&mut buf)
            .map_err(|e| format!("{}: {e}", local.display()))?;
        if n == 0 {
            break;
        }
        while file.async_in_flight() >= PUT_WINDOW {
            if let Some(c) = file.next_completion().await {
                done(c, &progress)?;
            }
        }
        id += 1;
        file.write_async(id, at, buf).await.map_err(fs_err)?;
        at += n as u64;
    }
    while let Some(c) = file.next_completion().await {
        done(c, &progress)?;
    }
    file.close().await.map_err(fs_err)?;
    progress.finish_and_clear();
    Ok(())
}

/// Copies `path` to the local file `local`.
pub async fn get(fs: &mut FileSystem, path: &str, local: &Path, quiet: bool) -> Result<(), String> {
    let mut dst = std::fs::File::create(local).map_err(|e| format!("{}: {e}", local.display()))?;
    copy_out(fs, path, &mut dst, quiet).await?;
    dst.sync_all()
        .map_err(|e| format!("{}: {e}", local.display()))
}

/// Writes `path` to standard output.
pub async fn cat(fs: &mut FileSystem, path: &str) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    copy_out(fs, path, &mut out, true).await?;
    out.flush().map_err(|e| format!("stdout: {e}"))
}

async fn copy_out(
    fs: &mut FileSystem,
    path: &str,
    out: &mut dyn Write,
    quiet: bool,
) -> Result<(), String> {
    let mut file = fs.open_file(path, OpenMode::Read).await.map_err(fs_err)?;
    let len = file.size();
    let progress = bar(len, quiet);
    let mut at = 0u64;
    loop {
        let data = file.read_at(at, BLOCK as u64).await.map_err(fs_err)?;
        if data.is_empty() {
            break;
        }
        out.write_all(&data).map_err(|e| format!("write: {e}"))?;
        at += data.len() as u64;
        progress.set_position(at);
    }
    progress.finish_and_clear();
    Ok(())
}

fn fs_err(e: FsError) -> String {
    e.to_string()
}

/// Moves every chunk of `path` that has a replica on a node of `drop` off
/// those nodes; prints what moved.
pub async fn rereplicate(fs: &mut FileSystem, path: &str, drop: &[u64]) -> Result<(), String> {
    let (ministry, attr) = fs.locate(path, true).await.map_err(fs_err)?;
    let cs = u64::from(attr.layout.chunk_size);
    let chunks = attr.size.div_ceil(cs);
    let mut file = fs.open_file(path, OpenMode::Write).await.map_err(fs_err)?;
    let mut moved = 0;
    let mut first = 0;
    while first < chunks {
        let count = (chunks - first).min(PLACE_MAX);
        let op = MetaOp::Chunks {
            ino: attr.ino,
            first,
            count,
        };
        let list = match fs.call(ministry, op, path).await.map_err(fs_err)? {
            MetaReply::Chunks(list) => list,
            other => return Err(format!("{path}: unexpected answer {other:?}")),
        };
        for c in list {
            let dead: Vec<u64> = c
                .replicas
                .iter()
                .copied()
                .filter(|n| drop.contains(n))
                .collect();
            if dead.is_empty() {
                continue;
            }
            file.rereplicate(c.index, &dead).await.map_err(fs_err)?;
            moved += 1;
        }
        first += count;
    }
    file.close().await.map_err(fs_err)?;
    println!("{path}: {moved} of {chunks} chunks moved off {drop:?}");
    Ok(())
}
