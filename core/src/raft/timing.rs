//! Perishable state: a clerk serves only while it hears from both its minister
//! and the president (thesis 4.4, "perishable log entries"). Whoever stops
//! hearing either within H stops serving, which lets a minister assume an
//! unreachable clerk fenced after 2H.

use super::types::Micros;

#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    /// H.
    pub serve_timeout: Micros,
    pub last_leader: Option<Micros>,
    pub last_president: Option<Micros>,
}

impl Freshness {
    pub fn new(serve_timeout: Micros) -> Self {
        Freshness {
            serve_timeout,
            last_leader: None,
            last_president: None,
        }
    }

    pub fn heard_leader(&mut self, now: Micros) {
        self.last_leader = Some(self.last_leader.map_or(now, |t| t.max(now)));
    }

    pub fn heard_president(&mut self, now: Micros) {
        self.last_president = Some(self.last_president.map_or(now, |t| t.max(now)));
    }

    fn fresh(&self, t: Option<Micros>, now: Micros) -> bool {
        t.is_some_and(|t| now.saturating_sub(t) < self.serve_timeout)
    }

    /// Heard from the president within H (a minister's own leader check is
    /// its Raft quorum contact).
    pub fn can_serve_president(&self, now: Micros) -> bool {
        self.fresh(self.last_president, now)
    }

    /// May serve reads and grant read leases at `now`.
    pub fn can_serve(&self, now: Micros) -> bool {
        self.fresh(self.last_leader, now) && self.fresh(self.last_president, now)
    }

    /// The latest instant at which this member will stop serving, unless it hears again.
    pub fn fenced_at(&self) -> Option<Micros> {
        let l = self.last_leader?;
        let p = self.last_president?;
        Some(l.min(p) + self.serve_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_serving_after_h_without_either() {
        let mut f = Freshness::new(100);
        assert!(!f.can_serve(0));
        f.heard_leader(10);
        assert!(!f.can_serve(20), "the president must also have been heard");
        f.heard_president(20);
        assert!(f.can_serve(50));
        assert!(f.can_serve(109));
        assert!(!f.can_serve(110), "leader contact at 10 perished at 10 + H");
        f.heard_leader(105);
        assert!(f.can_serve(110));
        assert!(f.can_serve_president(119));
        assert!(
            !f.can_serve_president(120),
            "president contact at 20 perished at 20 + H"
        );
        assert_eq!(f.fenced_at(), Some(120));
    }
}
