//! Write grants (issue 6): for a valid write lease, the minister signs one
//! grant per chunk the client names, covering the part of the chunk the
//! lease's region covers, with the chunk's placement from the applied
//! namespace, valid until the lease expires on the minister's clock
//! (converted to wall-clock time for the storage nodes, which allow a
//! bounded skew; see `data::grant`).

use std::sync::Arc;

use super::{NodeCore, Output};
use crate::data::{ChunkRef, GrantKey, WriteGrant, DELETE_LEASE};
use crate::ids::ShardIndex;
use crate::lease::LeaseError;
use crate::node::app::App;
use crate::node::wire::{LeaseRefusal, LeaseReply, LeaseRequest, DELETE_GRANT_US, MAX_GRANTS};
use crate::raft::Micros;

impl<A: App> NodeCore<A> {
    /// Sign write grants with `key` (the cluster's grant key).
    pub fn enable_grants(&mut self, key: Arc<GrantKey>) {
        self.grant_key = Some(key);
    }

    /// The wall clock read `unix_us` at `now`: grants expire in wall-clock
    /// time. The engine tells it every tick, so a stepped clock is followed.
    pub fn set_unix_time(&mut self, now: Micros, unix_us: u64) {
        self.unix_at_zero = Some(unix_us.saturating_sub(now));
    }

    /// The space this node's storage has for chunks (the engine measures
    /// it now and then): reported to the president, who writes it into
    /// the map that placement weighs nodes by.
    pub fn set_storage_space(&mut self, space: crate::president::StorageSpace) {
        self.space = Some(space);
    }

    /// Answers `LeaseRequest::Grants` for shard `index`.
    pub(super) fn write_grants(
        &mut self,
        now: Micros,
        index: ShardIndex,
        req: LeaseRequest,
        token: u64,
        out: &mut Output,
    ) {
        let answer = self.grants_answer(now, index, req);
        out.leases.push((token, answer));
    }

    fn grants_answer(&self, now: Micros, index: ShardIndex, req: LeaseRequest) -> LeaseReply {
        if let LeaseRequest::DeleteGrants {
            ministry,
            file,
            indexes,
            on,
        } = req
        {
            return self.delete_grants(now, index, ministry, file, indexes, on);
        }
        let LeaseRequest::Grants {
            ministry,
            session,
            lease,
            indexes,
        } = req
        else {
            return LeaseReply::Refused(LeaseRefusal::BadRequest("not a grants request".into()));
        };
        let refused = |r: LeaseRefusal| LeaseReply::Refused(r);
        let (Some(key), Some(unix_at_zero)) = (&self.grant_key, self.unix_at_zero) else {
            return refused(LeaseRefusal::BadRequest(
                "this node does not sign write grants".into(),
            ));
        };
        if indexes.is_empty() || indexes.len() > MAX_GRANTS {
            return refused(LeaseRefusal::BadRequest(format!(
                "ask for 1 to {MAX_GRANTS} chunks at once"
            )));
        }
        let Some(slot) = self.shards.get(&index) else {
            return refused(LeaseRefusal::BadRequest("no such shard".into()));
        };
        let held = match slot.leases.held_write(now, session, lease) {
            Some(Ok(l)) => l,
            Some(Err(e)) => return refused(e.into()),
            None => {
                let hint = self.map.ministries.get(&ministry).and_then(|i| i.minister);
                return LeaseReply::Elsewhere {
                    hint,
                    members: Vec::new(),
                };
            }
        };
        let Some(m) = slot.member.as_ref() else {
            return refused(LeaseError::UnknownLease(lease).into());
        };
        let (chunk_size, places) = match m.app.placements(held.file, &indexes) {
            Ok(p) => p,
            Err(why) => return refused(LeaseRefusal::BadRequest(why)),
        };
        debug_assert_eq!(places.len(), indexes.len());
        let not_after = unix_at_zero.saturating_add(held.expires_at);
        let cs = u64::from(chunk_size);
        let (rs, re) = (held.region.start(), held.region.end());
        let mut grants = Vec::with_capacity(places.len());
        for p in places {
            let chunk = ChunkRef {
                file: held.file,
                index: p.index,
            };
            let Ok(chunk_id) = chunk.id() else {
                return refused(LeaseRefusal::BadRequest(format!(
                    "chunk {} of the file is beyond the largest file",
                    p.index
                )));
            };
            let fs = p.index.saturating_mul(cs);
            let fe = fs.saturating_add(cs);
            let (s, e) = (fs.max(rs), fe.min(re));
            if s >= e {
                return refused(LeaseRefusal::BadRequest(format!(
                    "chunk {} is outside the lease's region {}",
                    p.index, held.region
                )));
            }
            grants.push(key.sign(WriteGrant {
                ministry,
                term: slot.term(),
                lease,
                session,
                chunk,
                chunk_id,
                version: p.version,
                replicas: p.replicas,
                range: (s - fs, e - fs),
                not_after_unix_us: not_after,
            }));
        }
        LeaseReply::Grants(grants)
    }

    /// Grants to delete chunks of a file that is gone, or copies left on a
    /// node: only the serving minister signs them, only for what its
    /// applied namespace lists, each for the whole chunk at the version it
    /// had (a copy left on a node: on that node alone).
    fn delete_grants(
        &self,
        now: Micros,
        index: ShardIndex,
        ministry: crate::raft::GroupId,
        file: crate::meta::types::Ino,
        indexes: Vec<u64>,
        on: Option<crate::raft::NodeId>,
    ) -> LeaseReply {
        let refused = |why: String| LeaseReply::Refused(LeaseRefusal::BadRequest(why));
        let (Some(key), Some(unix_at_zero)) = (&self.grant_key, self.unix_at_zero) else {
            return refused("this node does not sign grants".into());
        };
        if indexes.is_empty() || indexes.len() > MAX_GRANTS {
            return refused(format!("ask for 1 to {MAX_GRANTS} chunks at once"));
        }
        let Some(slot) = self.shards.get(&index) else {
            return refused("no such shard".into());
        };
        let (Some(m), true) = (slot.member.as_ref(), slot.leases.is_serving_minister()) else {
            let hint = self.map.ministries.get(&ministry).and_then(|i| i.minister);
            return LeaseReply::Elsewhere {
                hint,
                members: Vec::new(),
            };
        };
        let (chunk_size, places) = match m.app.garbage_placements(file, &indexes, on) {
            Ok(p) => p,
            Err(why) => return refused(why),
        };
        let not_after = unix_at_zero
            .saturating_add(now)
            .saturating_add(DELETE_GRANT_US);
        let mut grants = Vec::with_capacity(places.len());
        for p in places {
            let chunk = ChunkRef {
                file,
                index: p.index,
            };
            let Ok(chunk_id) = chunk.id() else {
                return refused(format!("chunk {} is beyond the largest file", p.index));
            };
            grants.push(key.sign(WriteGrant {
                ministry,
                term: slot.term(),
                lease: DELETE_LEASE,
                session: 0,
                chunk,
                chunk_id,
                version: p.version,
                replicas: p.replicas,
                range: (0, u64::from(chunk_size)),
                not_after_unix_us: not_after,
            }));
        }
        LeaseReply::Grants(grants)
    }
}
