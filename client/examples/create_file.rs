//! Make a directory tree and a file on a cluster whose ministries run the
//! namespace, then list and stat it, with the path API ([`FileSystem`]).
//!
//! ```text
//! eval "$(govfs cluster up --nodes 3 --app meta --shell)"
//! cargo run --release -p govfs-client --example create_file -- /home/ada/hello.txt
//! ```
//!
//! Finds the cluster through `GOVFS_CLUSTER` and `GOVFS_KEY_FILE`. Missing
//! parent directories are made.

use std::error::Error;
use std::net::SocketAddr;

use govfs_client::{Client, ClientOptions, FileSystem, FsOptions};
use govfs_net::ClusterKey;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/hello.txt".into());
    let parent = match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((parent, _)) => parent,
        None => return Err("give an absolute path, like /home/ada/hello.txt".into()),
    };

    let addrs = std::env::var("GOVFS_CLUSTER")?
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    let key = ClusterKey::from_file(std::env::var("GOVFS_KEY_FILE")?)?;
    let client = Client::connect(addrs, key, ClientOptions::default()).await?;
    // Root credentials, session-consistent reads from any member.
    let mut fs = FileSystem::new(client, FsOptions::default());

    fs.mkdir_all(parent, 0o755).await?;
    let (attr, created) = fs.create(&path, 0o644, false).await?;
    println!(
        "{path}: inode {} ({})",
        attr.ino.0,
        if created { "created" } else { "already there" }
    );
    for entry in fs.readdir(parent).await? {
        println!("  {parent}: {}", String::from_utf8_lossy(&entry.name));
    }
    let attr = fs.stat(&path).await?;
    println!(
        "stat {path}: mode {:o}, nlink {}, meta_seq {}",
        attr.mode, attr.nlink, attr.meta_seq
    );
    Ok(())
}
