//! One simulated node: the real node logic ([`NodeCore`]) with simulated
//! disks. The simulator plays the engine: it writes each batch of log
//! operations to a [`SimDisk`], completes the sync after a random delay, and
//! carries messages over the simulated network.

use std::collections::BTreeMap;

use govfs_core::ids::{shard_id, ShardIndex};
use govfs_core::node::{
    App, ClientRequest, Disk, NodeConfig, NodeCore, NodeMsg, Output, Recovered, RecoveredShard,
};
use govfs_core::president::TransferRequest;
use govfs_core::raft::{Membership, Micros, NodeId, Raft, PRESIDENT_GROUP};

use crate::disk::{Image, SimDisk};
use crate::rng::Rng;

pub struct SimNode<A: App> {
    cfg: NodeConfig,
    pub alive: bool,
    pub incarnation: u64,
    pub core: NodeCore<A>,
    disks: BTreeMap<Disk, SimDisk>,
}

impl<A: App> SimNode<A> {
    pub fn new(cfg: NodeConfig, now: Micros) -> Self {
        let core = NodeCore::new(cfg.clone(), now);
        let mut disks = BTreeMap::new();
        disks.insert(Disk::President, SimDisk::default());
        for &i in &cfg.shards {
            disks.insert(Disk::Shard(i), SimDisk::default());
        }
        SimNode {
            cfg,
            alive: true,
            incarnation: 0,
            core,
            disks,
        }
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn pres(&self) -> &Raft {
        self.core
            .president_raft()
            .expect("a simulated node hosts its president member")
    }

    pub fn shard_raft(&self, index: ShardIndex) -> Option<&Raft> {
        self.core.shard_raft(index)
    }

    /// Power loss: volatile state is gone; disks keep what they synced and
    /// maybe a prefix of what they did not.
    pub fn crash(&mut self, rng: &mut Rng) {
        self.alive = false;
        for d in self.disks.values_mut() {
            d.crash(rng);
        }
    }

    /// Start again from disk; `out` gets the recovered logs as observations.
    pub fn restart(&mut self, now: Micros, out: &mut Output) {
        self.alive = true;
        self.incarnation += 1;
        let id = self.cfg.id;
        let rec = |img: Image| Recovered {
            hs: img.hs,
            snapshot: img.snapshot,
            entries: img.entries,
        };
        let mut pres = Recovered::default();
        let mut shards = BTreeMap::new();
        for (disk, d) in &self.disks {
            let img = d.durable.clone();
            match *disk {
                Disk::President => {
                    observe_recovered(out, id, PRESIDENT_GROUP, &img);
                    pres = rec(img);
                }
                Disk::Shard(i) => {
                    if let Some(g) = img.group {
                        observe_recovered(out, shard_id(id, i), g, &img);
                    }
                    let group = img.group;
                    shards.insert(
                        i,
                        RecoveredShard {
                            group,
                            log: rec(img),
                        },
                    );
                }
            }
        }
        self.core = NodeCore::recover(self.cfg.clone(), pres, shards, now)
            .expect("a node's own snapshots decode");
    }

    pub fn tick(&mut self, now: Micros, out: &mut Output) {
        self.core.tick(now, out);
        self.write(out);
    }

    pub fn receive(&mut self, now: Micros, msg: NodeMsg, out: &mut Output) {
        self.core.receive(now, msg, out);
        self.write(out);
    }

    pub fn client_request(&mut self, now: Micros, req: ClientRequest, out: &mut Output) {
        self.core.client_request(now, req, out);
        self.write(out);
    }

    pub fn transfer_request(&mut self, now: Micros, req: TransferRequest, out: &mut Output) {
        // The world watches the map, not the answer.
        let _ = self.core.transfer_request(now, req, out);
        self.write(out);
    }

    pub fn synced(&mut self, now: Micros, disk: Disk, seq: u64, out: &mut Output) {
        if let Some(d) = self.disks.get_mut(&disk) {
            d.synced(seq);
        }
        self.core.synced(now, disk, seq, out);
        self.write(out);
    }

    pub fn change_president_voters(
        &mut self,
        now: Micros,
        next: Membership,
        out: &mut Output,
    ) -> Result<(), govfs_core::raft::ProposeError> {
        let r = self.core.change_president_voters(now, next, out);
        self.write(out);
        r
    }

    /// Hand new log operations to the disks (unsynced until their Sync event).
    fn write(&mut self, out: &Output) {
        for (disk, seq, ops) in &out.persist {
            let d = self
                .disks
                .get_mut(disk)
                .expect("the core writes only to its own disks");
            if d.written < *seq {
                d.write(*seq, ops.clone());
            }
        }
    }
}

fn observe_recovered(out: &mut Output, member: NodeId, group: u64, img: &Image) {
    use govfs_core::node::Observation;
    let (index, term) = img
        .snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.meta.index, s.meta.term));
    out.observed.push(Observation::LogReset {
        node: member,
        group,
        index,
        term,
    });
    if !img.entries.is_empty() {
        out.observed.push(Observation::Persisted {
            node: member,
            group,
            entries: img.entries.clone(),
        });
    }
}
