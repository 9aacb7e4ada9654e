//! `govfs status`: one row per node: its president-group member and its shard.

use clap::Args;
use govfs_core::node::NodeStatus;
use govfs_core::raft::{Role, Status};

use crate::target::Target;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

pub async fn run(args: StatusArgs) -> i32 {
    let client = match args.target.client().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("govfs status: {e}");
            return 1;
        }
    };
    let rows = client.status_all().await;
    print!("{}", table(&rows));
    if let Ok(map) = client.map().await {
        print!("{}", storage_line(&map.storage));
        print!("{}", down_line(&map.down));
    }
    i32::from(rows.iter().any(|(_, r)| r.is_err()))
}

/// The free space for chunks each node last reported, as placement sees
/// it in the cluster map.
pub fn storage_line(storage: &std::collections::BTreeMap<u64, u64>) -> String {
    if storage.is_empty() {
        return "storage: no node has reported its free space yet\n".into();
    }
    let nodes: Vec<String> = storage
        .iter()
        .map(|(node, free)| format!("node {node} {:.1} GiB", *free as f64 / (1u64 << 30) as f64))
        .collect();
    format!(
        "storage free for chunks (placement weights): {}\n",
        nodes.join(", ")
    )
}

/// The nodes the president judged down: placement skips them and their
/// chunks move once they stay down for the repair delay.
pub fn down_line(down: &std::collections::BTreeSet<u64>) -> String {
    if down.is_empty() {
        return "nodes down: none\n".into();
    }
    let nodes: Vec<String> = down.iter().map(u64::to_string).collect();
    format!(
        "nodes down (no new chunks; replicas re-replicated after the repair delay): {}\n",
        nodes.join(", ")
    )
}

pub fn table(
    rows: &[(
        std::net::SocketAddr,
        Result<NodeStatus, govfs_client::ClientError>,
    )],
) -> String {
    // Lag: how far a member's applied index is behind the best commit index of its group.
    let mut best: std::collections::BTreeMap<u64, u64> = Default::default();
    for st in rows.iter().filter_map(|(_, r)| r.as_ref().ok()) {
        for m in
            std::iter::once(&st.president).chain(st.shards.iter().filter_map(|s| s.member.as_ref()))
        {
            let b = best.entry(m.group).or_default();
            *b = (*b).max(m.commit);
        }
    }
    let lag = |m: &Status| {
        best.get(&m.group)
            .map_or(0, |b| b.saturating_sub(m.applied))
    };
    let mut out = format!(
        "{:<5} {:<21} {:<13} {:>5} {:>7} {:>4} | {:<13} {:>4} {:<8} {:<9} {:>5} {:>13} {:>7} {:>7} {:>7} {:>4} {:<7}\n",
        "NODE", "ADDRESS", "PRESIDENT", "TERM", "COMMIT", "LAG", "SHARD", "CORE", "MINISTRY", "ROLE", "TERM", "LEADER",
        "LAST", "COMMIT", "APPLIED", "LAG", "SERVING"
    );
    for (addr, r) in rows {
        match r {
            Err(e) => out += &format!("{:<5} {:<21} unreachable: {e}\n", "?", addr.to_string()),
            Ok(st) => {
                let p = &st.president;
                let node = format!(
                    "{:<5} {:<21} {:<13} {:>5} {:>7} {:>4} | ",
                    st.id,
                    addr.to_string(),
                    role(p.role),
                    p.term,
                    p.commit,
                    lag(p)
                );
                if st.shards.is_empty() {
                    out += &node;
                    out += "no shards reported yet\n";
                }
                for (i, sh) in st.shards.iter().enumerate() {
                    // The node's columns once, on its first shard's line.
                    if i == 0 {
                        out += &node;
                    } else {
                        out += &format!(
                            "{:<5} {:<21} {:<13} {:>5} {:>7} {:>4} | ",
                            "", "", "", "", "", ""
                        );
                    }
                    let shard = format!("{:<13} {:>4} ", shard_name(sh.id), sh.core);
                    out += &shard;
                    match &sh.member {
                        None => out += "idle\n",
                        Some(s) => {
                            out += &format!(
                                "{:<8} {:<9} {:>5} {:>13} {:>7} {:>7} {:>7} {:>4} {:<7}\n",
                                s.group,
                                if s.role == Role::Leader {
                                    "minister"
                                } else {
                                    "clerk"
                                },
                                s.term,
                                s.leader.map_or("-".into(), shard_name),
                                s.last_index,
                                s.commit,
                                s.applied,
                                lag(s),
                                if sh.serving { "yes" } else { "no" }
                            )
                        }
                    }
                }
            }
        }
    }
    out
}

/// A shard as "node.index" (see `govfs_core::ids`).
fn shard_name(id: u64) -> String {
    format!(
        "{}.{}",
        govfs_core::ids::node_of(id),
        govfs_core::ids::index_of(id)
    )
}
