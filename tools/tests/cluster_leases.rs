//! Leases on real `govfs node` processes (3 nodes, one ministry of 3, the
//! namespace app, H = 500 ms, read leases at most H, write leases at most
//! 2H), through `FileSystem::open_region` and the session-level calls:
//! writers on disjoint regions hold at once, overlapping ones in turn; a
//! read lease on a clerk is revoked by an overlapping write; a holder that
//! stops renewing loses its lease; a killed clerk or a killed minister
//! does not block writes for long, and no two conflicting leases are ever
//! believed at once by their holders (sampled every millisecond).

mod common;

use std::time::Duration;

use common::TestCluster;
use govfs_client::{FileSystem, FsOptions, LeaseLost, LeaseOptions, RegionLease};
use govfs_core::ids::node_of;
use govfs_core::lease::{Drift, Mode, Region};
use tokio::time::Instant;

const H: Duration = Duration::from_millis(500);

fn r(start: u64, end: u64) -> Region {
    Region::new(start, end).expect("non-empty")
}

async fn setup(cluster: &TestCluster) -> FileSystem {
    cluster.wait_serving(1, Duration::from_secs(30)).await;
    let client = cluster.client().await;
    let mut fs = FileSystem::new(client, FsOptions::default());
    fs.create("/f", 0o644, false).await.expect("create /f");
    // The first write lease waits out the new minister's quiet period.
    let warm = fs
        .open_region("/f", r(1 << 40, (1 << 40) + 1), Mode::Write)
        .await
        .expect("a first write lease");
    warm.release().await.expect("release");
    fs
}

/// Samples `held` every millisecond until `until`; panics if two of them
/// that conflict are believed at once.
async fn never_both(held: &[(&RegionLease, Region, Mode)], until: Instant) {
    while Instant::now() < until {
        let valid: Vec<bool> = held.iter().map(|(l, _, _)| l.valid()).collect();
        for i in 0..held.len() {
            for j in i + 1..held.len() {
                let (a, b) = (&held[i], &held[j]);
                let conflict = a.1.overlaps(&b.1) && (a.2 == Mode::Write || b.2 == Mode::Write);
                assert!(
                    !(conflict && valid[i] && valid[j]),
                    "conflicting leases {i} and {j} both held"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_disjoint_regions_at_once_overlapping_in_turn() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let fs = setup(&cluster).await;
    let client = fs.session().client().clone();

    // Eight writers on disjoint rows, at once: all granted, all held together.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let mut fs = FileSystem::new(client.clone(), FsOptions::default());
        tasks.push(tokio::spawn(async move {
            fs.open_region("/f", r(i * 100, i * 100 + 100), Mode::Write)
                .await
                .expect("a disjoint write lease")
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.push(t.await.expect("task"));
    }
    let took = started.elapsed();
    assert!(
        rows.iter().all(|l| l.check().is_ok()),
        "all eight held at once"
    );
    assert!(
        took < H,
        "disjoint writers do not wait for each other: {took:?}"
    );
    eprintln!("8 disjoint write leases granted in {took:?}");
    // They stay held (renewed) past their first duration.
    tokio::time::sleep(3 * H).await;
    assert!(
        rows.iter().all(|l| l.check().is_ok()),
        "renewed in the background"
    );
    for l in rows {
        l.release().await.expect("release");
    }

    // A holder configured with no clock drift at all still uses the
    // cluster's bound (1%, sent with the grant): its belief ends no later
    // than the holder rule at 1% allows.
    let mut fs0 = FileSystem::new(client.clone(), FsOptions::default());
    let opts = LeaseOptions {
        drift_ppm: 0,
        ..LeaseOptions::default()
    };
    let sent = Instant::now();
    let l = fs0
        .open_region_with("/f", r(5000, 5100), Mode::Write, &opts)
        .await
        .expect("a write lease");
    let g = l.grant();
    assert_eq!(g.drift_ppm, 10_000, "the granter's bound is used");
    let at_one_percent = Drift::from_ppm(10_000).holder_span(g.granted.duration);
    assert!(
        g.deadline <= sent + Duration::from_micros(at_one_percent) + Duration::from_millis(5),
        "the holder's deadline follows the cluster's drift bound"
    );
    l.release().await.expect("release");

    // Overlapping writers: the second waits until the first releases.
    let mut fs1 = FileSystem::new(client.clone(), FsOptions::default());
    let first = fs1
        .open_region("/f", r(0, 100), Mode::Write)
        .await
        .expect("first");
    let mut fs2 = FileSystem::new(client.clone(), FsOptions::default());
    let second = tokio::spawn(async move {
        let l = fs2
            .open_region("/f", r(50, 150), Mode::Write)
            .await
            .expect("second");
        (l, Instant::now())
    });
    tokio::time::sleep(H / 2).await;
    assert!(!second.is_finished(), "the overlapping writer waits");
    assert!(first.check().is_ok());
    let released_at = Instant::now();
    first.release().await.expect("release first");
    let (second, granted_at) = second.await.expect("task");
    assert!(granted_at >= released_at);
    assert!(second.check().is_ok());
    eprintln!(
        "overlapping writer granted {:?} after the first released",
        granted_at - released_at
    );
    second.release().await.expect("release second");

    // A holder that stops renewing (session-level acquire, no background
    // renewal) loses the lease after its duration; the next holder gets it
    // only after the first stopped believing it.
    let mut quiet = client.session();
    let (ministry, attr) = fs1.locate("/f", true).await.expect("locate");
    let opts = LeaseOptions::default();
    let stale = quiet
        .acquire_lease(ministry, attr.ino, r(0, 10), Mode::Write, &opts)
        .await
        .expect("a lease nobody renews");
    let next = fs1
        .open_region("/f", r(5, 15), Mode::Write)
        .await
        .expect("the next holder");
    let now = Instant::now();
    assert!(
        now >= stale.deadline,
        "granted while the first holder still believed its lease"
    );
    eprintln!(
        "next holder granted {:?} after the silent holder's deadline",
        now - stale.deadline
    );
    assert!(next.check().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_lease_on_a_clerk_is_revoked_by_an_overlapping_write() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let fs = setup(&cluster).await;
    let client = fs.session().client().clone();
    let (minister, _) = cluster.ministry(1).await.expect("a minister");

    let mut rfs = FileSystem::new(client.clone(), FsOptions::default());
    let reader = rfs
        .open_region("/f", r(0, 100), Mode::Read)
        .await
        .expect("a read lease");
    assert_ne!(node_of(reader.grant().node), minister, "from a clerk");
    // Another reader on the same region does not conflict.
    let mut rfs2 = FileSystem::new(client.clone(), FsOptions::default());
    let reader2 = rfs2
        .open_region("/f", r(10, 20), Mode::Read)
        .await
        .expect("a second read lease");
    tokio::time::sleep(2 * H).await;
    assert!(
        reader.check().is_ok() && reader2.check().is_ok(),
        "read leases renew"
    );

    let mut wfs = FileSystem::new(client.clone(), FsOptions::default());
    let asked = Instant::now();
    let writer = tokio::spawn(async move {
        wfs.open_region("/f", r(50, 60), Mode::Write)
            .await
            .expect("the write lease")
    });
    // The clerk revokes the overlapping read lease (the watch delivers it)
    // and the holder releases it; the disjoint one stays.
    let deadline = Instant::now() + 2 * H;
    while reader.check().is_ok() {
        assert!(Instant::now() < deadline, "the read lease was not revoked");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        reader.check(),
        Err(LeaseLost::Revoked(reader.grant().lease()))
    );
    let revoked = asked.elapsed();
    let writer = writer.await.expect("task");
    let took = asked.elapsed();
    assert!(writer.check().is_ok());
    assert!(!reader.valid(), "never both");
    assert!(
        reader2.check().is_ok(),
        "a disjoint read lease is not revoked"
    );
    never_both(
        &[
            (&reader, r(0, 100), Mode::Read),
            (&reader2, r(10, 20), Mode::Read),
            (&writer, r(50, 60), Mode::Write),
        ],
        Instant::now() + 2 * H,
    )
    .await;
    eprintln!("read lease revoked after {revoked:?}, write granted after {took:?}");
    assert!(took < H, "granted once the reader released: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_clerk_holding_read_leases_does_not_block_writes_for_long() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let fs = setup(&cluster).await;
    let client = fs.session().client().clone();

    let mut rfs = FileSystem::new(client.clone(), FsOptions::default());
    let reader = rfs
        .open_region("/f", r(0, 100), Mode::Read)
        .await
        .expect("a read lease");
    let clerk = node_of(reader.grant().node);
    // Counted from before the kill: `cluster kill-node` itself takes a while.
    let killed = Instant::now();
    cluster.kill(clerk);
    eprintln!("killing the clerk took {:?}", killed.elapsed());

    let mut wfs = FileSystem::new(client.clone(), FsOptions::default());
    let writer = wfs
        .open_region("/f", r(0, 100), Mode::Write)
        .await
        .expect("a write lease after the clerk died");
    let took = killed.elapsed();
    assert!(
        !reader.valid(),
        "the reader stopped believing its lease first"
    );
    assert!(writer.check().is_ok());
    eprintln!("write granted {took:?} after the clerk holding a read lease was killed");
    // 2H after the minister last heard the clerk; the president may also
    // replace the clerk meanwhile, which starts a new term and its quiet
    // period (H + the longest write lease), so allow for that too.
    assert!(took < 2 * H + 3 * H + H, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minister_killed_during_lock_fan_out() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let fs = setup(&cluster).await;
    let client = fs.session().client().clone();
    let (minister, _) = cluster.ministry(1).await.expect("a minister");

    // A reader that does not give its lease back when revoked (no watch):
    // the write waits on the clerk until the read lease ends (≤ H), and the
    // minister dies meanwhile, with its lock fanned out.
    let (ministry, attr) = {
        let mut fs = FileSystem::new(client.clone(), FsOptions::default());
        fs.locate("/f", true).await.expect("locate")
    };
    let mut holder = client.session();
    let reader = holder
        .acquire_lease(
            ministry,
            attr.ino,
            r(0, 100),
            Mode::Read,
            &LeaseOptions::default(),
        )
        .await
        .expect("a read lease");
    let mut wfs = FileSystem::new(client.clone(), FsOptions::default());
    let asked = Instant::now();
    let writer = tokio::spawn(async move {
        wfs.open_region_with(
            "/f",
            r(50, 150),
            Mode::Write,
            &LeaseOptions {
                deadline: Duration::from_secs(30),
                ..LeaseOptions::default()
            },
        )
        .await
        .expect("a write lease after failover")
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished(), "the write waits for the read lease");
    cluster.kill(minister);
    let writer = writer.await.expect("task");
    // The reader stopped believing its lease before the new minister
    // granted the write.
    assert!(
        Instant::now() >= reader.deadline,
        "conflicting leases both held"
    );
    let took = asked.elapsed();
    eprintln!("write granted {took:?} after the minister was killed during fan-out");
    assert_ne!(
        node_of(writer.grant().node),
        minister,
        "by the new minister"
    );
    // A new reader of the region waits for the writer (the new minister's
    // locks are on the clerks); sampled meanwhile, never both held.
    let mut rfs = FileSystem::new(client.clone(), FsOptions::default());
    let reader2 = tokio::spawn(async move {
        rfs.open_region("/f", r(0, 100), Mode::Read)
            .await
            .expect("a read lease after the writer")
    });
    tokio::time::sleep(2 * H).await;
    assert!(!reader2.is_finished(), "the read waits for the write lease");
    assert!(writer.check().is_ok(), "the new minister renews it");
    writer.release().await.expect("release the write lease");
    let reader2 = reader2.await.expect("task");
    assert!(reader2.check().is_ok());
}
