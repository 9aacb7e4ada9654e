//! The namespace on real node processes: a create storm survives a SIGKILL
//! of the minister with nothing lost and nothing applied twice, and POSIX
//! errors reach the client.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestCluster;
use govfs_client::{Client, ClientError};
use govfs_core::meta::{
    decode_reply, encode_request, Credentials, Errno, Found, Ino, MetaOp, MetaReply, MetaRequest,
    ROOT,
};

fn call(client: &mut Client, op: MetaOp) -> Result<Result<MetaReply, Errno>, ClientError> {
    let req = MetaRequest {
        op,
        creds: Credentials::root(),
        now: 1_800_000_000_000_000_000,
    };
    let (_, out) = client.submit(1, encode_request(&req), Duration::from_secs(15))?;
    Ok(decode_reply(&out).expect("a namespace answer"))
}

fn names(client: &mut Client, dir: Ino) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let page = match call(
            client,
            MetaOp::Readdir {
                dir,
                after: after.clone(),
                limit: 1024,
            },
        )
        .unwrap()
        {
            Ok(MetaReply::Dir(p)) => p,
            other => panic!("readdir: {other:?}"),
        };
        out.extend(
            page.entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned()),
        );
        match page.entries.last() {
            Some(last) if page.more => after = Some(last.name.clone()),
            _ => return out,
        }
    }
}

#[test]
fn a_create_storm_survives_a_minister_sigkill_exactly_once() {
    let cluster = TestCluster::up_with(4, 1, "meta");
    let mut client = cluster.client();
    let storm = match call(
        &mut client,
        MetaOp::Mkdir {
            parent: ROOT,
            name: b"storm".to_vec(),
            mode: 0o755,
        },
    )
    .unwrap()
    {
        Ok(MetaReply::Attr(a)) => a.ino,
        other => panic!("mkdir: {other:?}"),
    };
    // POSIX errors come back as such.
    let again = call(
        &mut client,
        MetaOp::Mkdir {
            parent: ROOT,
            name: b"storm".to_vec(),
            mode: 0o755,
        },
    )
    .unwrap();
    assert_eq!(again, Err(Errno::EEXIST));
    let bad = call(
        &mut client,
        MetaOp::Mkdir {
            parent: ROOT,
            name: b"a/b".to_vec(),
            mode: 0o755,
        },
    )
    .unwrap();
    assert_eq!(bad, Err(Errno::EINVAL));

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<(Vec<String>, Vec<String>)>> = Arc::default();
    let mut writer = cluster.client();
    let (s, log) = (stop.clone(), acked.clone());
    let w = std::thread::spawn(move || {
        let mut i = 0;
        while !s.load(Ordering::Relaxed) {
            i += 1;
            let name = format!("f{i}");
            let op = MetaOp::Create {
                parent: storm,
                name: name.clone().into_bytes(),
                mode: 0o644,
                exclusive: true,
                layout: None,
            };
            match call(&mut writer, op) {
                Ok(Ok(MetaReply::Created { created: true, .. })) => {
                    log.lock().unwrap().0.push(name)
                }
                // An exclusive create of a fresh name that says EEXIST was applied twice.
                Ok(other) => panic!("create {name}: {other:?} (applied twice?)"),
                Err(ClientError::Timeout { .. }) => log.lock().unwrap().1.push(name),
                Err(e) => panic!("create {name}: {e}"),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    let (minister, _) = cluster.ministry(1).expect("a minister");
    cluster.kill(minister);
    cluster.wait_serving(1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    w.join().expect("writer");
    cluster.start(minister);

    let (acked, unknown) = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the storm made progress: {}", acked.len());
    let present = names(&mut client, storm);
    for name in &acked {
        assert!(present.contains(name), "acknowledged create {name} lost");
    }
    let known: BTreeSet<String> = acked.iter().chain(&unknown).cloned().collect();
    assert!(present.is_subset(&known), "files nobody created appeared");
    // Lookups agree with the listing.
    let first = acked.first().unwrap().clone();
    match call(
        &mut client,
        MetaOp::LookupPath {
            path: format!("/storm/{first}").into_bytes(),
            follow: true,
        },
    )
    .unwrap()
    {
        Ok(MetaReply::Found(Found::Local(attr))) => assert_eq!(attr.nlink, 1),
        other => panic!("lookup: {other:?}"),
    }
    eprintln!(
        "{} creates acknowledged, {} unknown, {} present",
        acked.len(),
        unknown.len(),
        present.len()
    );
}
