//! The namespace state machine alone, in one thread: how fast a ministry can
//! apply creates and answer stats and readdirs once the log has delivered
//! them. An upper bound for `govfs bench meta` (which adds consensus and the
//! network), not a replacement for it.
//!
//! `cargo bench -p govfs-benches --bench namespace`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use govfs_core::meta::{
    ChangeFeed, Credentials, Ino, MetaOp, MetaRequest, Namespace, DEFAULT_FEED_CAP, ROOT,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FILES: u64 = 50_000;

fn request(op: MetaOp) -> MetaRequest {
    MetaRequest {
        op,
        creds: Credentials::root(),
        now: 1_700_000_000_000_000_000,
    }
}

/// A namespace with `dirs` directories under the root and inode numbers granted.
fn namespace(dirs: u64) -> (Namespace, Vec<Ino>, u64) {
    let mut ns = Namespace::new(ROOT, ChangeFeed::new(DEFAULT_FEED_CAP));
    let mut index = 1;
    ns.execute(
        index,
        &request(MetaOp::GrantInodes {
            start: 2,
            count: 1 << 40,
        }),
    )
    .expect("grant");
    let mut parents = Vec::new();
    for d in 0..dirs {
        index += 1;
        let op = MetaOp::Mkdir {
            parent: ROOT,
            name: format!("d{d}").into_bytes(),
            mode: 0o755,
        };
        match ns.execute(index, &request(op)).expect("mkdir") {
            govfs_core::meta::MetaReply::Attr(a) => parents.push(a.ino),
            other => panic!("mkdir answered {other:?}"),
        }
    }
    (ns, parents, index)
}

fn create_all(ns: &mut Namespace, parents: &[Ino], mut index: u64) -> u64 {
    for i in 0..FILES {
        index += 1;
        let parent = parents[(i as usize) % parents.len()];
        let op = MetaOp::Create {
            parent,
            name: format!("f{i}").into_bytes(),
            mode: 0o644,
            exclusive: true,
            layout: None,
        };
        black_box(ns.execute(index, &request(op)).expect("create"));
    }
    index
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("namespace");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(FILES));
    for dirs in [1u64, 64] {
        g.bench_function(format!("create {FILES} files in {dirs} dir(s)"), |b| {
            b.iter_batched(
                || namespace(dirs),
                |(mut ns, parents, index)| create_all(&mut ns, &parents, index),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    let (mut ns, parents, index) = namespace(64);
    create_all(&mut ns, &parents, index);
    // Directories took inodes 2..=65; the files follow.
    let inos: Vec<Ino> = (0..FILES).map(|i| Ino(2 + 64 + i)).collect();
    for ino in [inos[0], inos[inos.len() - 1]] {
        let attr = ns.stat(ino).expect("the benchmark stats live files");
        assert_eq!(attr.kind, govfs_core::meta::FileType::File);
    }
    g.bench_function(format!("stat {FILES} files"), |b| {
        b.iter(|| {
            for ino in &inos {
                let _ = black_box(ns.stat(*ino));
            }
        })
    });
    let creds = Credentials::root();
    g.bench_function(format!("readdir {FILES} entries in pages of 1024"), |b| {
        b.iter(|| {
            let mut n = 0;
            for dir in &parents {
                let mut after: Option<Vec<u8>> = None;
                loop {
                    let page = ns
                        .readdir(&creds, *dir, after.as_deref(), 1024)
                        .expect("readdir");
                    n += page.entries.len();
                    match page.entries.last() {
                        Some(last) if page.more => after = Some(last.name.clone()),
                        _ => break,
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
