//! The data path's slot protocol over a real RDMA device (hardware or
//! soft-RoCE): a node's end and a client's end in one process, set up as
//! the node and the client do it (cluster handshake and transport choice
//! over TCP on 127.0.0.1, then `RdmaSlots::establish`). Compiled only with
//! the `rdma` feature; prints `SKIPPED: ...` and returns without a device.
//! The same protocol on real `govfs node` processes:
//! `cargo test -p govfs-tools --features rdma --test cluster_data_path`.
#![cfg(feature = "rdma")]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use govfs_hw_tests::rdma_device_or_skip;
use govfs_net::data_path::{answer, dial, RdmaSlots, SlotLayout, SlotLink};
use govfs_net::rdma_choice::{Choice, LocalRdma};
use govfs_net::{ClusterKey, Identity, Role};

const WAIT: Duration = Duration::from_secs(20);

fn pair(layout: SlotLayout) -> (RdmaSlots, RdmaSlots) {
    let key = ClusterKey::from_bytes(&[5; 32]).expect("key");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("address");
    std::thread::scope(|scope| {
        let node_key = key.clone();
        let node = scope.spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let local = Identity {
                node_id: 1,
                role: Role::Node,
            };
            let (mut stream, choice, _) =
                answer(stream, &node_key, local, LocalRdma::probe(), WAIT).expect("answer");
            assert_eq!(choice, Choice::Rdma, "node: {choice}");
            RdmaSlots::establish(&mut stream, layout).expect("node establishes")
        });
        let local = Identity {
            node_id: 9,
            role: Role::Client,
        };
        let (mut stream, choice) = dial(addr, &key, local, LocalRdma::probe(), WAIT).expect("dial");
        assert_eq!(choice, Choice::Rdma, "client: {choice}");
        let client = RdmaSlots::establish(&mut stream, layout).expect("client establishes");
        (client, node.join().expect("node thread"))
    })
}

fn message(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

fn send(link: &mut RdmaSlots, slot: u32, bytes: &[u8]) {
    link.write(slot, &mut |room| {
        room[..bytes.len()].copy_from_slice(bytes);
        Ok(bytes.len())
    })
    .expect("write");
}

fn next(link: &mut RdmaSlots) -> (u32, Vec<u8>) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(arrival) = link.poll().expect("poll") {
            return arrival;
        }
        assert!(Instant::now() < deadline, "nothing arrived");
        std::hint::spin_loop();
    }
}

/// A request in every slot at once, one of them a full slot, the small ones
/// by send and receive and the large ones by RDMA write with immediate,
/// each read by the node for its slot byte for byte; the answers (all
/// small), sent in reverse order, reach the client for their requests'
/// slots.
#[test]
fn requests_and_answers_travel_in_their_slots() {
    if rdma_device_or_skip("requests_and_answers_travel_in_their_slots").is_none() {
        return;
    }
    let layout = SlotLayout::DEFAULT;
    let (mut client, mut node) = pair(layout);
    let slots = layout.slots();
    let requests: Vec<Vec<u8>> = (0..slots)
        .map(|s| {
            let len = if s == 0 {
                layout.slot_len() as usize
            } else {
                1000 * (s as usize + 1)
            };
            message(len, s)
        })
        .collect();
    for (s, r) in requests.iter().enumerate() {
        send(&mut client, s as u32, r);
    }
    let mut seen = vec![false; slots as usize];
    for _ in 0..slots {
        let (slot, bytes) = next(&mut node);
        assert!(!seen[slot as usize], "slot {slot} once");
        seen[slot as usize] = true;
        assert!(
            bytes == requests[slot as usize],
            "slot {slot} byte for byte"
        );
    }
    for s in (0..slots).rev() {
        send(&mut node, s, &message(100 + s as usize, 1000 + s));
    }
    for _ in 0..slots {
        let (slot, bytes) = next(&mut client);
        assert_eq!(bytes, message(100 + slot as usize, 1000 + slot));
    }
}
