//! The RDMA data path over a real device (hardware or soft-RoCE): two
//! connections in one process, set up through a TCP socket on 127.0.0.1.
//! Compiled only with the `rdma` feature; each test prints
//! `SKIPPED: no RDMA device (see hw-tests/setup-soft-roce.sh)` to stderr and
//! returns where there is no device.
//!
//! `GOVFS_RDMA_GID_INDEX` picks the GID index on RoCE (default 0).
#![cfg(feature = "rdma")]

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use govfs_hw_tests::rdma_device_or_skip;
use govfs_net::rdma::{Connection, ConnectionConfig, Event, RdmaError};
use govfs_net::rdma_choice::{negotiate, Choice, LocalRdma};

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

fn config(device: &str, recv_buffer_len: usize) -> ConnectionConfig {
    let gid_index = std::env::var("GOVFS_RDMA_GID_INDEX")
        .ok()
        .map(|v| v.parse().expect("GOVFS_RDMA_GID_INDEX is a number"))
        .unwrap_or(0);
    ConnectionConfig {
        device: Some(device.to_string()),
        gid_index,
        recv_buffer_len,
        ..ConnectionConfig::default()
    }
}

/// Two connected ends, (dialer, acceptor), after the transport choice said
/// RDMA on both.
fn connected_pair(config: &ConnectionConfig) -> (Connection, Connection) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("listener address");
    std::thread::scope(|scope| {
        let acceptor = scope.spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let choice = negotiate(&mut stream, LocalRdma::probe()).expect("negotiate");
            assert_eq!(choice, Choice::Rdma, "acceptor: {choice}");
            Connection::establish(&mut stream, config).expect("acceptor establishes")
        });
        let mut stream = TcpStream::connect(addr).expect("connect");
        let choice = negotiate(&mut stream, LocalRdma::probe()).expect("negotiate");
        assert_eq!(choice, Choice::Rdma, "dialer: {choice}");
        let dialer = Connection::establish(&mut stream, config).expect("dialer establishes");
        (dialer, acceptor.join().expect("acceptor thread"))
    })
}

/// Bytes that differ at every offset of a MiB and between MiBs: no shift or
/// repeat of the data matches it.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 16) as u8)
        .collect()
}

fn wait(conn: &mut Connection) -> Event {
    conn.wait(WAIT).expect("completion")
}

#[test]
fn write_with_imm_delivers_one_mib_byte_for_byte() {
    let Some(device) = rdma_device_or_skip("write_with_imm_delivers_one_mib_byte_for_byte") else {
        return;
    };
    let (mut a, mut b) = connected_pair(&config(&device, MIB));
    assert_eq!(a.remote_endpoint().recv_len, MIB as u64);

    let data = pattern(MIB, 7);
    let mut region = a.register(MIB).expect("register");
    region.as_mut_slice().copy_from_slice(&data);
    let id = a
        .write_with_imm(region.slice(0, MIB).expect("slice"), 0, 0xC0FF_EE01)
        .expect("post write");
    assert_eq!(wait(&mut a), Event::WriteComplete { wr_id: id });
    assert_eq!(
        wait(&mut b),
        Event::DataWritten {
            imm: 0xC0FF_EE01,
            byte_len: MIB as u32
        }
    );
    let mut received = vec![0u8; MIB];
    b.read_received(0, &mut received).expect("read");
    if let Some(at) = received.iter().zip(&data).position(|(r, d)| r != d) {
        panic!("byte {at} differs: got {}, sent {}", received[at], data[at]);
    }

    // A second write lands at its offset, leaves the rest alone, and the
    // other direction works too.
    let tail = pattern(4096, 99);
    region.as_mut_slice()[8192..12288].copy_from_slice(&tail);
    let offset = (MIB - 4096) as u64;
    let id = a
        .write_with_imm(region.slice(8192, 4096).expect("slice"), offset, 2)
        .expect("post write");
    assert_eq!(wait(&mut a), Event::WriteComplete { wr_id: id });
    assert_eq!(
        wait(&mut b),
        Event::DataWritten {
            imm: 2,
            byte_len: 4096
        }
    );
    b.read_received(0, &mut received).expect("read");
    assert_eq!(&received[MIB - 4096..], &tail[..]);
    assert_eq!(&received[..MIB - 4096], &data[..MIB - 4096]);

    let mut back = b.register(16).expect("register");
    back.as_mut_slice().copy_from_slice(b"from b to a 16 B");
    let id = b
        .write_with_imm(back.slice(0, 16).expect("slice"), 100, u32::MAX)
        .expect("post write");
    assert_eq!(wait(&mut b), Event::WriteComplete { wr_id: id });
    assert_eq!(
        wait(&mut a),
        Event::DataWritten {
            imm: u32::MAX,
            byte_len: 16
        }
    );
    let mut got = [0u8; 16];
    a.read_received(100, &mut got).expect("read");
    assert_eq!(&got, b"from b to a 16 B");
}

#[test]
fn control_messages_go_both_ways_past_the_posted_receives() {
    let Some(device) =
        rdma_device_or_skip("control_messages_go_both_ways_past_the_posted_receives")
    else {
        return;
    };
    let config = config(&device, 4096);
    let (mut a, mut b) = connected_pair(&config);

    // More messages than receive slots: each one is reposted after use.
    let count = config.control_slots * 3;
    for i in 0..count {
        let message = format!("control message {i} from a");
        let id = a.send(message.as_bytes()).expect("send");
        assert_eq!(wait(&mut b), Event::Control(message.into_bytes()));
        assert_eq!(wait(&mut a), Event::SendComplete { wr_id: id });
    }
    let reply = vec![0xa5; b.max_control_len()];
    let id = b.send(&reply).expect("send the largest message");
    assert_eq!(wait(&mut a), Event::Control(reply));
    assert_eq!(wait(&mut b), Event::SendComplete { wr_id: id });
    let id = b.send(b"").expect("send an empty message");
    assert_eq!(wait(&mut a), Event::Control(Vec::new()));
    assert_eq!(wait(&mut b), Event::SendComplete { wr_id: id });

    let too_large = vec![0u8; a.max_control_len() + 1];
    assert!(matches!(
        a.send(&too_large),
        Err(RdmaError::ControlTooLarge { len, max }) if len == max + 1
    ));
    // Nothing was posted by the refused send.
    assert!(a.poll().expect("poll").is_none());
    assert!(b.poll().expect("poll").is_none());
}

#[test]
fn write_beyond_the_peer_buffer_is_refused_before_posting() {
    let Some(device) =
        rdma_device_or_skip("write_beyond_the_peer_buffer_is_refused_before_posting")
    else {
        return;
    };
    let remote_len = 64 * 1024;
    let (mut a, mut b) = connected_pair(&config(&device, remote_len));
    let region = a.register(remote_len + 4096).expect("register");

    let refused = [
        (0, remote_len + 1, 0u64),
        (0, 4096, (remote_len - 4095) as u64),
        (0, 1, remote_len as u64),
        (0, 16, u64::MAX - 8),
    ];
    for (start, len, offset) in refused {
        let slice = region.slice(start, len).expect("slice");
        match a.write_with_imm(slice, offset, 1) {
            Err(RdmaError::RemoteOutOfBounds {
                offset: o,
                len: l,
                remote_len: r,
            }) => assert_eq!((o, l, r), (offset, len as u64, remote_len as u64)),
            other => panic!("write of {len} at {offset} not refused: {other:?}"),
        }
    }
    // A region of another connection's protection domain is refused too.
    let foreign = b.register(16).expect("register");
    assert!(matches!(
        a.write_with_imm(foreign.slice(0, 16).expect("slice"), 0, 1),
        Err(RdmaError::ForeignRegion)
    ));
    // Nothing reached the wire: no completion on either side, and the
    // connection still works for a write that ends exactly at the end.
    assert!(a.poll().expect("poll").is_none());
    assert!(b.poll().expect("poll").is_none());
    let id = a
        .write_with_imm(
            region.slice(0, 4096).expect("slice"),
            (remote_len - 4096) as u64,
            3,
        )
        .expect("a write that fits");
    assert_eq!(wait(&mut a), Event::WriteComplete { wr_id: id });
    assert_eq!(
        wait(&mut b),
        Event::DataWritten {
            imm: 3,
            byte_len: 4096
        }
    );
}
