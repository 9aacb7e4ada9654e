//! Leases and locks (issue 5), sans-IO: inputs are messages and `now` (the
//! caller's monotonic clock, in microseconds), outputs are actions the
//! engine carries out. Nothing here reads a clock or sends anything.
//!
//! # Protocol
//!
//! A lease is (file, byte [`Region`], [`Mode`], holder session, duration).
//! Two leases conflict iff same file, overlapping regions, different holders
//! and at least one writes ([`region::Claim::conflicts`]).
//!
//! * **Read leases** come from clerks ([`Clerk::grant_read`]), **write
//!   leases** from the minister ([`Minister::request_write`]). Both are
//!   refreshed and released by the holder; a lease not refreshed expires.
//! * Before granting a write lease the minister **locks** its region on every
//!   clerk. Lock and unlock operations of a term form one numbered stream,
//!   sent to each clerk as at most one [`LockBatch`] per turn (unlocks
//!   first), resent from the clerk's acknowledged position until it has them;
//!   the first batch of a term (or to a clerk that restarted or fell too far
//!   behind) carries the whole table instead. A clerk holding a lock grants
//!   no overlapping read lease, revokes the overlapping ones (a callback to
//!   the holder), and reports the lock *clear* once none of them is valid.
//! * The minister grants once every clerk reported clear, or, for a clerk
//!   that stays silent, once it is fenced: 2H after the last reply from it.
//!   It then reports that clerk ([`MinisterAction::ReportClerk`]) so the
//!   president removes it, and later writes do not pay 2H again.
//! * Hot files: a lock whose last write lease ended lingers for `linger`
//!   (bounded by `max_lingering`), so the next write lease on that region is
//!   granted without a round trip to the clerks (thesis 8.3).
//!
//! # Timing
//!
//! Durations are relative; no clocks are synchronized. Clock rates are
//! within `1 ± ρ` ([`Drift`]): a holder counts from its *send* time for
//! `d(1-ρ)`, a granter from its *grant* time for `d(1+ρ)`, so the holder's
//! belief ends first in real time ([`clock`] has the argument). Self-fencing
//! counts by the holder rule, waiting for others to be fenced by the granter
//! rule.
//!
//! **Why 2H.** A clerk grants only while it has a *round trip* with its
//! minister within H: the minister echoes the clerk's own send time of a
//! reply it received ([`Echo`]), and the clerk serves until that time + H on
//! its own clock. So if the minister last heard the clerk at T, every echo
//! the clerk can hold names a reply sent before T: the clerk stops granting
//! before T + H, and its read leases (at most H long, `max_read_duration`)
//! end before T + 2H. One-way contact is not enough: a clerk that still
//! *hears* the minister, but whose replies are lost, would serve forever
//! while the minister counts it fenced. The minister also vouches (echoes)
//! only for a reply that showed the clerk holding every established lock, so
//! a clerk that missed a lock while fenced does not serve again before it has
//! it.
//!
//! **New terms.** A minister grants and refreshes only while a majority of its
//! ministry answered one of its batches within H. When a new minister gets a
//! majority at M, the old one (whose majority needs one of those members,
//! which now ignore its term) stops by M + H, so its write leases end by
//! M + H + max write duration: the new minister vouches for no clerk and
//! grants nothing before then (the quiet period). The old minister may vouch
//! for a clerk until M + H (even one that heard the new minister, if it
//! restarted and forgot the newer term), so no 2H count starts before M + H. Removals do not shrink the majority's denominator within a term,
//! so the two majorities always meet.
//!
//! # The four problems of thesis 4.5
//!
//! 1. *Unlocks from an imposter or old minister*: every batch carries the
//!    minister's term; a clerk ignores a term older than the newest it has
//!    seen (and answers with its own, deposing the old minister).
//! 2. *A new clerk serves before it has the locks*: a clerk grants nothing and
//!    reports nothing clear until it has loaded its minister's table for its
//!    newest term; after a (re)start it also waits out the longest read lease
//!    it could have granted before, since its table was lost.
//! 3. *Only the minister cannot reach a clerk*: the clerk's right to serve
//!    rests on round trips with the minister, not on hearing the president
//!    (or the minister) one way, so it fences itself within H whichever
//!    direction fails; the minister also reports it to the president.
//! 4. *A lock for a file the clerk has not created yet*: a lock names the log
//!    index the file exists at; the clerk holds it at once but reports it
//!    clear only once it has applied that index ([`Clerk::applied`]).
//!
//! # Driving it
//!
//! Per turn the engine feeds messages ([`Clerk::on_batch`],
//! [`Minister::on_clerk_reply`], client requests), then calls `tick(now,
//! serving)` (`serving`: the node's own Raft/president freshness), then
//! carries out `take_actions()`.

pub mod clerk;
mod clerk_link;
pub mod clock;
pub mod config;
pub mod error;
pub mod messages;
pub mod minister;
pub mod region;
pub mod table;

use serde::{Deserialize, Serialize};

pub use clerk::{Clerk, ClerkAction};
pub use clock::Drift;
pub use config::{LeaseConfig, LeaseFaults};
pub use error::{LeaseError, NotServing};
pub use messages::{ClerkReply, Echo, Granted, Lock, LockBatch, LockOp, LockTableSnapshot};
pub use minister::{Minister, MinisterAction, MinisterStats, WriteRequest};
pub use region::{Claim, Mode, Region};
pub use table::{Lease, LeaseTable};

/// A client session holding leases.
pub type SessionId = u64;

/// A lease, unique per granter across its restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseId(pub u64);

/// A clerk lock, unique within a minister's term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockId(pub u64);
