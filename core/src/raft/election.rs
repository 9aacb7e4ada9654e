//! Elected mode: term rules, pre-vote, votes, heartbeats and check-quorum.

use super::quorum::is_majority;
use super::types::{Index, MessageBody, NodeId, Payload, Term};
use super::{Mode, Raft, Role};

impl Raft {
    /// Apply Raft's term rules to an incoming message. Returns whether the
    /// message should be handled further.
    pub(super) fn step_term(&mut self, msg: &super::Message) -> bool {
        let appointed = self.cfg.mode == Mode::Appointed;
        let from_leader = matches!(
            msg.body,
            MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. }
        );
        match &msg.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } if appointed => return false,
            // Pre-votes never move terms; their handlers compare terms themselves.
            MessageBody::PreVote { .. } => return true,
            MessageBody::PreVoteResponse { granted } => {
                if !granted && msg.term > self.hs.term {
                    self.become_follower(msg.term, None);
                    return false;
                }
                return true;
            }
            _ => {}
        }
        if msg.term > self.hs.term {
            if matches!(msg.body, MessageBody::Vote { .. }) && self.in_leader_lease() {
                // Check-quorum: a live leader's followers ignore disruptive candidates.
                return false;
            }
            let leader = from_leader.then_some(msg.from);
            self.become_follower(msg.term, leader);
            return true;
        }
        if msg.term < self.hs.term {
            if from_leader && self.cfg.faults.accept_stale_term {
                return true;
            }
            match msg.body {
                // Tell a deposed leader about the newer term so it steps down.
                MessageBody::Append { prev_index, .. } => {
                    let hint = self.log.last_index();
                    self.send(
                        msg.from,
                        MessageBody::AppendResponse {
                            success: false,
                            index: prev_index,
                            hint,
                        },
                    );
                }
                MessageBody::Vote { .. } if !self.cfg.faults.vote_ignores_term => {
                    self.send(msg.from, MessageBody::VoteResponse { granted: false });
                }
                MessageBody::Vote { .. } => return true,
                _ => {}
            }
            return false;
        }
        true
    }

    /// Whether we heard from a live leader recently enough to refuse an election.
    fn in_leader_lease(&self) -> bool {
        if self.cfg.mode != Mode::Elected {
            return false;
        }
        self.role == Role::Leader
            || (self.leader.is_some()
                && self
                    .last_leader_contact
                    .is_some_and(|t| self.now.saturating_sub(t) < self.cfg.election_timeout))
    }

    pub(super) fn tick_election(&mut self) {
        if self.cfg.mode != Mode::Elected || !self.membership.is_voter(self.cfg.id) {
            return;
        }
        if self.now >= self.election_deadline {
            self.campaign(true);
        }
    }

    pub(super) fn tick_leader(&mut self) {
        if self.now.saturating_sub(self.last_heartbeat) >= self.cfg.heartbeat_interval {
            self.broadcast_heartbeat();
        }
        if self.now.saturating_sub(self.last_quorum_check) >= self.cfg.election_timeout {
            self.last_quorum_check = self.now;
            let contact = self.quorum_contact();
            let stale =
                contact.is_none_or(|t| self.now.saturating_sub(t) >= self.cfg.election_timeout);
            if stale && self.cfg.mode == Mode::Elected {
                // Check-quorum: a leader cut off from a majority steps down.
                self.become_follower(self.hs.term, None);
            }
        }
    }

    /// The latest time by which a majority of voters (counting us) had answered.
    pub(super) fn quorum_contact(&self) -> Option<super::Micros> {
        let mut heard: Vec<u64> = self
            .membership
            .voters
            .iter()
            .map(|v| {
                if *v == self.cfg.id {
                    Some(self.now)
                } else {
                    self.progress.get(v).and_then(|p| p.last_heard)
                }
            })
            .map(|t| t.unwrap_or(0))
            .collect();
        if heard.is_empty() {
            return None;
        }
        heard.sort_unstable_by(|a, b| b.cmp(a));
        let t = heard[self.membership.quorum() - 1];
        (t > 0).then_some(t)
    }

    fn campaign(&mut self, pre: bool) {
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        self.reset_election_deadline();
        let (last_term, last_index) = (self.log.last_term(), self.log.last_index());
        let voters: Vec<NodeId> = self
            .membership
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.cfg.id)
            .collect();
        if pre {
            self.role = Role::PreCandidate;
            let term = self.hs.term + 1;
            for v in voters {
                let body = MessageBody::PreVote {
                    last_term,
                    last_index,
                };
                self.out.messages.push(super::Message {
                    group: self.cfg.group,
                    from: self.cfg.id,
                    to: v,
                    term,
                    body,
                });
            }
        } else {
            self.role = Role::Candidate;
            let term = self.hs.term + 1;
            self.set_hard_state(super::HardState {
                term,
                vote: Some(self.cfg.id),
            });
            // Our own vote must be durable before anyone counts on it.
            for v in voters {
                self.send_after_persist(
                    v,
                    term,
                    MessageBody::Vote {
                        last_term,
                        last_index,
                    },
                );
            }
        }
        self.check_votes(pre);
    }

    pub(super) fn on_pre_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_term: Term,
        last_index: Index,
    ) {
        let up_to_date = self.log.is_up_to_date(last_term, last_index);
        let granted = if self.cfg.faults.vote_ignores_term {
            up_to_date
        } else {
            term > self.hs.term && up_to_date && !self.in_leader_lease()
        };
        let reply_term = if granted { term } else { self.hs.term };
        let body = MessageBody::PreVoteResponse { granted };
        self.out.messages.push(super::Message {
            group: self.cfg.group,
            from: self.cfg.id,
            to: from,
            term: reply_term,
            body,
        });
    }

    pub(super) fn on_vote(&mut self, from: NodeId, term: Term, last_term: Term, last_index: Index) {
        let up_to_date = self.log.is_up_to_date(last_term, last_index);
        let granted = if self.cfg.faults.vote_ignores_term {
            up_to_date
        } else {
            term == self.hs.term && self.hs.vote.is_none_or(|v| v == from) && up_to_date
        };
        if granted && term == self.hs.term {
            self.set_hard_state(super::HardState {
                term,
                vote: Some(from),
            });
            self.reset_election_deadline();
        }
        let reply_term = if granted { term } else { self.hs.term };
        self.send_after_persist(from, reply_term, MessageBody::VoteResponse { granted });
    }

    pub(super) fn on_vote_response(&mut self, from: NodeId, term: Term, granted: bool, pre: bool) {
        let expected = if pre {
            (Role::PreCandidate, self.hs.term + 1)
        } else {
            (Role::Candidate, self.hs.term)
        };
        if (self.role, term) != expected || !self.membership.is_voter(from) {
            return;
        }
        self.votes.insert(from, granted);
        self.check_votes(pre);
    }

    fn check_votes(&mut self, pre: bool) {
        let voters = self.membership.voters.len();
        let yes = self.votes.values().filter(|v| **v).count();
        let no = self.votes.len() - yes;
        if is_majority(yes, voters) {
            if pre {
                self.campaign(false);
            } else {
                self.become_leader(Payload::Noop);
            }
        } else if is_majority(no, voters) {
            self.become_follower(self.hs.term, None);
        }
    }
}
