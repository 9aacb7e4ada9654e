//! Shard ids. A node hosts several shards (one or more per core); each shard
//! is a member of at most one ministry at a time and is named in Raft
//! messages, reports and the cluster map by its own id. The id carries the
//! node in its low 32 bits and the shard's index on that node in the high
//! bits, so shard 0 of a node has the node's own id and anything can find the
//! node a shard lives on (for routing, and to keep a ministry's members on
//! distinct nodes) without a table.

use crate::raft::NodeId;

/// A shard's position on its node (0, 1, ...).
pub type ShardIndex = u32;

/// Node ids must fit in the low half of a shard id.
pub const MAX_NODE_ID: NodeId = u32::MAX as NodeId;

/// The id of shard `index` of `node`.
pub fn shard_id(node: NodeId, index: ShardIndex) -> NodeId {
    assert!(
        node <= MAX_NODE_ID,
        "node id {node} does not fit a shard id"
    );
    node | (u64::from(index) << 32)
}

/// The node a shard (or a node, or the president member of a node) lives on.
pub fn node_of(shard: NodeId) -> NodeId {
    shard & MAX_NODE_ID
}

/// The shard's index on its node.
pub fn index_of(shard: NodeId) -> ShardIndex {
    (shard >> 32) as ShardIndex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shard_zero_is_the_node() {
        assert_eq!(shard_id(7, 0), 7);
        let s = shard_id(7, 3);
        assert_ne!(s, 7);
        assert_eq!(node_of(s), 7);
        assert_eq!(index_of(s), 3);
        assert_eq!(node_of(7), 7);
        assert_eq!(index_of(7), 0);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn oversized_node_ids_are_refused() {
        shard_id(1 << 40, 0);
    }
}
