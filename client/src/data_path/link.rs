//! A client's data-path connections to storage nodes, all served by one
//! thread (the [`Poller`]), as a node's service serves all of its own: it
//! owns every link (a [`SlotLink`]: RDMA verbs, TCP for tests, memory for
//! unit tests), writes each call into a free slot of its link and hands
//! each answer to its caller. With calls out it polls, spinning at first
//! and then napping 20 µs between polls; with none it blocks on its queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use govfs_net::data_path::{IdleSpin, SlotLayout, SlotLink, SlotPool};
use tokio::sync::oneshot;
use tracing::warn;

use crate::conn::Body;

/// Idle polls before the poller, with calls out, starts napping.
const SPIN_TURNS: u32 = 1_000;
/// Its nap between polls then: a slow answer (a write's sync) should not
/// hold a core the caller's own work needs.
const IDLE_SLEEP: Duration = Duration::from_micros(20);

type Done = oneshot::Sender<Result<Vec<u8>, String>>;

enum Cmd {
    Attach {
        id: u64,
        link: Box<dyn SlotLink>,
        dead: Arc<AtomicBool>,
        peer: String,
    },
    Call {
        id: u64,
        body: Body,
        done: Done,
    },
}

/// The thread serving a client's links; it ends when the last handle on
/// it (the client's, and each link's) is gone.
#[derive(Clone)]
pub(crate) struct Poller {
    tx: mpsc::Sender<Cmd>,
    next: Arc<AtomicU64>,
}

impl Poller {
    pub(crate) fn start() -> std::io::Result<Poller> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("govfs-data-path".into())
            .spawn(move || serve(&rx))?;
        Ok(Poller {
            tx,
            next: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// The callers' handle on one link. Dropping it closes the link.
pub(crate) struct Link {
    id: u64,
    poller: Poller,
    dead: Arc<AtomicBool>,
    layout: SlotLayout,
    name: String,
}

impl Drop for Link {
    fn drop(&mut self) {
        // The poller drops it at its next turn.
        self.dead.store(true, Ordering::Relaxed);
    }
}

impl Link {
    /// Hands `link` to `poller`; `peer` names the other end in logs.
    pub(crate) fn attach<L: SlotLink + 'static>(
        poller: &Poller,
        link: L,
        peer: String,
    ) -> Result<Link, String> {
        let id = poller.next.fetch_add(1, Ordering::Relaxed);
        let layout = link.layout();
        let name = link.name();
        let dead = Arc::new(AtomicBool::new(false));
        poller
            .tx
            .send(Cmd::Attach {
                id,
                link: Box::new(link),
                dead: Arc::clone(&dead),
                peer,
            })
            .map_err(|_| "the data path thread is gone".to_string())?;
        Ok(Link {
            id,
            poller: poller.clone(),
            dead,
            layout,
            name,
        })
    }

    pub(crate) fn layout(&self) -> SlotLayout {
        self.layout
    }

    /// What carries it (the RDMA device).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether the link failed or was closed.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Sends `body` (it must fit a slot) and waits up to `timeout` for the
    /// answer's bytes. An error means the link is no longer to be trusted:
    /// it failed, or a call's slot may never come back.
    pub(crate) async fn call(&self, body: Body, timeout: Duration) -> Result<Vec<u8>, String> {
        assert!(self.layout.fits(body.len()), "callers send only what fits");
        let (done, answer) = oneshot::channel();
        let id = self.id;
        self.poller
            .tx
            .send(Cmd::Call { id, body, done })
            .map_err(|_| "the data path thread is gone".to_string())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the link closed".into()),
            Err(_) => {
                self.dead.store(true, Ordering::Relaxed);
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }
}

/// The poller's loop: until every handle is gone and no link is left.
fn serve(rx: &mpsc::Receiver<Cmd>) {
    let mut links: HashMap<u64, Worker> = HashMap::new();
    let mut idle = IdleSpin::new(SPIN_TURNS);
    let mut open = true;
    while open || !links.is_empty() {
        let busy = links.values().any(Worker::busy);
        if !busy {
            // Nothing out: block instead of polling (waking now and then
            // to drop links whose handles are gone).
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(cmd) => take(&mut links, cmd),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => take(&mut links, cmd),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let mut worked = false;
        links.retain(|_, w| match w.turn() {
            Ok(did) => {
                worked |= did;
                true
            }
            Err(why) => {
                w.end(&why);
                false
            }
        });
        if !open {
            for (_, mut w) in links.drain() {
                w.end("client closed");
            }
        }
        idle.after(worked, || std::thread::sleep(IDLE_SLEEP));
    }
}

fn take(links: &mut HashMap<u64, Worker>, cmd: Cmd) {
    match cmd {
        Cmd::Attach {
            id,
            link,
            dead,
            peer,
        } => {
            let layout = link.layout();
            links.insert(
                id,
                Worker {
                    link,
                    dead,
                    peer,
                    pool: SlotPool::new(layout),
                    waiting: (0..layout.slots()).map(|_| None).collect(),
                    queued: VecDeque::new(),
                },
            );
        }
        Cmd::Call { id, body, done } => match links.get_mut(&id) {
            Some(w) => w.queued.push_back((body, done)),
            None => {
                let _ = done.send(Err("the link closed".into()));
            }
        },
    }
}

struct Worker {
    link: Box<dyn SlotLink>,
    dead: Arc<AtomicBool>,
    peer: String,
    pool: SlotPool,
    /// Per slot, who waits for its answer.
    waiting: Vec<Option<Done>>,
    /// Calls waiting for a free slot.
    queued: VecDeque<(Body, Done)>,
}

impl Worker {
    fn busy(&self) -> bool {
        self.pool.in_flight() > 0 || !self.queued.is_empty()
    }

    /// Sends what is queued into free slots and takes what arrived;
    /// whether anything happened. An error ends the link.
    fn turn(&mut self) -> Result<bool, String> {
        if self.dead.load(Ordering::Relaxed) {
            return Err("closed".into());
        }
        let mut worked = false;
        while !self.queued.is_empty() {
            let Some(slot) = self.pool.take() else { break };
            let Some((body, done)) = self.queued.pop_front() else {
                break;
            };
            worked = true;
            self.link
                .write(slot, &mut |room| {
                    room[..body.len()].copy_from_slice(&body);
                    Ok(body.len())
                })
                .map_err(|e| e.to_string())?;
            self.waiting[slot as usize] = Some(done);
        }
        while let Some((slot, answer)) = self.link.poll().map_err(|e| e.to_string())? {
            worked = true;
            self.pool.give_back(slot).map_err(|e| e.to_string())?;
            // A caller that gave up is gone; its slot is free again all the same.
            if let Some(done) = self.waiting[slot as usize].take() {
                let _ = done.send(Ok(answer));
            }
        }
        Ok(worked)
    }

    /// Every call not answered gets `why`; the link is dead from now.
    fn end(&mut self, why: &str) {
        // Dead before anyone hears why, so no new call is sent here.
        self.dead.store(true, Ordering::Relaxed);
        for done in self.waiting.iter_mut().filter_map(Option::take) {
            let _ = done.send(Err(why.to_string()));
        }
        for (_, done) in self.queued.drain(..) {
            let _ = done.send(Err(why.to_string()));
        }
        if why != "closed" {
            warn!(peer = %self.peer, "data path connection ended: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::BodyBytes;
    use govfs_net::data_path::{mem_pair, MemSlots};

    /// Plays the node: answers each request with its own bytes reversed,
    /// the requests of one round in reverse order of arrival.
    fn node(mut end: MemSlots, rounds: usize, per_round: usize) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for _ in 0..rounds {
                let mut got = Vec::new();
                while got.len() < per_round {
                    match end.poll().expect("poll") {
                        Some(arrival) => got.push(arrival),
                        None => std::thread::yield_now(),
                    }
                }
                for (slot, mut bytes) in got.into_iter().rev() {
                    bytes.reverse();
                    end.write(slot, &mut |room| {
                        room[..bytes.len()].copy_from_slice(&bytes);
                        Ok(bytes.len())
                    })
                    .expect("answer");
                }
            }
        })
    }

    /// More calls than slots, small and large, answered out of order: each
    /// caller gets its own answer, and the calls beyond the slots wait for
    /// free ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_gets_its_own_answer_through_the_slots() {
        let layout = SlotLayout::new(4, 16384).expect("layout");
        let (client, node_end) = mem_pair(layout);
        let link = Arc::new(
            Link::attach(&Poller::start().expect("poller"), client, "test".into()).expect("attach"),
        );
        let node = node(node_end, 3, 4);
        let calls = (0..12u32).map(|i| {
            let link = Arc::clone(&link);
            tokio::spawn(async move {
                // Small calls travel as control messages, large ones (every
                // third) into the slots.
                let len = if i % 3 == 0 {
                    5000 + i as usize
                } else {
                    10 * i as usize
                };
                let body: Vec<u8> = (0..len).map(|k| (k as u32 * 7 + i) as u8).collect();
                let answer = link
                    .call(BodyBytes::new(body.clone()), Duration::from_secs(10))
                    .await
                    .expect("answer");
                let mut expected = body;
                expected.reverse();
                assert_eq!(answer, expected, "call {i}");
            })
        });
        for c in calls.collect::<Vec<_>>() {
            c.await.expect("call");
        }
        node.join().expect("node");
        assert!(!link.is_dead());
    }

    /// One poller serves several links at once; closing one leaves the
    /// other working.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_poller_serves_several_links() {
        let layout = SlotLayout::new(2, 4096).expect("layout");
        let poller = Poller::start().expect("poller");
        let (a, a_node) = mem_pair(layout);
        let (b, b_node) = mem_pair(layout);
        let a = Link::attach(&poller, a, "a".into()).expect("attach");
        let b = Link::attach(&poller, b, "b".into()).expect("attach");
        let (na, nb) = (node(a_node, 1, 2), node(b_node, 2, 1));
        async fn call(link: &Link, bytes: &[u8]) -> Result<Vec<u8>, String> {
            link.call(BodyBytes::new(bytes.to_vec()), Duration::from_secs(10))
                .await
        }
        let (a1, a2, b1) = tokio::join!(call(&a, b"a1"), call(&a, b"a2"), call(&b, b"b1"));
        assert_eq!(a1.expect("a1"), b"1a");
        assert_eq!(a2.expect("a2"), b"2a");
        assert_eq!(b1.expect("b1"), b"1b");
        na.join().expect("node a");
        drop(a);
        assert_eq!(call(&b, b"b2").await.expect("b2"), b"2b");
        nb.join().expect("node b");
    }

    /// A call nobody answers fails after its timeout and the link is then
    /// not trusted; a broken link fails the calls it holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unanswered_and_broken_calls_fail() {
        let layout = SlotLayout::new(2, 4096).expect("layout");
        let (client, _silent) = mem_pair(layout);
        let link =
            Link::attach(&Poller::start().expect("poller"), client, "test".into()).expect("attach");
        let err = link
            .call(BodyBytes::new(vec![1, 2, 3]), Duration::from_millis(50))
            .await
            .expect_err("nobody answers");
        assert!(err.contains("no answer"), "{err}");
        assert!(link.is_dead());

        let (client, node_end) = mem_pair(layout);
        let link = Arc::new(
            Link::attach(&Poller::start().expect("poller"), client, "test".into()).expect("attach"),
        );
        let waiting = {
            let link = Arc::clone(&link);
            tokio::spawn(async move {
                link.call(BodyBytes::new(vec![4; 10]), Duration::from_secs(10))
                    .await
            })
        };
        // Once the request is in the node's slot, the link breaks.
        let mut node_end = node_end;
        while node_end.poll().expect("poll").is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        node_end.break_link();
        let err = waiting.await.expect("task").expect_err("the link broke");
        assert!(err.contains("broken"), "{err}");
        assert!(link.is_dead(), "a broken link is dead");
    }

    /// An answer in a slot that holds no call breaks the link.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_for_no_call_breaks_the_link() {
        let layout = SlotLayout::new(2, 4096).expect("layout");
        let (client, node_end) = mem_pair(layout);
        let link =
            Link::attach(&Poller::start().expect("poller"), client, "test".into()).expect("attach");
        let call = link.call(BodyBytes::new(vec![1]), Duration::from_secs(10));
        let answer_elsewhere = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            node_end.write_raw(1, 4096, b"unasked");
        };
        let (result, ()) = tokio::join!(call, answer_elsewhere);
        let err = result.expect_err("the link broke");
        assert!(err.contains("slot 1"), "{err}");
        assert!(link.is_dead());
    }
}
