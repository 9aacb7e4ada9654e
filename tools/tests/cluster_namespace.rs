//! The namespace on real node processes: a create storm survives a SIGKILL
//! of the minister with nothing lost and nothing applied twice, and POSIX
//! errors reach the client.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestCluster;
use govfs_client::{ClientError, Session};
use govfs_core::meta::{
    decode_reply, encode_request, Credentials, Errno, Found, Ino, MetaOp, MetaReply, MetaRequest,
    ROOT,
};

async fn call(session: &mut Session, op: MetaOp) -> Result<Result<MetaReply, Errno>, ClientError> {
    let req = MetaRequest {
        op,
        creds: Credentials::root(),
        now: 1_800_000_000_000_000_000,
    };
    let (_, out) = session
        .submit(1, encode_request(&req), Duration::from_secs(15))
        .await?;
    Ok(decode_reply(&out).expect("a namespace answer"))
}

async fn names(session: &mut Session, dir: Ino) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let page = match call(
            session,
            MetaOp::Readdir {
                dir,
                after: after.clone(),
                limit: 1024,
            },
        )
        .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_storm_survives_a_minister_sigkill_exactly_once() {
    let cluster = TestCluster::up_with(4, 1, "meta");
    let client = cluster.client().await;
    let mut session = client.session();
    let storm = match call(
        &mut session,
        MetaOp::Mkdir {
            parent: ROOT,
            name: b"storm".to_vec(),
            mode: 0o755,
        },
    )
    .await
    .unwrap()
    {
        Ok(MetaReply::Attr(a)) => a.ino,
        other => panic!("mkdir: {other:?}"),
    };
    // POSIX errors come back as such.
    let again = call(
        &mut session,
        MetaOp::Mkdir {
            parent: ROOT,
            name: b"storm".to_vec(),
            mode: 0o755,
        },
    )
    .await
    .unwrap();
    assert_eq!(again, Err(Errno::EEXIST));
    let bad = call(
        &mut session,
        MetaOp::Mkdir {
            parent: ROOT,
            name: b"a/b".to_vec(),
            mode: 0o755,
        },
    )
    .await
    .unwrap();
    assert_eq!(bad, Err(Errno::EINVAL));

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<(Vec<String>, Vec<String>)>> = Arc::default();
    let mut writer = cluster.client().await.session();
    let (s, log) = (stop.clone(), acked.clone());
    let w = tokio::spawn(async move {
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
            match call(&mut writer, op).await {
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
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (minister, _) = cluster.ministry(1).await.expect("a minister");
    cluster.kill(minister);
    cluster.wait_serving(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    w.await.expect("writer");
    cluster.start(minister);

    let (acked, unknown) = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the storm made progress: {}", acked.len());
    let present = names(&mut session, storm).await;
    for name in &acked {
        assert!(present.contains(name), "acknowledged create {name} lost");
    }
    let known: BTreeSet<String> = acked.iter().chain(&unknown).cloned().collect();
    assert!(present.is_subset(&known), "files nobody created appeared");
    // Lookups agree with the listing.
    let first = acked.first().unwrap().clone();
    match call(
        &mut session,
        MetaOp::LookupPath {
            path: format!("/storm/{first}").into_bytes(),
            follow: true,
        },
    )
    .await
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
