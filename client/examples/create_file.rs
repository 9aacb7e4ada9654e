//! Create a file on a cluster whose ministries run the namespace, then look
//! it up.
//!
//! ```text
//! eval "$(govfs cluster up --nodes 3 --app meta --shell)"
//! cargo run --release -p govfs-client --example create_file -- /hello.txt
//! ```
//!
//! Finds the cluster through `GOVFS_CLUSTER` and `GOVFS_KEY_FILE`. The path's
//! parent must exist (here: only files directly under "/").

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use govfs_client::{Client, ClientOptions};
use govfs_core::meta::{
    decode_reply, encode_request, Credentials, Found, MetaOp, MetaReply, MetaRequest, ROOT,
};
use govfs_net::ClusterKey;

const MINISTRY: u64 = 1;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/hello.txt".into());
    let name = path
        .strip_prefix('/')
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or("give a path directly under /, like /hello.txt")?;

    let addrs = std::env::var("GOVFS_CLUSTER")?
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    let key = ClusterKey::from_file(std::env::var("GOVFS_KEY_FILE")?)?;
    let client = Client::connect(addrs, key, ClientOptions::default()).await?;
    let mut session = client.session();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    let request = |op| MetaRequest {
        op,
        creds: Credentials::root(),
        now,
    };
    let create = request(MetaOp::Create {
        parent: ROOT,
        name: name.as_bytes().to_vec(),
        mode: 0o644,
        exclusive: false,
        layout: None,
    });
    let (index, out) = session
        .submit(MINISTRY, encode_request(&create), Duration::from_secs(10))
        .await?;
    match decode_reply(&out)? {
        Ok(MetaReply::Created { attr, created }) => println!(
            "{path}: inode {} ({}) at log index {index}",
            attr.ino.0,
            if created { "created" } else { "already there" }
        ),
        other => return Err(format!("create {path}: {other:?}").into()),
    }

    let lookup = request(MetaOp::LookupPath {
        path: path.as_bytes().to_vec(),
        follow: true,
    });
    let (_, out) = session
        .submit(MINISTRY, encode_request(&lookup), Duration::from_secs(10))
        .await?;
    match decode_reply(&out)? {
        Ok(MetaReply::Found(Found::Local(attr))) => {
            println!("lookup {path}: mode {:o}, nlink {}", attr.mode, attr.nlink)
        }
        other => return Err(format!("lookup {path}: {other:?}").into()),
    }
    Ok(())
}
