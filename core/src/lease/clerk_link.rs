//! What the minister knows about one clerk: when it last heard from it, the
//! round trips that prove the clerk is alive and caught up, and where the
//! clerk is in the term's lock stream. The two timing rules of the lease
//! protocol live here: when the minister may vouch for a clerk (the echo),
//! and when it may treat a silent clerk as fenced (2H).

use super::config::LeaseConfig;
use super::messages::{ClerkReply, Echo};
use crate::raft::Micros;

#[derive(Clone, Debug)]
pub(crate) struct ClerkLink {
    /// When the minister started counting this clerk: appointment, or the
    /// time it was added.
    pub added_at: Micros,
    /// Removed by the president: no more batches, but still waited for
    /// until fenced, and still counted in the majority's denominator.
    pub removed: bool,
    /// Minister clock when the latest reply of this term arrived.
    pub last_contact: Option<Micros>,
    /// Latest minister send time the clerk echoed (the minister's own round trip).
    pub echoed_batch: Option<Micros>,
    /// The reply the minister would vouch for, with the stream position it showed.
    pub candidate: Option<(Echo, u64)>,
    /// The clerk's position in the lock stream as of its latest reply.
    pub next_seq: Option<u64>,
    pub last_sent: Option<Micros>,
    /// The stream end when the minister last sent this clerk a batch.
    pub sent_upto: u64,
    /// A ReportClerk went out since the last contact.
    pub reported: bool,
}

impl ClerkLink {
    pub fn new(added_at: Micros) -> ClerkLink {
        ClerkLink {
            added_at,
            removed: false,
            last_contact: None,
            echoed_batch: None,
            candidate: None,
            next_seq: None,
            last_sent: None,
            sent_upto: 0,
            reported: false,
        }
    }

    pub fn on_reply(&mut self, now: Micros, reply: &ClerkReply) {
        self.last_contact = Some(self.last_contact.map_or(now, |t| t.max(now)));
        self.reported = false;
        if let Some(b) = reply.minister_sent_at.filter(|b| *b <= now) {
            self.echoed_batch = Some(self.echoed_batch.map_or(b, |e| e.max(b)));
        }
        let echo = Echo {
            incarnation: reply.incarnation,
            sent_at: reply.sent_at,
        };
        let newer = match self.candidate {
            None => true,
            Some((c, _)) => c.incarnation != echo.incarnation || c.sent_at <= echo.sent_at,
        };
        if newer {
            self.candidate = reply.next_seq.map(|s| (echo, s));
            self.next_seq = reply.next_seq;
        }
    }

    /// The minister heard a reply to one of its batches sent within H.
    pub fn round_trip_fresh(&self, cfg: &LeaseConfig, now: Micros) -> bool {
        let h = cfg.drift.holder_span(cfg.serve_timeout);
        !self.removed && self.echoed_batch.is_some_and(|b| now < b.saturating_add(h))
    }

    /// The echo the minister may send: only for a reply that showed the
    /// clerk holding every established lock (stream position at least
    /// `required_seq`), so a clerk the minister vouches for holds them all.
    pub fn echo(&self, required_seq: u64) -> Option<Echo> {
        self.candidate
            .filter(|(_, seq)| *seq >= required_seq)
            .map(|(e, _)| e)
    }

    /// The clerk has stopped serving and every read lease it granted has
    /// expired. Its last round-trip proof from this minister was for a reply
    /// sent before `last_contact`; it serves at most H past that reply, and
    /// its leases last at most H more, so 2H (counted by the granter rule)
    /// after `last_contact` it is fenced. The previous minister may vouch for
    /// any clerk (even one this minister heard, if it restarted and forgot
    /// the newer term) until H after this one got its majority
    /// (`majority_at`), so the count never starts before then.
    pub fn fenced(&self, cfg: &LeaseConfig, majority_at: Option<Micros>, now: Micros) -> bool {
        let Some(m) = majority_at else {
            return false;
        };
        let base = self
            .last_contact
            .unwrap_or(self.added_at)
            .max(self.added_at)
            .max(cfg.drift.granter_deadline(m, cfg.serve_timeout));
        let wait = if cfg.faults.minister_skips_fence_wait {
            cfg.heartbeat
        } else {
            cfg.drift.granter_span(2 * cfg.serve_timeout)
        };
        now >= base.saturating_add(wait)
    }
}
