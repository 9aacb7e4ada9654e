//! Raft scenarios as data, in the spirit of raft-rs's `testdata/*.txt`: each
//! file in `tests/testdata/` is one protocol story, written as commands and the
//! outcomes they must have. The runner fails at the first line whose
//! expectation does not hold (or whose command panics), naming file and line.
//!
//! # The language
//!
//! One command per line; `#` starts a comment. `WHO` is a member id, a comma
//! list (`1,2`) or `all`. `LINK` is `FROM->TO`, either side an id or `*`
//! (default: every message). Times are microseconds.
//!
//! ```text
//! cluster elected|appointed voters=1,2,3 [learners=4] [heartbeat=US] [election=US]
//!         [serve=US] [inflight=N] [max-bytes=N]   fresh members, empty logs, clock 0
//! add ID [voters=..] [learners=..]   a fresh member that believes that membership
//! time US                            advance the clock
//! tick WHO [US]                      advance the clock by US (default 0), then tick each
//! campaign ID                        advance 2 election timeouts, tick ID alone
//! deliver [LINK] [n=K]               step the queued messages on LINK (not those they cause)
//! stabilize                          deliver until nothing is in flight (no ticks)
//! drop [LINK] [n=K]                  lose queued messages
//! dup [LINK]                         queue a copy of each matching message at the back
//! reorder [LINK]                     reverse the order of the matching queued messages
//! delay [LINK] [n=K] | undelay       hold queued messages back | queue them again at the back
//! isolate WHO | heal                 lose every message to/from WHO | stop
//! inject FROM->TO KIND term=T [last=I/T]  queue a hand-made election message;
//!                                    KIND: prevote vote prevote+ prevote- vote+ vote-
//! propose ID CMD...                  propose the commands in one turn (ticket named CMD)
//! conf ID voters=.. [learners=..]    propose a membership change
//! poll WHO term=T                    the president polls each of WHO
//! appoint ID term=T members=..       the president appoints ID
//! hold WHO | sync WHO | release WHO  Readies wait for `sync` | sync now | sync and stop waiting
//! crash WHO | restart WHO            lose everything not synced | restore from disk
//! compact ID [INDEX]                 snapshot the state machine (default: all applied)
//! repeat N CMD [; CMD ...]           run the commands N times (expectations too)
//! ```
//!
//! `propose`, `conf`, `poll` and `appoint` must succeed unless the line ends in
//! `=> OUTCOME`: `ok`, or a prefix of the error's Debug form (`ChangeInProgress`,
//! `TermTaken { term: 5`).
//!
//! ```text
//! expect role WHO leader|follower|candidate|precandidate
//! expect term WHO T            expect vote WHO V|none       expect leader WHO L|none
//! expect commit WHO C          expect applied WHO C         (C: state-machine index)
//! expect log WHO [I:T ...]     in-memory entries after the snapshot
//! expect disk WHO [I:T ...]    durable entries
//! expect disk-hs WHO T/V       durable hard state (V may be `none`)
//! expect snapshot WHO I/T|none in-memory snapshot boundary
//! expect members WHO voters=.. [learners=..]   the membership in force
//! expect last WHO I/T          index and term of the last log entry
//! expect msgs LINK TOK...|none the queued messages on LINK, in order
//! expect held WHO TOK...|none  messages and poll answers waiting for a sync
//! expect unsynced WHO R..|none the unsynced Readies: `hs`, `snap5`, `[2..4]` joined by `+`
//!                              (`msgs`: only held messages; `compact5`: a queued compaction)
//! expect polled WHO A...|none  poll answers released so far
//! expect progress ID PEER [match=M] [next=N] [state=probe|replicate|snapshot] [inflight=K]
//! expect serving WHO true|false         (at the current clock)
//! expect unreachable ID [I ...]         (at the current clock)
//! expect ticket ID CMD committed|pending|superseded|unknown
//! expect readies WHO N         Readies produced since start
//! expect leaders T:L ...       every (term, leader) seen so far
//! ```
//!
//! Message tokens: `prevote`, `prevote+`, `prevote-`, `vote`, `vote+`,
//! `vote-`, `app[4..6]` (entries 4 to 6), `app[]p3` (no entries after 3),
//! `ack5`, `nack5` or `nack5h2` (rejected prev index 5, hint 2), `snap5`,
//! `snapack5`. Appends may add `cC` (the commit they carry), and any token
//! may add `@T` (the message's term): `app[2..2]c1@3`. Poll answers are
//! `poll@T` or `poll@T:LAST_TERM/LAST_INDEX`.
//!
//! The cluster's own safety checks (one leader per term, committed entries
//! agree, leader completeness, in-order apply, a leader's `match` for a
//! follower in its term is on that follower's disk) run under every command.
//! `SCENARIO=path cargo test -p govfs-core --test scenarios adhoc` runs any file.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{answer_forms, link, message_forms, render_message, Cluster};
use govfs_core::raft::{
    Membership, Message, MessageBody, Mode, NodeId, ProgressState, Role, Ticket, TicketStatus,
};

struct Runner {
    cluster: Option<Cluster>,
    delayed: Vec<Message>,
    tickets: BTreeMap<String, Ticket>,
}

type Res = Result<(), String>;

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn ids(s: &str) -> Result<Vec<NodeId>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(num).collect()
}

/// `key=value` arguments after the positional ones.
fn kv<'a>(args: &[&'a str]) -> BTreeMap<&'a str, &'a str> {
    args.iter().filter_map(|a| a.split_once('=')).collect()
}

fn positional<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().filter(|a| !a.contains('=')).collect()
}

fn parse_link(s: &str) -> Result<(Option<NodeId>, Option<NodeId>), String> {
    let (a, b) = s
        .split_once("->")
        .ok_or_else(|| format!("not a link: {s:?}"))?;
    let side = |x: &str| if x == "*" { Ok(None) } else { num(x).map(Some) };
    Ok((side(a)?, side(b)?))
}

/// `[1:1 2:1]` -> "1:1 2:1" normalized.
fn parse_index_terms(args: &[&str]) -> String {
    let joined = args.join(" ");
    joined
        .trim_matches(|c| c == '[' || c == ']')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_index_terms(v: &[(u64, u64)]) -> String {
    v.iter()
        .map(|(i, t)| format!("{i}:{t}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Res {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// Match tokens against items that each have several acceptable forms.
fn match_tokens(what: &str, forms: Vec<Vec<String>>, want: &[&str]) -> Res {
    let want: Vec<&str> = if want == ["none"] {
        Vec::new()
    } else {
        want.to_vec()
    };
    let ok = forms.len() == want.len()
        && forms
            .iter()
            .zip(&want)
            .all(|(f, w)| f.iter().any(|x| x == w));
    if ok {
        Ok(())
    } else {
        let got: Vec<&str> = forms.iter().map(|f| f[0].as_str()).collect();
        Err(format!(
            "{what}: got [{}], want [{}]",
            got.join(" "),
            want.join(" ")
        ))
    }
}

fn outcome<E: std::fmt::Debug>(r: Result<(), E>, want: Option<&str>) -> Res {
    match (r, want) {
        (Ok(()), None | Some("ok")) => Ok(()),
        (Ok(()), Some(w)) => Err(format!("succeeded, expected {w}")),
        (Err(e), None | Some("ok")) => Err(format!("failed: {e:?}")),
        (Err(e), Some(w)) => {
            let got = format!("{e:?}");
            if got.starts_with(w) {
                Ok(())
            } else {
                Err(format!("failed with {got}, expected {w}"))
            }
        }
    }
}

impl Runner {
    fn c(&mut self) -> Result<&mut Cluster, String> {
        self.cluster
            .as_mut()
            .ok_or_else(|| "no cluster yet".to_string())
    }

    fn who(&mut self, s: &str) -> Result<Vec<NodeId>, String> {
        if s == "all" {
            Ok(self.c()?.ids())
        } else {
            ids(s)
        }
    }

    /// The link filter from an optional first argument.
    fn link_arg(args: &[&str]) -> Result<(impl Fn(&Message) -> bool, usize), String> {
        let pos = positional(args);
        let (from, to) = match pos.first() {
            Some(l) if *l != "all" => parse_link(l)?,
            _ => (None, None),
        };
        let n = match kv(args).get("n") {
            Some(n) => num(n)?,
            None => usize::MAX,
        };
        Ok((link(from, to), n))
    }

    fn run(&mut self, line: &str) -> Res {
        if let Some(rest) = line.strip_prefix("repeat ") {
            let (n, cmds) = rest.trim_start().split_once(' ').ok_or("repeat N CMD")?;
            let n: usize = num(n)?;
            for i in 0..n {
                for cmd in cmds.split(';') {
                    self.run(cmd.trim())
                        .map_err(|e| format!("round {}, `{}`: {e}", i + 1, cmd.trim()))?;
                }
            }
            return Ok(());
        }
        let (cmd, want) = match line.split_once("=>") {
            Some((c, w)) => (c.trim(), Some(w.trim())),
            None => (line, None),
        };
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let (&verb, args) = words.split_first().ok_or("empty command")?;
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .ok_or_else(|| format!("{verb}: missing argument {}", i + 1))
        };
        if want.is_some() && !matches!(verb, "propose" | "conf" | "poll" | "appoint") {
            return Err(format!("{verb} takes no `=>`"));
        }
        match verb {
            "cluster" => {
                let mode = match arg(0)? {
                    "elected" => Mode::Elected,
                    "appointed" => Mode::Appointed,
                    m => return Err(format!("unknown mode {m}")),
                };
                let a = kv(args);
                let voters = ids(a.get("voters").ok_or("voters= is required")?)?;
                let learners = ids(a.get("learners").unwrap_or(&""))?;
                let opt = |k: &str| a.get(k).map(|v| num::<u64>(v)).transpose();
                let (hb, el, serve) = (opt("heartbeat")?, opt("election")?, opt("serve")?);
                let (infl, bytes) = (opt("inflight")?, opt("max-bytes")?);
                self.cluster = Some(Cluster::new(mode, &voters, &learners, |cfg| {
                    if let Some(v) = hb {
                        cfg.heartbeat_interval = v;
                    }
                    if let Some(v) = el {
                        cfg.election_timeout = v;
                    }
                    if let Some(v) = serve {
                        cfg.serve_timeout = v;
                    }
                    if let Some(v) = infl {
                        cfg.max_inflight = v as usize;
                    }
                    if let Some(v) = bytes {
                        cfg.max_append_bytes = v as usize;
                    }
                }));
                self.tickets.clear();
                self.delayed.clear();
            }
            "add" => {
                let id = num(arg(0)?)?;
                let a = kv(args);
                let m = Membership::new(
                    ids(a.get("voters").unwrap_or(&""))?,
                    ids(a.get("learners").unwrap_or(&""))?,
                );
                self.c()?.add_member(id, m);
            }
            "time" => {
                let d = num(arg(0)?)?;
                self.c()?.advance(d);
            }
            "tick" => {
                let who = self.who(arg(0)?)?;
                let d = args.get(1).map_or(Ok(0), |d| num(d))?;
                let c = self.c()?;
                c.advance(d);
                for id in who {
                    c.tick(id);
                }
            }
            "campaign" => {
                let id = num(arg(0)?)?;
                self.c()?.campaign(id);
            }
            "deliver" => {
                let (f, n) = Self::link_arg(args)?;
                self.c()?.deliver(f, n);
            }
            "stabilize" => self.c()?.stabilize(),
            "drop" => {
                let (f, n) = Self::link_arg(args)?;
                self.c()?.take(f, n);
            }
            "delay" => {
                let (f, n) = Self::link_arg(args)?;
                let msgs = self.c()?.take(f, n);
                self.delayed.extend(msgs);
            }
            "undelay" => {
                let msgs = std::mem::take(&mut self.delayed);
                self.c()?.net.extend(msgs);
            }
            "dup" => {
                let (f, _) = Self::link_arg(args)?;
                let c = self.c()?;
                let copies: Vec<Message> = c.net.iter().filter(|m| f(m)).cloned().collect();
                c.net.extend(copies);
            }
            "reorder" => {
                let (f, _) = Self::link_arg(args)?;
                let c = self.c()?;
                let slots: Vec<usize> = (0..c.net.len()).filter(|&i| f(&c.net[i])).collect();
                let msgs: Vec<Message> = slots.iter().rev().map(|&i| c.net[i].clone()).collect();
                for (slot, m) in slots.into_iter().zip(msgs) {
                    c.net[slot] = m;
                }
            }
            "inject" => {
                let (from, to) = parse_link(arg(0)?)?;
                let (Some(from), Some(to)) = (from, to) else {
                    return Err("inject needs both ends".into());
                };
                let a = kv(args);
                let term = num(a.get("term").ok_or("term= is required")?)?;
                let (last_index, last_term) = match a.get("last") {
                    Some(l) => {
                        let (i, t) = l.split_once('/').ok_or("last=I/T")?;
                        (num(i)?, num(t)?)
                    }
                    None => (0, 0),
                };
                let body = match arg(1)? {
                    "prevote" => MessageBody::PreVote {
                        last_term,
                        last_index,
                    },
                    "vote" => MessageBody::Vote {
                        last_term,
                        last_index,
                    },
                    "prevote+" | "prevote-" => MessageBody::PreVoteResponse {
                        granted: arg(1)?.ends_with('+'),
                    },
                    "vote+" | "vote-" => MessageBody::VoteResponse {
                        granted: arg(1)?.ends_with('+'),
                    },
                    k => return Err(format!("cannot inject {k}")),
                };
                let c = self.c()?;
                let group = c.group;
                c.net.push_back(Message {
                    group,
                    from,
                    to,
                    term,
                    body,
                });
            }
            "isolate" => {
                let who = self.who(arg(0)?)?;
                self.c()?.cut.extend(who);
            }
            "heal" => self.c()?.cut.clear(),
            "propose" => {
                let id = num(arg(0)?)?;
                let cmds: Vec<&str> = args[1..].to_vec();
                if cmds.is_empty() {
                    return Err("propose: no command".into());
                }
                let bytes: Vec<&[u8]> = cmds.iter().map(|c| c.as_bytes()).collect();
                let r = self.c()?.propose(id, &bytes);
                if let Ok(tickets) = &r {
                    for (c, t) in cmds.iter().zip(tickets) {
                        self.tickets.insert(c.to_string(), *t);
                    }
                }
                return outcome(r.map(|_| ()), want);
            }
            "conf" => {
                let id = num(arg(0)?)?;
                let a = kv(args);
                let m = Membership::new(
                    ids(a.get("voters").unwrap_or(&""))?,
                    ids(a.get("learners").unwrap_or(&""))?,
                );
                let r = self.c()?.propose_membership(id, m);
                return outcome(r.map(|_| ()), want);
            }
            "poll" => {
                let who = self.who(arg(0)?)?;
                let term = num(kv(args).get("term").ok_or("term= is required")?)?;
                let c = self.c()?;
                let r = who.into_iter().try_for_each(|id| c.poll(id, term));
                return outcome(r, want);
            }
            "appoint" => {
                let id = num(arg(0)?)?;
                let a = kv(args);
                let term = num(a.get("term").ok_or("term= is required")?)?;
                let members = ids(a.get("members").ok_or("members= is required")?)?;
                let r = self
                    .c()?
                    .appoint(id, term, Membership::new(members, Vec::new()));
                return outcome(r, want);
            }
            "hold" | "release" | "sync" => {
                let who = self.who(arg(0)?)?;
                let c = self.c()?;
                for id in who {
                    match verb {
                        "hold" => c.set_hold(id, true),
                        "release" => c.set_hold(id, false),
                        _ => c.sync(id),
                    }
                }
            }
            "crash" | "restart" => {
                let who = self.who(arg(0)?)?;
                let c = self.c()?;
                for id in who {
                    if verb == "crash" {
                        c.crash(id)
                    } else {
                        c.restart(id)
                    }
                }
            }
            "compact" => {
                let id = num(arg(0)?)?;
                let index = args.get(1).map(|i| num(i)).transpose()?;
                self.c()?.compact(id, index);
            }
            "expect" => return self.expect(args),
            v => return Err(format!("unknown command {v}")),
        }
        Ok(())
    }

    fn expect(&mut self, args: &[&str]) -> Res {
        let (&what, rest) = args.split_first().ok_or("expect what?")?;
        let arg = |i: usize| {
            rest.get(i)
                .copied()
                .ok_or_else(|| format!("expect {what}: missing argument {}", i + 1))
        };
        let per_member = |r: &mut Runner, f: &dyn Fn(&Cluster, NodeId) -> Res| -> Res {
            let who = r.who(arg(0)?)?;
            let c = r.c()?;
            who.into_iter()
                .try_for_each(|id| f(c, id).map_err(|e| format!("member {id}: {e}")))
        };
        match what {
            "role" => {
                let want = match arg(1)? {
                    "leader" => Role::Leader,
                    "follower" => Role::Follower,
                    "candidate" => Role::Candidate,
                    "precandidate" => Role::PreCandidate,
                    r => return Err(format!("unknown role {r}")),
                };
                per_member(self, &|c, id| check_eq("role", c.raft(id).role(), want))
            }
            "term" => {
                let want: u64 = num(arg(1)?)?;
                per_member(self, &|c, id| check_eq("term", c.raft(id).term(), want))
            }
            "vote" => {
                let want = opt_id(arg(1)?)?;
                per_member(self, &|c, id| {
                    check_eq("vote", c.raft(id).hard_state().vote, want)
                })
            }
            "leader" => {
                let want = opt_id(arg(1)?)?;
                per_member(self, &|c, id| check_eq("leader", c.raft(id).leader(), want))
            }
            "commit" => {
                let want: u64 = num(arg(1)?)?;
                per_member(self, &|c, id| {
                    check_eq("commit", c.raft(id).commit_index(), want)
                })
            }
            "applied" => {
                let want: u64 = num(arg(1)?)?;
                per_member(self, &|c, id| {
                    check_eq("applied", c.member(id).sm_index, want)
                })
            }
            "log" => {
                let want = parse_index_terms(&rest[1..]);
                per_member(self, &|c, id| {
                    check_eq("log", render_index_terms(&c.log_terms(id)), want.clone())
                })
            }
            "disk" => {
                let want = parse_index_terms(&rest[1..]);
                per_member(self, &|c, id| {
                    let got: Vec<(u64, u64)> = c
                        .member(id)
                        .disk
                        .entries
                        .iter()
                        .map(|e| (e.index, e.term))
                        .collect();
                    check_eq("durable log", render_index_terms(&got), want.clone())
                })
            }
            "disk-hs" => {
                let want = arg(1)?.to_string();
                per_member(self, &|c, id| {
                    let hs = c.member(id).disk.hs;
                    let got = format!(
                        "{}/{}",
                        hs.term,
                        hs.vote.map_or("none".into(), |v| v.to_string())
                    );
                    check_eq("durable hard state", got, want.clone())
                })
            }
            "snapshot" => {
                let want = arg(1)?.to_string();
                per_member(self, &|c, id| {
                    let got = c.raft(id).snapshot().map_or("none".into(), |s| {
                        format!("{}/{}", s.meta.index, s.meta.term)
                    });
                    check_eq("snapshot", got, want.clone())
                })
            }
            "last" => {
                let want = arg(1)?.to_string();
                per_member(self, &|c, id| {
                    let log = c.raft(id).log();
                    check_eq(
                        "last",
                        format!("{}/{}", log.last_index(), log.last_term()),
                        want.clone(),
                    )
                })
            }
            "members" => {
                let a = kv(rest);
                let want = Membership::new(
                    ids(a.get("voters").unwrap_or(&""))?,
                    ids(a.get("learners").unwrap_or(&""))?,
                );
                per_member(self, &|c, id| {
                    check_eq("membership", c.raft(id).membership(), &want)
                })
            }
            "msgs" => {
                let (from, to) = parse_link(arg(0)?)?;
                let c = self.c()?;
                let forms = c
                    .queued(link(from, to))
                    .into_iter()
                    .map(message_forms)
                    .collect();
                match_tokens("queued", forms, &rest[1..])
                    .map_err(|e| format!("{e}\nqueue: {}", queue(c)))
            }
            "held" => {
                let want = &rest[1..];
                per_member(self, &|c, id| {
                    let m = c.member(id);
                    let mut forms: Vec<Vec<String>> =
                        m.held().into_iter().map(message_forms).collect();
                    forms.extend(m.held_answers().into_iter().map(answer_forms));
                    match_tokens("held", forms, want)
                })
            }
            "unsynced" => {
                let want = &rest[1..];
                per_member(self, &|c, id| {
                    let forms = c
                        .member(id)
                        .unsynced
                        .iter()
                        .map(|u| vec![u.render()])
                        .collect();
                    match_tokens("unsynced Readies", forms, want)
                })
            }
            "polled" => {
                let want = &rest[1..];
                per_member(self, &|c, id| {
                    let forms = c.member(id).polled.iter().map(answer_forms).collect();
                    match_tokens("poll answers", forms, want)
                })
            }
            "progress" => {
                let id = num(arg(0)?)?;
                let peer: NodeId = num(arg(1)?)?;
                let want = kv(rest);
                let c = self.c()?;
                let p = c
                    .raft(id)
                    .progress(peer)
                    .ok_or(format!("{id} tracks no progress for {peer}"))?;
                for (k, v) in want {
                    match k {
                        "match" => check_eq("match", p.matched, num(v)?)?,
                        "next" => check_eq("next", p.next, num(v)?)?,
                        "inflight" => check_eq("inflight", p.inflight.len(), num(v)?)?,
                        "state" => {
                            let got = match p.state {
                                ProgressState::Probe => "probe",
                                ProgressState::Replicate => "replicate",
                                ProgressState::Snapshot(_) => "snapshot",
                            };
                            check_eq("state", got, v)?
                        }
                        k => return Err(format!("unknown progress field {k}")),
                    }
                }
                Ok(())
            }
            "serving" => {
                let want = arg(1)? == "true";
                per_member(self, &|c, id| {
                    check_eq("serving", c.raft(id).is_serving(c.now), want)
                })
            }
            "unreachable" => {
                let id = num(arg(0)?)?;
                let want = ids(&parse_index_terms(&rest[1..]).replace(' ', ","))?;
                let c = self.c()?;
                check_eq("unreachable", c.raft(id).unreachable_members(c.now), want)
            }
            "ticket" => {
                let id = num(arg(0)?)?;
                let t = *self
                    .tickets
                    .get(arg(1)?)
                    .ok_or(format!("no ticket {}", arg(1)?))?;
                let want = match arg(2)? {
                    "committed" => TicketStatus::Committed,
                    "pending" => TicketStatus::Pending,
                    "superseded" => TicketStatus::Superseded,
                    "unknown" => TicketStatus::Unknown,
                    s => return Err(format!("unknown ticket status {s}")),
                };
                check_eq("ticket", self.c()?.raft(id).ticket_status(t), want)
            }
            "readies" => {
                let want: u64 = num(arg(1)?)?;
                per_member(self, &|c, id| {
                    check_eq("readies", c.member(id).readies, want)
                })
            }
            "leaders" => {
                let want = parse_index_terms(rest);
                let got: Vec<(u64, u64)> =
                    self.c()?.leaders.iter().map(|(t, l)| (*t, *l)).collect();
                check_eq("leaders", render_index_terms(&got), want)
            }
            w => Err(format!("unknown expectation {w}")),
        }
    }
}

fn opt_id(s: &str) -> Result<Option<NodeId>, String> {
    if s == "none" {
        Ok(None)
    } else {
        num(s).map(Some)
    }
}

fn queue(c: &Cluster) -> String {
    c.net
        .iter()
        .map(render_message)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run a scenario; the error names the failing line.
fn run_script(name: &str, text: &str) -> Res {
    let mut r = Runner {
        cluster: None,
        delayed: Vec::new(),
        tickets: BTreeMap::new(),
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let result = catch_unwind(AssertUnwindSafe(|| r.run(line))).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        });
        result.map_err(|e| format!("{name}:{}: `{line}`\n  {e}", n + 1))?;
    }
    Ok(())
}

fn run_file(name: &str) {
    let path = format!("{}/tests/testdata/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if let Err(e) = run_script(name, &text) {
        panic!("{e}");
    }
}

macro_rules! scenarios {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                run_file(stringify!($name));
            }
        )*

        /// A file that is not listed would silently never run.
        #[test]
        fn every_scenario_file_is_listed() {
            let listed = [$(stringify!($name)),*];
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata");
            for entry in std::fs::read_dir(dir).expect("testdata exists") {
                let path = entry.expect("readable").path();
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
                assert!(listed.contains(&stem.as_str()), "{} is not listed in scenarios!", path.display());
            }
        }
    };
}

scenarios!(
    elected_basic,
    elected_prevote_no_disruption,
    elected_check_quorum,
    elected_stale_log_loses,
    elected_vote_after_persist,
    elected_learners,
    elected_membership,
    elected_leader_removes_itself,
    replication_batching,
    replication_pipelining,
    replication_durable_commit,
    replication_log_repair,
    replication_stale_messages,
    replication_snapshot,
    replication_tickets,
    appointed_no_elections,
    appointed_poll_fences,
    appointed_term_rules,
    appointed_earlier_terms,
    appointed_serving,
    restore_crash,
    elected_single_voter,
    bug_snapshot_discards_acked_entries,
    bug_truncated_config_lingers,
    bug_ticket_superseded_too_early,
);

/// The runner's expectations must be able to fail.
#[test]
fn wrong_expectations_fail() {
    let base = "cluster elected voters=1,2,3\ncampaign 1\nstabilize\n";
    let wrong = [
        "expect role 1 follower",
        "expect role 2 leader",
        "expect term 1 2",
        "expect commit 2 0",
        "expect applied 3 2",
        "expect log 1 [1:2]",
        "expect log 1 [1:1 2:1]",
        "expect disk 2 []",
        "expect disk-hs 1 1/none",
        "expect leader 3 2",
        "expect vote 2 none",
        "expect msgs *->* app[2..2]",
        "expect held 1 vote",
        "expect unsynced 1 hs",
        "expect leaders 1:2",
        "expect snapshot 1 1/1",
        "expect serving 1 false",
        "expect unreachable 1 [2]",
        "expect progress 1 2 match=0",
        "expect readies 2 0",
        "propose 2 x",
        "propose 1 x => NotLeader",
        "conf 1 voters=1,2,3,4,5",
        "unknown command",
    ];
    for w in wrong {
        let script = format!("{base}{w}\n");
        assert!(
            run_script("inline", &script).is_err(),
            "`{w}` should have failed"
        );
    }
    // And the same base with true expectations passes.
    let right =
        "expect role 1 leader\nexpect commit all 1\nexpect log all [1:1]\nexpect leaders 1:1\n\
                 expect msgs *->* none\npropose 2 x => NotLeader { leader: Some(1) }\n";
    run_script("inline", &format!("{base}{right}")).expect("true expectations hold");
}

/// Run any scenario file: `SCENARIO=path/to/file.txt cargo test -p govfs-core
/// --test scenarios adhoc` (does nothing without the variable).
#[test]
fn adhoc() {
    if let Ok(path) = std::env::var("SCENARIO") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if let Err(e) = run_script(&path, &text) {
            panic!("{e}");
        }
    }
}
