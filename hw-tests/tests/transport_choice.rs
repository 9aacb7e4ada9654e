//! The transport choice over a real TCP connection on 127.0.0.1. Runs in
//! every build, with or without the `rdma` feature and a device.

use std::net::{TcpListener, TcpStream};

use govfs_net::rdma_choice::{negotiate, Choice, LocalRdma, TcpReason};

/// Both ends negotiate over one loopback connection, each stating `a` and
/// `b`; returns (dialer's choice, acceptor's choice).
fn negotiate_pair(a: LocalRdma, b: LocalRdma) -> (Choice, Choice) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("listener address");
    std::thread::scope(|scope| {
        let acceptor = scope.spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            negotiate(&mut stream, b).expect("acceptor negotiates")
        });
        let mut stream = TcpStream::connect(addr).expect("connect");
        let dialer = negotiate(&mut stream, a).expect("dialer negotiates");
        (dialer, acceptor.join().expect("acceptor thread"))
    })
}

#[test]
fn both_ends_without_devices_use_tcp() {
    let (dialer, acceptor) = negotiate_pair(LocalRdma::NoDevice, LocalRdma::NoDevice);
    assert_eq!(dialer, Choice::Tcp(TcpReason::NoLocalDevice));
    assert_eq!(acceptor, Choice::Tcp(TcpReason::NoLocalDevice));
    assert_eq!(dialer.to_string(), "TCP: no RDMA device here");
}

#[test]
fn one_end_without_a_device_means_tcp_on_both() {
    let (dialer, acceptor) = negotiate_pair(LocalRdma::Available, LocalRdma::NoDevice);
    assert_eq!(dialer, Choice::Tcp(TcpReason::PeerNoDevice));
    assert_eq!(acceptor, Choice::Tcp(TcpReason::NoLocalDevice));
    let (dialer, acceptor) = negotiate_pair(LocalRdma::NotBuilt, LocalRdma::Available);
    assert_eq!(dialer, Choice::Tcp(TcpReason::NotBuilt));
    assert_eq!(acceptor, Choice::Tcp(TcpReason::PeerNotBuilt));
    assert_eq!(dialer.to_string(), "TCP: this build has no rdma feature");
}

#[test]
fn both_ends_with_devices_use_rdma() {
    let (dialer, acceptor) = negotiate_pair(LocalRdma::Available, LocalRdma::Available);
    assert_eq!((dialer, acceptor), (Choice::Rdma, Choice::Rdma));
}

#[test]
fn probe_matches_this_build_and_machine() {
    let probed = LocalRdma::probe();
    if cfg!(feature = "rdma") {
        // A device with an active port shows in sysfs; no device, no RDMA.
        if govfs_hw_tests::rdma_devices().is_empty() {
            assert_eq!(probed, LocalRdma::NoDevice);
        } else {
            assert_ne!(probed, LocalRdma::NotBuilt);
        }
    } else {
        assert_eq!(probed, LocalRdma::NotBuilt);
    }
}
