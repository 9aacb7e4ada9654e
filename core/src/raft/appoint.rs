//! Appointed mode (Group Raft): the president fences a ministry at a fresh
//! term with a poll, then appoints the most up-to-date member it heard from.
//!
//! Terms come from one counter in the president's log, so a term names one
//! appointment cluster-wide and a member never follows two leaders in a term.

use super::types::{Membership, Micros, Payload, Term};
use super::{AppointError, Mode, PollAnswer, Raft, Role};

impl Raft {
    /// The president asks for our log tail at `term`. Adopting the term first
    /// fences the old minister: a majority that answered can no longer
    /// acknowledge its appends. The answer leaves in [`super::Ready::poll_answers`]
    /// once the term is durable.
    pub fn poll(&mut self, now: Micros, term: Term) -> Result<(), AppointError> {
        self.now = self.now.max(now);
        if self.cfg.mode != Mode::Appointed {
            return Err(AppointError::WrongMode);
        }
        if term < self.hs.term {
            return Err(AppointError::StaleTerm {
                term,
                current: self.hs.term,
            });
        }
        if term == self.hs.term {
            if let Some(leader) = self.hs.vote {
                return Err(AppointError::TermTaken { term, leader });
            }
        } else {
            self.become_follower(term, None);
        }
        self.role = Role::Follower;
        self.leader = None;
        self.last_leader_contact = None;
        self.out.poll_answers.push(PollAnswer {
            group: self.cfg.group,
            from: self.cfg.id,
            term,
            last_term: self.log.last_term(),
            last_index: self.log.last_index(),
        });
        Ok(())
    }

    /// Become minister at `term` for `membership`. The president calls this
    /// only on the most up-to-date member of a majority that answered the poll.
    pub fn appoint(
        &mut self,
        now: Micros,
        term: Term,
        membership: Membership,
    ) -> Result<(), AppointError> {
        self.now = self.now.max(now);
        if self.cfg.mode != Mode::Appointed {
            return Err(AppointError::WrongMode);
        }
        if !membership.is_voter(self.cfg.id) {
            return Err(AppointError::NotMember);
        }
        if term < self.hs.term {
            return Err(AppointError::StaleTerm {
                term,
                current: self.hs.term,
            });
        }
        if term == self.hs.term {
            match self.hs.vote {
                Some(v) if v != self.cfg.id => {
                    return Err(AppointError::TermTaken { term, leader: v })
                }
                Some(_) if self.role == Role::Leader => return Ok(()),
                // We led this term before a restart and may have lost entries
                // our followers hold: leading it again would fork the log.
                Some(v) => return Err(AppointError::TermTaken { term, leader: v }),
                None => {}
            }
        }
        if self.role == Role::Leader {
            self.become_follower(term, None);
        }
        self.set_hard_state(super::HardState {
            term,
            vote: Some(self.cfg.id),
        });
        self.membership = membership.clone();
        // The first entry of every appointment records the ministry's members.
        self.become_leader(Payload::Config(membership));
        Ok(())
    }
}
