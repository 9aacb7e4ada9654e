//! The node's side of the RDMA data path (protocol in
//! `govfs_net::data_path`): chunk requests that clients write into this
//! node's slots, served by the same storage shards as requests over TCP,
//! answered into the client's slots.
//!
//! [`Service`] is generic over the link ([`SlotLink`]), so the same code
//! serves RDMA queue pairs in a node and in-memory links in tests; only
//! [`start`] (feature `rdma`) touches the verbs. Two threads: the accept
//! thread takes connections on the data-path listener and sets each up on
//! a thread of its own (cluster handshake, transport choice, queue-pair
//! exchange: a slow or hostile peer holds only that thread, for at most
//! the setup timeout). The service thread owns every established link: it
//! polls them, hands arrived requests to the storage shards
//! ([`Answer::Channel`]) and writes their answers back. It polls without
//! sleeping while there is work and backs off to short sleeps when idle:
//! kernel bypass means no interrupt to wait on, and this thread is the
//! price.
//!
//! A peer breaking the protocol (an immediate naming no slot, a request
//! into a slot whose last call is unanswered, a control message) loses its
//! link, which its client notices and replaces with TCP. A request that is
//! not a chunk request, or does not decode, is refused in its slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use govfs_core::data::{ChunkRefusal, ChunkReply};
use govfs_core::node::wire::decode_client_msg;
use govfs_core::node::{ClientMsg, ServerMsg};
use govfs_net::data_path::{IdleSpin, LinkError, SlotLink};
use tracing::{info, warn};

use super::chunks::{Answer, ChunkInbox};

/// Idle turns spent polling before the service thread starts sleeping.
const SPIN_TURNS: u32 = 2_000;
/// How long an idle service thread sleeps between polls.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// A link the setup finished, for the service thread to serve.
pub struct NewLink<L> {
    pub link: L,
    /// Who is at the other end, for logs.
    pub peer: String,
}

struct Served<L> {
    link: L,
    /// Slots holding a request not answered yet.
    busy: Vec<bool>,
    peer: String,
}

/// Serves every data-path link of a node.
pub struct Service<L: SlotLink> {
    chunks: ChunkInbox,
    links: HashMap<u32, Served<L>>,
    next_link: u32,
    new_links: Receiver<NewLink<L>>,
    answers_tx: Sender<(u64, ChunkReply)>,
    answers: Receiver<(u64, ChunkReply)>,
}

fn token(link: u32, slot: u32) -> u64 {
    (u64::from(link) << 32) | u64::from(slot)
}

impl<L: SlotLink> Service<L> {
    pub fn new(chunks: ChunkInbox, new_links: Receiver<NewLink<L>>) -> Service<L> {
        let (answers_tx, answers) = unbounded();
        Service {
            chunks,
            links: HashMap::new(),
            next_link: 0,
            new_links,
            answers_tx,
            answers,
        }
    }

    /// Links being served.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// Serves until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut idle = IdleSpin::new(SPIN_TURNS);
        let mut last_gauge = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let worked = self.turn();
            if last_gauge.elapsed() >= Duration::from_secs(1) {
                metrics::gauge!("govfs_data_path_links").set(self.links.len() as f64);
                last_gauge = Instant::now();
            }
            idle.after(worked, || thread::sleep(IDLE_SLEEP));
        }
    }

    /// One turn: takes new links, every request that arrived, and every
    /// answer the storage shards gave. Whether anything happened.
    pub fn turn(&mut self) -> bool {
        let mut worked = false;
        while let Ok(new) = self.new_links.try_recv() {
            info!(peer = %new.peer, over = %new.link.name(), "data path link up");
            let id = self.next_link;
            self.next_link = self.next_link.wrapping_add(1);
            let slots = new.link.layout().slots() as usize;
            self.links.insert(
                id,
                Served {
                    link: new.link,
                    busy: vec![false; slots],
                    peer: new.peer,
                },
            );
        }
        let mut broken = Vec::new();
        for (&id, served) in self.links.iter_mut() {
            loop {
                match served.link.poll() {
                    Ok(None) => break,
                    Ok(Some((slot, body))) => {
                        worked = true;
                        let to = (&self.chunks, &self.answers_tx);
                        if let Err(why) = served.arrived(to, id, slot, body) {
                            broken.push((id, why));
                            break;
                        }
                    }
                    Err(why) => {
                        broken.push((id, why));
                        break;
                    }
                }
            }
        }
        while let Ok((token, reply)) = self.answers.try_recv() {
            worked = true;
            let (id, slot) = ((token >> 32) as u32, token as u32);
            // The client went away meanwhile: nobody to answer.
            if let Some(served) = self.links.get_mut(&id) {
                if let Err(why) = served.answer(slot, reply) {
                    broken.push((id, why));
                }
            }
        }
        for (id, why) in broken {
            if let Some(served) = self.links.remove(&id) {
                warn!(peer = %served.peer, "data path link dropped: {why}");
            }
        }
        worked
    }
}

impl<L: SlotLink> Served<L> {
    /// A request arrived for slot `slot` of this link (`id`): to the
    /// storage shards, whose answer comes back through `answers`.
    fn arrived(
        &mut self,
        (chunks, answers): (&ChunkInbox, &Sender<(u64, ChunkReply)>),
        id: u32,
        slot: u32,
        body: Vec<u8>,
    ) -> Result<(), LinkError> {
        let busy = &mut self.busy[slot as usize];
        if *busy {
            return Err(LinkError::Transport(format!(
                "a request into slot {slot}, whose last one is not answered yet"
            )));
        }
        *busy = true;
        metrics::counter!("govfs_data_path_calls_total").increment(1);
        let refused = match decode_client_msg(body) {
            Ok(ClientMsg::Chunk(req)) => {
                let to = Answer::Channel {
                    tx: answers.clone(),
                    token: token(id, slot),
                };
                chunks.submit(req, to).err()
            }
            Ok(_) => Some(ChunkRefusal::BadRequest(
                "only chunk requests travel the data path".into(),
            )),
            Err(e) => Some(ChunkRefusal::BadRequest(format!(
                "undecodable request: {e}"
            ))),
        };
        match refused {
            Some(r) => self.answer(slot, ChunkReply::Refused(r)),
            None => Ok(()),
        }
    }

    /// Writes `reply` into slot `slot` of this link's client.
    fn answer(&mut self, slot: u32, reply: ChunkReply) -> Result<(), LinkError> {
        let busy = &mut self.busy[slot as usize];
        assert!(*busy, "an answer for slot {slot}, which holds no request");
        *busy = false;
        let msg = ServerMsg::Chunk(reply);
        self.link.write(slot, &mut |room| {
            match postcard::to_slice(&msg, room) {
                Ok(used) => Ok(used.len()),
                // Clients ask here only for what fits: say so if not.
                Err(_) => {
                    let refusal = ServerMsg::Chunk(ChunkReply::Refused(ChunkRefusal::BadRequest(
                        "the answer is larger than a data path slot".into(),
                    )));
                    postcard::to_slice(&refusal, room)
                        .map(|used| used.len())
                        .map_err(|e| LinkError::Transport(e.to_string()))
                }
            }
        })
    }
}

/// A running data-path listener: its address, for `ClientMsg::DataPath`.
pub struct DataPathListener {
    pub addr: std::net::SocketAddr,
    threads: Vec<thread::JoinHandle<()>>,
}

impl DataPathListener {
    /// Waits for both threads, which end once `stop` is set.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                warn!("a data path thread panicked");
            }
        }
    }
}

/// A link of whichever kind the setup made.
type AnyLink = Box<dyn SlotLink>;

/// Starts the data path on `ip` (a port of the kernel's choosing) when
/// this node has a usable RDMA device and the `rdma` feature, or when
/// `GOVFS_DATA_PATH_OVER_TCP=1` asks for it over TCP (tests); `None`
/// (logged) otherwise.
pub fn start(
    ip: std::net::IpAddr,
    key: govfs_net::ClusterKey,
    id: govfs_core::raft::NodeId,
    chunks: ChunkInbox,
    stop: std::sync::Arc<AtomicBool>,
) -> std::io::Result<Option<DataPathListener>> {
    use govfs_net::data_path::{over_tcp, SlotLayout};
    use govfs_net::rdma_choice::LocalRdma;
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;

    let rdma = LocalRdma::probe();
    let over_tcp = over_tcp();
    if rdma != LocalRdma::Available && !over_tcp {
        info!(
            ?rdma,
            "data path off (no usable RDMA device): chunks go over TCP"
        );
        return Ok(None);
    }
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (new_tx, new_rx) = unbounded::<NewLink<AnyLink>>();
    let local = govfs_net::Identity {
        node_id: id,
        role: govfs_net::Role::Node,
    };
    let accept_stop = Arc::clone(&stop);
    let accept = thread::Builder::new()
        .name("govfs-data-accept".into())
        .spawn(move || setup::accept_loop(&listener, &key, local, &new_tx, &accept_stop))?;
    let service = thread::Builder::new()
        .name("govfs-data-path".into())
        .spawn(move || Service::new(chunks, new_rx).run(&stop))?;
    if over_tcp {
        warn!(%addr, "data path listening, its slots over TCP ({} is set: for tests)", govfs_net::data_path::OVER_TCP_ENV);
    } else {
        info!(%addr, layout = ?SlotLayout::DEFAULT, "RDMA data path listening");
    }
    Ok(Some(DataPathListener {
        addr,
        threads: vec![accept, service],
    }))
}

mod setup {
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;
    use std::time::Duration;

    use crossbeam_channel::Sender;
    use govfs_net::data_path::{answer, over_tcp, SlotLayout, TcpSlots};
    use govfs_net::rdma_choice::LocalRdma;
    use govfs_net::{ClusterKey, Identity};
    use tracing::{debug, warn};

    use super::{AnyLink, NewLink};

    /// A peer must finish the handshake, the choice and the queue-pair
    /// exchange within this time.
    const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

    pub(super) fn accept_loop(
        listener: &TcpListener,
        key: &ClusterKey,
        local: Identity,
        new_links: &Sender<NewLink<AnyLink>>,
        stop: &AtomicBool,
    ) {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, addr)) => {
                    let key = key.clone();
                    let new_links = new_links.clone();
                    let spawned = thread::Builder::new()
                        .name("govfs-data-setup".into())
                        .spawn(move || match set_up(stream, &key, local) {
                            Ok(Some((link, peer))) => {
                                let peer = format!("{addr} ({peer:?})");
                                let _ = new_links.send(NewLink { link, peer });
                            }
                            Ok(None) => debug!(%addr, "data path peer stays on TCP"),
                            Err(e) => warn!(%addr, "data path setup failed: {e}"),
                        });
                    if let Err(e) = spawned {
                        warn!(%addr, "cannot start a data path setup thread: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    warn!("data path accept failed: {e}");
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    fn set_up(
        stream: TcpStream,
        key: &ClusterKey,
        local: Identity,
    ) -> Result<Option<(AnyLink, Identity)>, String> {
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let (stream, choice, peer) = answer(stream, key, local, LocalRdma::probe(), SETUP_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let layout = SlotLayout::DEFAULT;
        #[cfg(feature = "rdma")]
        if choice == govfs_net::rdma_choice::Choice::Rdma {
            let mut stream = stream;
            let link = govfs_net::data_path::RdmaSlots::establish(&mut stream, layout)
                .map_err(|e| e.to_string())?;
            return Ok(Some((Box::new(link), peer)));
        }
        debug!(%choice, "no RDMA between us");
        if over_tcp() {
            let link = TcpSlots::new(stream, layout).map_err(|e| e.to_string())?;
            return Ok(Some((Box::new(link), peer)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use govfs_core::data::{ChunkRef, GrantKey, WriteGrant};
    use govfs_core::lease::LeaseId;
    use govfs_core::meta::Ino;
    use govfs_core::node::wire::encode_chunk_write;
    use govfs_net::data_path::{mem_pair, MemSlots, SlotLayout};

    use super::*;
    use crate::node::chunks::{self, StorageSettings};
    use crate::node::core_loop::Shared;
    use crate::node::lamport::NodeClock;
    use crate::node::routing::SharedPresidentView;

    const NODE: u64 = 1;

    /// A node's storage service (real shards on a real disk) behind a
    /// [`Service`], with an in-memory link to it: the client's end.
    struct Rig {
        _dir: tempfile::TempDir,
        service: Service<MemSlots>,
        client: MemSlots,
        key: GrantKey,
        stop: Arc<AtomicBool>,
        threads: Vec<thread::JoinHandle<()>>,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for t in self.threads.drain(..) {
                t.join().expect("storage thread");
            }
        }
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = GrantKey::derive(&[9; 32]).expect("key");
        let settings = StorageSettings::new(
            dir.path().join("chunks"),
            GrantKey::derive(&[9; 32]).expect("key"),
        );
        let (inbox, shards) = chunks::open(&settings).expect("open chunks");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            id: NODE,
            cores: 1,
            inboxes: Vec::new(),
            president: SharedPresidentView::new(),
            board: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            stop: Arc::clone(&stop),
            chunks: None,
            clock: NodeClock::open(dir.path()).expect("clock"),
            rdma_data: None,
        });
        let threads = chunks::spawn(shards, shared).expect("spawn");
        let (tx, rx) = unbounded();
        let (node_end, client) = mem_pair(SlotLayout::new(4, 1 << 20).expect("layout"));
        tx.send(NewLink {
            link: node_end,
            peer: "test".into(),
        })
        .expect("send");
        let mut service = Service::new(inbox, rx);
        service.turn();
        assert_eq!(service.links(), 1);
        Rig {
            _dir: dir,
            service,
            client,
            key,
            stop,
            threads,
        }
    }

    impl Rig {
        fn send(&mut self, slot: u32, body: &[u8]) {
            self.client
                .write(slot, &mut |room| {
                    room[..body.len()].copy_from_slice(body);
                    Ok(body.len())
                })
                .expect("write");
        }

        /// Turns the service until an answer arrives: its slot and message.
        fn answer(&mut self) -> (u32, ServerMsg) {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                self.service.turn();
                if let Some((slot, bytes)) = self.client.poll().expect("poll") {
                    let msg = govfs_core::codec::decode_exact(&bytes).expect("decode");
                    return (slot, msg);
                }
                assert!(Instant::now() < deadline, "no answer");
                thread::sleep(Duration::from_micros(100));
            }
        }

        fn call(&mut self, slot: u32, body: &[u8]) -> ChunkReply {
            self.send(slot, body);
            match self.answer() {
                (s, ServerMsg::Chunk(reply)) if s == slot => reply,
                other => panic!("an answer in slot {slot}, not {other:?}"),
            }
        }

        fn grant(&self, index: u64) -> govfs_core::data::SignedGrant {
            let chunk = ChunkRef {
                file: Ino(42),
                index,
            };
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_micros() as u64;
            self.key.sign(WriteGrant {
                ministry: 1,
                term: 1,
                lease: LeaseId(7),
                session: 3,
                chunk,
                chunk_id: chunk.id().expect("id"),
                version: 1,
                replicas: vec![NODE],
                range: (0, 1 << 20),
                not_after_unix_us: now_us + 60_000_000,
            })
        }
    }

    fn read(grant: &govfs_core::data::SignedGrant, len: u32) -> Vec<u8> {
        govfs_core::codec::encode_sized(&ClientMsg::Chunk(govfs_core::data::ChunkRequest::Read {
            chunk: grant.grant.chunk_id,
            version: 1,
            offset: 0,
            len,
            lamport: 1,
        }))
    }

    /// Requests written into the node's slots reach the storage shards and
    /// their answers come back in the same slots: a write, two in flight at
    /// once, reads of what was written, a missing chunk, a forged grant.
    #[test]
    fn chunk_requests_in_slots_are_served_by_the_storage_shards() {
        let mut rig = rig();
        let g0 = rig.grant(0);
        assert!(matches!(
            rig.call(0, &read(&g0, 10)),
            ChunkReply::Refused(ChunkRefusal::NoSuchChunk(_))
        ));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        match rig.call(1, &encode_chunk_write(&g0, 0, &data, 11, 2)) {
            ChunkReply::Written { write, .. } => assert_eq!(write, 11),
            other => panic!("written, not {other:?}"),
        }
        // Two calls in flight in two slots; each answer names its slot.
        let g1 = rig.grant(1);
        rig.send(2, &encode_chunk_write(&g1, 0, &data[..5000], 12, 3));
        rig.send(3, &read(&g0, data.len() as u32));
        let mut answers = BTreeMap::new();
        for _ in 0..2 {
            let (slot, msg) = rig.answer();
            assert!(answers.insert(slot, msg).is_none(), "one answer per slot");
        }
        assert!(matches!(
            answers.get(&2),
            Some(ServerMsg::Chunk(ChunkReply::Written { write: 12, .. }))
        ));
        match answers.get(&3) {
            Some(ServerMsg::Chunk(ChunkReply::Data { data: got, .. })) => {
                assert!(*got == data, "the read returns what was written")
            }
            other => panic!("data, not {other:?}"),
        }
        match rig.call(3, &read(&g1, 5000)) {
            ChunkReply::Data { data: got, .. } => assert_eq!(got, data[..5000]),
            other => panic!("data, not {other:?}"),
        }
        let mut forged = rig.grant(2);
        forged.tag[0] ^= 1;
        assert!(matches!(
            rig.call(0, &encode_chunk_write(&forged, 0, &data[..10], 13, 4)),
            ChunkReply::Refused(ChunkRefusal::Grant(_))
        ));
        assert_eq!(rig.service.links(), 1);
    }

    /// What is not a chunk request, or not a message at all, is refused in
    /// its slot and the link stays.
    #[test]
    fn other_requests_and_garbage_are_refused_in_their_slot() {
        let mut rig = rig();
        let status = govfs_core::codec::encode_sized(&ClientMsg::Status);
        for body in [status, vec![0xff; 100], Vec::new()] {
            match rig.call(1, &body) {
                ChunkReply::Refused(ChunkRefusal::BadRequest(why)) => {
                    assert!(
                        why.contains("only chunk") || why.contains("undecodable"),
                        "{why}"
                    )
                }
                other => panic!("refused, not {other:?}"),
            }
        }
        assert_eq!(rig.service.links(), 1);
    }

    /// A peer that breaks the protocol loses its link: a request into a
    /// slot whose last request is unanswered, an immediate or a control
    /// message naming no slot, more bytes than a slot holds, a control
    /// message too short to name one, or a broken transport.
    #[test]
    fn protocol_breaches_drop_the_link() {
        let g = rig().grant(0);
        let offset = |slot: u64| (slot << 20) as usize;
        let body = read(&g, 10);
        type Breach<'a> = Box<dyn Fn(&MemSlots) + 'a>;
        let cases: Vec<Breach> = vec![
            Box::new(|c| {
                c.write_raw(0, offset(0), &body);
                c.write_raw(0, offset(0), &body);
            }),
            Box::new(|c| c.write_raw(4, 0, &body)),
            Box::new(|c| c.write_raw(1, offset(1), &vec![0; (1 << 20) + 1][..])),
            Box::new(|c| c.send_raw(govfs_net::data_path::control_message(4, &body))),
            Box::new(|c| c.send_raw(vec![0; 3])),
            Box::new(|c| c.break_link()),
        ];
        for (k, breach) in cases.iter().enumerate() {
            let mut rig = rig();
            breach(&rig.client);
            rig.service.turn();
            assert_eq!(rig.service.links(), 0, "case {k}: the link is dropped");
        }
    }
}
