//! Append values to a key of a cluster running the key-value app, from many
//! tasks at once, then read the key back.
//!
//! ```text
//! eval "$(govfs cluster up --nodes 3 --shell)"
//! cargo run --release -p govfs-client --example kv_append -- [KEY] [VALUES]
//! ```
//!
//! Finds the cluster through `GOVFS_CLUSTER` (comma-separated addresses) and
//! `GOVFS_KEY_FILE`. Each of 8 tasks appends its share of VALUES (default
//! 100) to KEY (default 7) through its own session, all over the same
//! connections; a final read shows every value there exactly once.

use std::collections::BTreeSet;
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use govfs_client::{Client, ClientOptions};
use govfs_core::node::kv::{decode_values, KvOp};
use govfs_net::ClusterKey;

const MINISTRY: u64 = 1;
const TASKS: u64 = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let key: u8 = args.next().map_or(Ok(7), |a| a.parse())?;
    let values: u64 = args.next().map_or(Ok(100), |a| a.parse())?;

    let addrs = std::env::var("GOVFS_CLUSTER")?
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    let cluster_key = ClusterKey::from_file(std::env::var("GOVFS_KEY_FILE")?)?;
    let client = Client::connect(addrs, cluster_key, ClientOptions::default()).await?;

    // A base no earlier run used, so the read below can tell our values apart.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64
        * 1000;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut session = client.session();
        tasks.push(tokio::spawn(async move {
            for v in (0..values).filter(|v| v % TASKS == t) {
                let op = postcard::to_stdvec(&KvOp::Append {
                    key,
                    value: base + v,
                })?;
                session
                    .submit(MINISTRY, op, Duration::from_secs(10))
                    .await?;
            }
            Ok::<_, Box<dyn Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| e.to_string())?;
    }

    let read = postcard::to_stdvec(&KvOp::Read { key })?;
    let (index, out) = client
        .session()
        .submit(MINISTRY, read, Duration::from_secs(10))
        .await?;
    let all = decode_values(&out)?;
    let ours: Vec<u64> = all.iter().copied().filter(|v| *v >= base).collect();
    let distinct: BTreeSet<u64> = ours.iter().copied().collect();
    println!(
        "key {key} at log index {index}: {} values, {} of them ours, {} distinct",
        all.len(),
        ours.len(),
        distinct.len()
    );
    if ours.len() as u64 != values || distinct.len() != ours.len() {
        return Err("some appends are missing or applied twice".into());
    }
    Ok(())
}
