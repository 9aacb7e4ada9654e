//! Log replication: pipelined appends, follower log repair, snapshots, and
//! commit on a majority of durable copies.

use super::progress::ProgressState;
use super::quorum::majority_index;
use super::types::{Entry, Index, MessageBody, NodeId, Payload, Snapshot, Term};
use super::{Mode, Raft, Role};

impl Raft {
    /// A message from a leader at our term (or, with the stale-term fault, any
    /// leader). Returns false if we must not follow it.
    fn accept_leader(&mut self, from: NodeId, term: Term) -> bool {
        if term == self.hs.term {
            if self.role == Role::Leader {
                return false; // two leaders in one term: the checkers report it
            }
            if self.cfg.mode == Mode::Appointed {
                match self.hs.vote {
                    None => self.set_hard_state(super::HardState {
                        term,
                        vote: Some(from),
                    }),
                    Some(v) if v != from => return false,
                    Some(_) => {}
                }
            }
        }
        if self.role != super::Role::Follower {
            self.become_follower(self.hs.term, Some(from));
        }
        self.leader = Some(from);
        self.last_leader_contact = Some(self.now);
        self.reset_election_deadline();
        true
    }

    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        term: Term,
        prev_index: Index,
        prev_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: Index,
    ) {
        if !self.accept_leader(from, term) {
            return;
        }
        // Only the injected stale-term fault lets an older leader through; a
        // member that accepts one answers in that leader's term.
        let reply_term = term.min(self.hs.term);
        let last_sent = prev_index + entries.len() as u64;
        let (mut prev_index, mut prev_term) = (prev_index, prev_term);
        if prev_index < self.commit {
            // Committed entries match by construction; skip what we already hold.
            entries.retain(|e| e.index > self.commit);
            prev_index = self.commit;
            prev_term = match entries.first() {
                Some(_) => self.log.term(self.commit).unwrap_or(prev_term),
                None => {
                    let body = MessageBody::AppendResponse {
                        success: true,
                        index: last_sent,
                        hint: 0,
                    };
                    self.send_after_persist(from, reply_term, body);
                    return;
                }
            };
        }
        match self.log.term(prev_index) {
            None => {
                let hint = self.log.last_index();
                let body = MessageBody::AppendResponse {
                    success: false,
                    index: prev_index,
                    hint,
                };
                self.send_after_persist(from, reply_term, body);
                return;
            }
            Some(t) if t != prev_term => {
                let hint = (self.log.term_start(prev_index) - 1).max(self.commit);
                let body = MessageBody::AppendResponse {
                    success: false,
                    index: prev_index,
                    hint,
                };
                self.send_after_persist(from, reply_term, body);
                return;
            }
            Some(_) => {}
        }
        for e in entries {
            match self.log.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    assert!(
                        e.index > self.commit,
                        "a leader tried to overwrite committed entry {}",
                        e.index
                    );
                    self.log.truncate_from(e.index);
                    self.note_truncation(e.index);
                    self.recompute_membership();
                }
                None => {}
            }
            if let Payload::Config(m) = &e.payload {
                self.apply_membership(m.clone());
            }
            self.log.append(e.clone());
            self.out.entries.push(e);
        }
        let new_commit = leader_commit.min(last_sent);
        if new_commit > self.commit {
            self.commit = new_commit;
        }
        let body = MessageBody::AppendResponse {
            success: true,
            index: last_sent,
            hint: 0,
        };
        self.send_after_persist(from, reply_term, body);
    }

    pub(super) fn on_append_response(
        &mut self,
        from: NodeId,
        term: Term,
        success: bool,
        index: Index,
        hint: Index,
    ) {
        if self.role != Role::Leader || term != self.hs.term {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.last_heard = Some(self.now);
        if success {
            if index > last {
                return; // cannot be an answer to anything we sent
            }
            if let ProgressState::Snapshot(s) = pr.state {
                if index >= s {
                    pr.become_probe(index + 1);
                }
            }
            if pr.on_match(index) {
                self.maybe_commit();
            }
        } else {
            let stale = match pr.state {
                ProgressState::Replicate => index <= pr.matched,
                ProgressState::Probe => index + 1 != pr.next,
                ProgressState::Snapshot(_) => true,
            };
            if stale {
                return;
            }
            pr.become_probe(index.min(hint + 1));
        }
        self.send_append_to(from, false);
    }

    pub(super) fn on_install_snapshot(&mut self, from: NodeId, term: Term, snapshot: Snapshot) {
        if !self.accept_leader(from, term) {
            return;
        }
        let reply_term = self.hs.term;
        let index = snapshot.meta.index;
        if index <= self.commit {
            let body = MessageBody::SnapshotResponse { index: self.commit };
            self.send_after_persist(from, reply_term, body);
            return;
        }
        if self.log.term(index) == Some(snapshot.meta.term) {
            // Our log already holds the snapshot's last entry, and maybe
            // entries after it we acknowledged: keep them all (Raft Fig. 13,
            // step 6); the covered entries commit and apply as usual.
            self.commit = index;
            self.send_after_persist(from, reply_term, MessageBody::SnapshotResponse { index });
            return;
        }
        self.note_truncation(self.log.snapshot_index() + 1);
        self.log.reset(index, snapshot.meta.term);
        self.commit = index;
        self.applied = index;
        self.membership = snapshot.meta.membership.clone();
        self.base_membership = snapshot.meta.membership.clone();
        self.snapshot = Some(snapshot.clone());
        self.out.snapshot = Some(snapshot);
        self.send_after_persist(from, reply_term, MessageBody::SnapshotResponse { index });
    }

    pub(super) fn on_snapshot_response(&mut self, from: NodeId, term: Term, index: Index) {
        if self.role != Role::Leader || term != self.hs.term {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.last_heard = Some(self.now);
        pr.matched = pr.matched.max(index.min(self.log.last_index()));
        pr.become_probe(pr.matched + 1);
        self.maybe_commit();
        self.send_append_to(from, false);
    }

    /// Commit the highest index a majority holds durably, if it is of our term.
    pub(super) fn maybe_commit(&mut self) {
        debug_assert_eq!(self.role, Role::Leader);
        let me = self.cfg.id;
        let candidate = if self.cfg.faults.commit_without_majority {
            self.durable
        } else {
            // Runs on every ack: reuse one buffer instead of allocating.
            let mut matched = std::mem::take(&mut self.scratch_indexes);
            matched.clear();
            matched.extend(self.membership.voters.iter().map(|v| {
                if *v == me {
                    self.durable
                } else {
                    self.progress.get(v).map_or(0, |p| p.matched)
                }
            }));
            let index = if matched.is_empty() {
                0
            } else {
                majority_index(&mut matched)
            };
            self.scratch_indexes = matched;
            index
        };
        if candidate > self.commit && self.log.term(candidate) == Some(self.hs.term) {
            self.commit = candidate;
            self.out.commit_moved = true;
            // A leader removed from the voters leads until that change commits.
            let removed = !self.membership.is_voter(me)
                && self
                    .log
                    .last_config(self.log.last_index())
                    .is_none_or(|e| e.index <= self.commit);
            if removed && self.cfg.mode == Mode::Elected {
                self.flush_appends();
                self.become_follower(self.hs.term, None);
            }
        }
    }

    pub(super) fn has_pending_appends(&self) -> bool {
        let last = self.log.last_index();
        self.out.commit_moved
            || self.progress.values().any(|pr| match pr.state {
                ProgressState::Replicate => pr.next <= last && !pr.inflight.full(),
                ProgressState::Probe => !pr.paused,
                ProgressState::Snapshot(_) => false,
            })
    }

    /// Once per turn: send every follower what it lacks, in as few messages as the window allows.
    pub(super) fn flush_appends(&mut self) {
        let commit_moved = std::mem::take(&mut self.out.commit_moved);
        let ids = self.follower_ids();
        for &id in &ids {
            let sent = self.send_append_to(id, false);
            if commit_moved && !sent {
                // Followers learn the new commit index now, not at the next heartbeat.
                self.send_append_to(id, true);
            }
        }
        self.scratch_ids = ids;
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        self.last_heartbeat = self.now;
        let ids = self.follower_ids();
        for &id in &ids {
            self.send_append_to(id, true);
        }
        self.scratch_ids = ids;
    }

    /// The followers' ids in a reused buffer (hand it back via `scratch_ids`).
    fn follower_ids(&mut self) -> Vec<NodeId> {
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        ids.extend(self.progress.keys().copied());
        ids
    }

    /// Send `to` what it needs. A heartbeat always sends something (an empty
    /// append if nothing else), which also recovers from lost messages.
    pub(super) fn send_append_to(&mut self, to: NodeId, heartbeat: bool) -> bool {
        let now = self.now;
        let snap_index = self.log.snapshot_index();
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        let needs_snapshot = match pr.state {
            ProgressState::Snapshot(_) => {
                if !heartbeat || now.saturating_sub(pr.snapshot_sent_at) < self.cfg.election_timeout
                {
                    return false;
                }
                true
            }
            _ => pr.next <= snap_index,
        };
        if needs_snapshot {
            // The follower needs entries we compacted.
            let Some(snapshot) = self.snapshot.clone() else {
                return false;
            };
            pr.become_snapshot(snapshot.meta.index, now);
            self.send(to, MessageBody::InstallSnapshot { snapshot });
            return true;
        }
        if pr.state == ProgressState::Probe {
            if pr.paused && !heartbeat {
                return false;
            }
            pr.paused = true;
            let from = pr.next;
            self.send_batch(to, from);
            return true;
        }
        let mut sent = false;
        while let Some(pr) = self.progress.get_mut(&to) {
            if pr.next > self.log.last_index() || pr.inflight.full() {
                break;
            }
            let from = pr.next;
            let end = self.send_batch(to, from);
            let pr = self.progress.get_mut(&to).expect("still a follower");
            pr.inflight.add(end);
            pr.next = end + 1;
            sent = true;
        }
        if !sent && heartbeat {
            let from = self.progress[&to].next;
            self.send_entries(to, from, Vec::new());
            return true;
        }
        sent
    }

    /// One append of entries from `from` on; returns the last index sent.
    fn send_batch(&mut self, to: NodeId, from: Index) -> Index {
        let entries = self.log.slice(from, self.cfg.max_append_bytes);
        let end = entries.last().map_or(from - 1, |e| e.index);
        self.send_entries(to, from, entries);
        end
    }

    fn send_entries(&mut self, to: NodeId, from: Index, entries: Vec<Entry>) {
        let commit = self.commit;
        let prev_index = from - 1;
        let prev_term = self
            .log
            .term(prev_index)
            .expect("prev entry is above the snapshot");
        self.send(
            to,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
    }
}
