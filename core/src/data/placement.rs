//! Where a chunk's replicas go: weighted rendezvous hashing over the storage
//! nodes, spread over failure domains.
//!
//! Every eligible node gets a score `-ln(u) / w` for the chunk, with `u` in
//! (0, 1) from a hash of (chunk id, node) and `w` its free bytes; the lowest
//! scores win. `-ln(u)` is exponential with rate 1, so a node's score is
//! exponential with rate `w` and the lowest of them belongs to each node with
//! probability `w / sum(w)`: a node with twice the free space is first choice
//! for twice the chunks. Adding or removing a node moves only the chunks it
//! wins or held (rendezvous hashing), and the same input gives the same
//! answer anywhere (no randomness, no iteration-order dependence).
//!
//! Domains: the choice walks nodes by score and takes one per failure domain
//! not yet used (domains of `keep` count as used) until R are chosen; only if
//! the domains run out does it fill up with the best remaining nodes. This
//! uses as many domains as possible.

use std::collections::HashSet;

use super::chunk::ChunkId;
use crate::raft::NodeId;

/// A storage node as the placement sees it (from the cluster map).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StorageNode {
    pub node: NodeId,
    /// Failure domain (rack, power feed): nodes in one may fail together.
    pub domain: u32,
    pub free_bytes: u64,
    pub up: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("need {needed} new replicas but only {eligible} nodes are eligible (up, with free space, not excluded, not kept)")]
    NotEnoughNodes { needed: usize, eligible: usize },
    #[error("{keep} replicas to keep but only {replicas} wanted")]
    TooManyKept { keep: usize, replicas: usize },
    #[error("node {0} is listed twice (in nodes or in keep)")]
    Duplicate(NodeId),
    #[error("node {0} is both kept and excluded")]
    KeptAndExcluded(NodeId),
    #[error("zero replicas requested")]
    NoReplicas,
}

/// What to place: `replicas` copies of `chunk`, keeping the good copies on
/// `keep` (for repair) and never using `exclude` (for re-replication away
/// from a bad or draining node).
#[derive(Clone, Copy, Debug)]
pub struct Want<'a> {
    pub chunk: ChunkId,
    pub replicas: usize,
    pub keep: &'a [NodeId],
    pub exclude: &'a [NodeId],
}

/// The replica set: `want.keep` in its order, then the new nodes best first.
/// Kept nodes are taken as they are (they hold the data already), whatever
/// `nodes` says about them; new ones are up, have free space, and are
/// neither excluded nor kept.
pub fn place(nodes: &[StorageNode], want: &Want<'_>) -> Result<Vec<NodeId>, PlacementError> {
    if want.replicas == 0 {
        return Err(PlacementError::NoReplicas);
    }
    if want.keep.len() > want.replicas {
        return Err(PlacementError::TooManyKept {
            keep: want.keep.len(),
            replicas: want.replicas,
        });
    }
    let mut seen = HashSet::with_capacity(nodes.len());
    for n in nodes {
        if !seen.insert(n.node) {
            return Err(PlacementError::Duplicate(n.node));
        }
    }
    let mut kept = HashSet::with_capacity(want.keep.len());
    for &k in want.keep {
        if !kept.insert(k) {
            return Err(PlacementError::Duplicate(k));
        }
        if want.exclude.contains(&k) {
            return Err(PlacementError::KeptAndExcluded(k));
        }
    }
    let excluded: HashSet<NodeId> = want.exclude.iter().copied().collect();

    let mut ranked: Vec<(f64, &StorageNode)> = nodes
        .iter()
        .filter(|n| {
            n.up && n.free_bytes > 0 && !excluded.contains(&n.node) && !kept.contains(&n.node)
        })
        .map(|n| (score(want.chunk, n), n))
        .collect();
    let needed = want.replicas - want.keep.len();
    if ranked.len() < needed {
        return Err(PlacementError::NotEnoughNodes {
            needed,
            eligible: ranked.len(),
        });
    }
    // Scores are finite and positive; the node id breaks (improbable) ties.
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.node.cmp(&b.1.node)));

    let mut used_domains: HashSet<u32> = nodes
        .iter()
        .filter(|n| kept.contains(&n.node))
        .map(|n| n.domain)
        .collect();
    let mut chosen: Vec<NodeId> = want.keep.to_vec();
    let mut taken = vec![false; ranked.len()];
    // First pass: one node per unused domain; second: the best of the rest.
    for (i, (_, n)) in ranked.iter().enumerate() {
        if chosen.len() == want.replicas {
            break;
        }
        if used_domains.insert(n.domain) {
            chosen.push(n.node);
            taken[i] = true;
        }
    }
    for (i, (_, n)) in ranked.iter().enumerate() {
        if chosen.len() == want.replicas {
            break;
        }
        if !taken[i] {
            chosen.push(n.node);
        }
    }
    assert_eq!(chosen.len(), want.replicas);
    debug_assert_eq!(
        chosen.iter().collect::<HashSet<_>>().len(),
        chosen.len(),
        "distinct nodes"
    );
    Ok(chosen)
}

/// The node's score for the chunk: lower is better. Finite and positive for
/// a node with free space.
fn score(chunk: ChunkId, n: &StorageNode) -> f64 {
    debug_assert!(n.free_bytes > 0);
    let h = mix(chunk.0 ^ mix(n.node.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    // 53 random bits to a double strictly inside (0, 1).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -u.ln() / n.free_bytes as f64
}

/// The splitmix64 finalizer: a fixed bijection that scatters every input bit
/// over the output. Fixed here (not `std`'s hasher) so placements do not
/// change with the Rust version.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(node: NodeId, domain: u32, free_bytes: u64) -> StorageNode {
        StorageNode {
            node,
            domain,
            free_bytes,
            up: true,
        }
    }

    fn want(chunk: u64, replicas: usize) -> Want<'static> {
        Want {
            chunk: ChunkId(chunk),
            replicas,
            keep: &[],
            exclude: &[],
        }
    }

    fn domain_of(nodes: &[StorageNode], id: NodeId) -> u32 {
        nodes
            .iter()
            .find(|n| n.node == id)
            .map(|n| n.domain)
            .expect("known")
    }

    #[test]
    fn replicas_spread_over_domains_while_possible() {
        // Three domains with three nodes each.
        let nodes: Vec<_> = (0..9).map(|i| node(i, (i / 3) as u32, 1 << 30)).collect();
        for chunk in 0..200 {
            let got = place(&nodes, &want(chunk, 3)).expect("enough nodes");
            let domains: HashSet<_> = got.iter().map(|&n| domain_of(&nodes, n)).collect();
            assert_eq!(domains.len(), 3, "chunk {chunk}: {got:?}");
        }
        // Five replicas over three domains: all three used, then doubled up.
        let got = place(&nodes, &want(1, 5)).expect("enough nodes");
        let domains: HashSet<_> = got.iter().map(|&n| domain_of(&nodes, n)).collect();
        assert_eq!((got.len(), domains.len()), (5, 3));
    }

    #[test]
    fn kept_replicas_stay_first_and_their_domains_count() {
        let nodes: Vec<_> = (0..6).map(|i| node(i, (i / 2) as u32, 1 << 30)).collect();
        let w = Want {
            keep: &[0, 2],
            exclude: &[4],
            ..want(3, 3)
        };
        // Domains 0 and 1 are used by the kept nodes, node 4 is excluded:
        // the only new domain-2 node left is 5.
        assert_eq!(place(&nodes, &w), Ok(vec![0, 2, 5]));
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut nodes: Vec<_> = (0..4).map(|i| node(i, i as u32, 1 << 30)).collect();
        nodes[1].up = false;
        nodes[2].free_bytes = 0;
        assert_eq!(
            place(&nodes, &want(1, 3)),
            Err(PlacementError::NotEnoughNodes {
                needed: 3,
                eligible: 2
            })
        );
        assert_eq!(place(&nodes, &want(1, 0)), Err(PlacementError::NoReplicas));
        let w = Want {
            keep: &[0, 0],
            ..want(1, 3)
        };
        assert_eq!(place(&nodes, &w), Err(PlacementError::Duplicate(0)));
        let w = Want {
            keep: &[0],
            exclude: &[0],
            ..want(1, 2)
        };
        assert_eq!(place(&nodes, &w), Err(PlacementError::KeptAndExcluded(0)));
        let w = Want {
            keep: &[0, 3],
            ..want(1, 1)
        };
        assert_eq!(
            place(&nodes, &w),
            Err(PlacementError::TooManyKept {
                keep: 2,
                replicas: 1
            })
        );
        nodes.push(node(0, 9, 1));
        assert_eq!(
            place(&nodes, &want(1, 1)),
            Err(PlacementError::Duplicate(0))
        );
    }

    /// A node with twice the free space is first choice for twice the chunks.
    /// Chunks 0..20000 are a fixed input, so the result never changes; the
    /// expected ratio is 2 and the binomial noise at these counts is about
    /// 3%, so the 10% tolerance is generous.
    #[test]
    fn twice_the_space_gets_twice_the_chunks() {
        let mut nodes: Vec<_> = (0..10).map(|i| node(i, i as u32, 1 << 40)).collect();
        nodes[7].free_bytes = 2 << 40;
        let mut counts = [0u32; 10];
        for chunk in 0..20_000 {
            let got = place(&nodes, &want(chunk, 1)).expect("enough nodes");
            counts[got[0] as usize] += 1;
        }
        let others: u32 = counts.iter().sum::<u32>() - counts[7];
        let ratio = f64::from(counts[7]) / (f64::from(others) / 9.0);
        assert!(
            (1.8..=2.2).contains(&ratio),
            "ratio {ratio}, counts {counts:?}"
        );
        for (i, &c) in counts.iter().enumerate().filter(|(i, _)| *i != 7) {
            let share = f64::from(c) / (f64::from(others) / 9.0);
            assert!((0.85..=1.15).contains(&share), "node {i}: {counts:?}");
        }
    }

    fn cluster() -> impl Strategy<Value = Vec<StorageNode>> {
        proptest::collection::vec((0u32..4, 0u64..1000, any::<bool>()), 1..12).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (domain, free, up))| StorageNode {
                    node: i as NodeId + 1,
                    domain,
                    free_bytes: free,
                    up,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn choices_are_distinct_eligible_and_deterministic(
            nodes in cluster(),
            chunk in any::<u64>(),
            replicas in 1usize..5,
            exclude in proptest::collection::vec(1u64..13, 0..4),
        ) {
            let w = Want { exclude: &exclude, ..want(chunk, replicas) };
            let eligible: Vec<&StorageNode> = nodes
                .iter()
                .filter(|n| n.up && n.free_bytes > 0 && !exclude.contains(&n.node))
                .collect();
            match place(&nodes, &w) {
                Ok(got) => {
                    prop_assert_eq!(got.len(), replicas);
                    prop_assert_eq!(got.iter().collect::<HashSet<_>>().len(), replicas);
                    for id in &got {
                        prop_assert!(eligible.iter().any(|n| n.node == *id));
                    }
                    let domains: HashSet<_> = got.iter().map(|&n| domain_of(&nodes, n)).collect();
                    let available: HashSet<_> = eligible.iter().map(|n| n.domain).collect();
                    prop_assert_eq!(domains.len(), available.len().min(replicas));
                    // Same input, same answer, whatever the order of the nodes.
                    let mut reversed = nodes.clone();
                    reversed.reverse();
                    prop_assert_eq!(place(&reversed, &w), Ok(got));
                }
                Err(e) => prop_assert_eq!(
                    e,
                    PlacementError::NotEnoughNodes { needed: replicas, eligible: eligible.len() }
                ),
            }
        }
    }
}
