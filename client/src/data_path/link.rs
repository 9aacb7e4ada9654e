//! One data-path connection to a storage node: a thread that owns the
//! link (a [`SlotLink`]: RDMA verbs, TCP for tests, memory for unit tests),
//! writes each call into a free slot and hands each answer to its caller.
//! With calls out it polls, spinning at first and then napping 20 µs
//! between polls; with none it blocks on its queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use govfs_net::data_path::{IdleSpin, SlotLayout, SlotLink, SlotPool};
use tokio::sync::oneshot;
use tracing::warn;

use crate::conn::Body;

/// Idle polls before a connection thread with calls out starts napping.
const SPIN_TURNS: u32 = 1_000;
/// Its nap between polls then: a slow answer (a write's sync) should not
/// hold a core the caller's own work needs.
const IDLE_SLEEP: Duration = Duration::from_micros(20);

type Done = oneshot::Sender<Result<Vec<u8>, String>>;

struct Cmd {
    body: Body,
    done: Done,
}

/// The callers' handle on a connection thread. Dropping it ends the thread.
pub(crate) struct Link {
    tx: mpsc::Sender<Cmd>,
    dead: Arc<AtomicBool>,
    layout: SlotLayout,
    name: String,
}

impl Drop for Link {
    fn drop(&mut self) {
        // The thread ends at its next turn.
        self.dead.store(true, Ordering::Relaxed);
    }
}

impl Link {
    /// Starts the thread that serves calls over `link`; `peer` names the
    /// other end in logs.
    pub(crate) fn spawn<L: SlotLink + 'static>(link: L, peer: String) -> std::io::Result<Link> {
        let layout = link.layout();
        let name = link.name();
        let dead = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread_dead = Arc::clone(&dead);
        std::thread::Builder::new()
            .name("govfs-data-path".into())
            .spawn(move || {
                let why = Worker {
                    link,
                    pool: SlotPool::new(layout),
                    waiting: (0..layout.slots()).map(|_| None).collect(),
                    queued: VecDeque::new(),
                }
                .run(&rx, &thread_dead);
                warn!(%peer, "data path connection ended: {why}");
            })?;
        Ok(Link {
            tx,
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
        self.tx
            .send(Cmd { body, done })
            .map_err(|_| "connection thread gone".to_string())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("connection thread gone".into()),
            Err(_) => {
                self.dead.store(true, Ordering::Relaxed);
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }
}

struct Worker<L> {
    link: L,
    pool: SlotPool,
    /// Per slot, who waits for its answer.
    waiting: Vec<Option<Done>>,
    /// Calls waiting for a free slot.
    queued: VecDeque<Cmd>,
}

impl<L: SlotLink> Worker<L> {
    /// Serves calls until the link is dropped or fails; why it ended.
    /// Every call not answered gets that reason.
    fn run(mut self, rx: &mpsc::Receiver<Cmd>, dead: &AtomicBool) -> String {
        let why = self.serve(rx, dead);
        // Dead before anyone hears why, so no new call is sent here.
        dead.store(true, Ordering::Relaxed);
        for done in self.waiting.iter_mut().filter_map(Option::take) {
            let _ = done.send(Err(why.clone()));
        }
        for cmd in self.queued.drain(..) {
            let _ = cmd.done.send(Err(why.clone()));
        }
        why
    }

    fn serve(&mut self, rx: &mpsc::Receiver<Cmd>, dead: &AtomicBool) -> String {
        let mut idle = IdleSpin::new(SPIN_TURNS);
        loop {
            if dead.load(Ordering::Relaxed) {
                return "closed".into();
            }
            if self.pool.in_flight() == 0 && self.queued.is_empty() {
                // Nothing out: block instead of polling.
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(cmd) => self.queued.push_back(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return "closed".into(),
                }
            }
            while let Ok(cmd) = rx.try_recv() {
                self.queued.push_back(cmd);
            }
            let mut worked = false;
            while !self.queued.is_empty() {
                let Some(slot) = self.pool.take() else { break };
                let Some(cmd) = self.queued.pop_front() else {
                    break;
                };
                worked = true;
                if let Err(why) = self.send(slot, cmd) {
                    return why;
                }
            }
            loop {
                match self.link.poll() {
                    Ok(None) => break,
                    Ok(Some((slot, answer))) => {
                        worked = true;
                        if let Err(why) = self.answered(slot, answer) {
                            return why;
                        }
                    }
                    Err(e) => return e.to_string(),
                }
            }
            idle.after(worked, || std::thread::sleep(IDLE_SLEEP));
        }
    }

    fn send(&mut self, slot: u32, cmd: Cmd) -> Result<(), String> {
        let body = &cmd.body;
        self.link
            .write(slot, &mut |room| {
                room[..body.len()].copy_from_slice(body);
                Ok(body.len())
            })
            .map_err(|e| e.to_string())?;
        self.waiting[slot as usize] = Some(cmd.done);
        Ok(())
    }

    fn answered(&mut self, slot: u32, answer: Vec<u8>) -> Result<(), String> {
        self.pool.give_back(slot).map_err(|e| e.to_string())?;
        // A caller that gave up is gone; its slot is free again all the same.
        if let Some(done) = self.waiting[slot as usize].take() {
            let _ = done.send(Ok(answer));
        }
        Ok(())
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
        let link = Arc::new(Link::spawn(client, "test".into()).expect("spawn"));
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

    /// A call nobody answers fails after its timeout and the link is then
    /// not trusted; a broken link fails the calls it holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unanswered_and_broken_calls_fail() {
        let layout = SlotLayout::new(2, 4096).expect("layout");
        let (client, _silent) = mem_pair(layout);
        let link = Link::spawn(client, "test".into()).expect("spawn");
        let err = link
            .call(BodyBytes::new(vec![1, 2, 3]), Duration::from_millis(50))
            .await
            .expect_err("nobody answers");
        assert!(err.contains("no answer"), "{err}");
        assert!(link.is_dead());

        let (client, node_end) = mem_pair(layout);
        let link = Arc::new(Link::spawn(client, "test".into()).expect("spawn"));
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
        let link = Link::spawn(client, "test".into()).expect("spawn");
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
