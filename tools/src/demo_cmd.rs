//! `govfs demo`: the README's main job. Starts a local cluster on 127.0.0.1
//! under a temporary directory, writes through a ministry, SIGKILLs the
//! minister mid-stream, checks that every acknowledged write survived, and
//! stops the cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::Args;
use govfs_client::Session;
use govfs_core::node::kv::{decode_values, KvOp};

use crate::cluster_cmd::{self, UpArgs};

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 4)]
    nodes: u64,
    /// Writes before and after the failover.
    #[arg(long, default_value_t = 2000)]
    writes: u64,
    /// Keep the cluster running afterwards (stop it with `govfs cluster down`).
    #[arg(long)]
    keep: bool,
}

pub async fn run(a: DemoArgs) -> i32 {
    match demo(&a).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("govfs demo: {e}");
            1
        }
    }
}

/// Appends `v` to key 1 of ministry 1 and records it once acknowledged.
async fn write(session: &mut Session, v: u64, acked: &mut Vec<u64>) -> Result<(), String> {
    let cmd = postcard::to_stdvec(&KvOp::Append { key: 1, value: v }).expect("ops encode");
    session
        .submit(1, cmd, Duration::from_secs(20))
        .await
        .map_err(|e| e.to_string())?;
    acked.push(v);
    Ok(())
}

async fn demo(a: &DemoArgs) -> Result<(), String> {
    let t = Instant::now();
    let up = UpArgs::local(a.nodes.max(3));
    let cluster = cluster_cmd::up(&up).await?;
    println!(
        "cluster of {} nodes up in {:.2}s under {}",
        up.nodes,
        t.elapsed().as_secs_f64(),
        cluster.dir.display()
    );
    let result = async {
        let client = cluster.client(Duration::from_secs(2)).await?;
        print!("{}", crate::status_cmd::table(&client.status_all().await));

        let mut session = client.session();
        let mut acked = Vec::new();
        let t = Instant::now();
        for v in 1..=a.writes {
            write(&mut session, v, &mut acked).await?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} writes through ministry 1 in {secs:.2}s ({:.0}/s, one at a time)",
            a.writes,
            a.writes as f64 / secs
        );

        let minister = client
            .status_all()
            .await
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .find(|s| s.leads(1))
            .map(|s| s.id)
            .ok_or("no minister")?;
        let killed = Instant::now();
        cluster_cmd::kill_node(&cluster.dir, minister, "KILL")?;
        write(&mut session, a.writes + 1, &mut acked).await?;
        println!(
            "SIGKILLed minister {minister}; the next write committed {:.0} ms later",
            killed.elapsed().as_secs_f64() * 1000.0
        );
        for v in a.writes + 2..=2 * a.writes {
            write(&mut session, v, &mut acked).await?;
        }
        cluster_cmd::start_node(&cluster.dir, minister)?;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let read = postcard::to_stdvec(&KvOp::Read { key: 1 }).expect("ops encode");
        let (index, out) = session
            .submit(1, read, Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        let values = decode_values(&out).map_err(|e| e.to_string())?;
        let set: BTreeSet<u64> = values.iter().copied().collect();
        let lost = acked.iter().filter(|v| !set.contains(v)).count();
        if lost > 0 || set.len() != values.len() {
            return Err(format!(
                "{lost} acknowledged writes lost, {} applied twice",
                values.len() - set.len()
            ));
        }
        println!(
            "read back at log index {index}: all {} acknowledged writes present, none twice",
            acked.len()
        );
        print!("{}", crate::status_cmd::table(&client.status_all().await));
        Ok::<(), String>(())
    }
    .await;
    if a.keep {
        println!(
            "cluster left running: GOVFS_CLUSTER={} GOVFS_KEY_FILE={}",
            cluster.cluster,
            cluster.key_file.display()
        );
    } else {
        cluster_cmd::down(&cluster.dir)?;
        let _ = std::fs::remove_dir_all(&cluster.dir);
    }
    result
}
