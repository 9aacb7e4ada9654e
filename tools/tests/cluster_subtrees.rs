//! Subtrees across ministries on real nodes, through the `govfs` CLI: a
//! split gives a directory to a new ministry and paths keep resolving;
//! creates under it land in the new ministry; renames cross ministries both
//! ways; removing a directory another ministry holds goes through the
//! president (refused while not empty); and SIGKILL of the source's minister
//! or of the president in the middle of a split leaves every file exactly
//! once, in one ministry.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{TestCluster, GOVFS};

fn fs(cluster: &TestCluster, args: &[&str]) -> Output {
    let addrs: Vec<String> = cluster.addrs.iter().map(|a| a.to_string()).collect();
    Command::new(GOVFS)
        .args(args)
        .env("GOVFS_CLUSTER", addrs.join(","))
        .env("GOVFS_KEY_FILE", cluster.path().join("cluster.key"))
        .output()
        .expect("run govfs")
}

/// Runs a command that must succeed; returns its stdout.
fn ok(cluster: &TestCluster, args: &[&str]) -> String {
    let out = fs(cluster, args);
    assert!(
        out.status.success(),
        "govfs {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns its stderr.
fn fails(cluster: &TestCluster, args: &[&str]) -> String {
    let out = fs(cluster, args);
    assert!(!out.status.success(), "govfs {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The inode's ministry: each ministry numbers its inodes from `id << 40`.
fn ministry_of_ino(stat: &str) -> u64 {
    let ino: u64 = stat
        .lines()
        .find_map(|l| l.trim().strip_prefix("ino:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("stat prints the inode");
    ino >> 40
}

#[test]
fn split_rename_across_and_remove_a_root() {
    let cluster = TestCluster::up_with(6, 1, "meta");
    ok(&cluster, &["mkdir", "-p", "/home/ada/papers"]);
    ok(&cluster, &["touch", "/home/ada/papers/a.tex"]);
    ok(&cluster, &["mkdir", "/home/bob"]);
    ok(&cluster, &["touch", "/home/bob/notes"]);

    let out = ok(&cluster, &["ministry", "split", "/home/ada"]);
    assert!(out.contains("held by ministry 2"), "{out}");
    // Splitting it again is refused; the paths still resolve.
    assert!(fails(&cluster, &["ministry", "split", "/home/ada"]).contains("already held"));
    let tree = ok(&cluster, &["tree", "/"]);
    assert_eq!(
        tree,
        "/\n  home/\n    ada/\n      papers/\n        a.tex\n    bob/\n      notes\n"
    );
    // A new file under the split directory is made by the new ministry.
    ok(&cluster, &["touch", "/home/ada/papers/b.tex"]);
    assert_eq!(
        ministry_of_ino(&ok(&cluster, &["stat", "/home/ada/papers/b.tex"])),
        2
    );
    assert_eq!(
        ministry_of_ino(&ok(&cluster, &["stat", "/home/bob/notes"])),
        1
    );

    // Renames across ministries, a file one way and a directory the other.
    ok(&cluster, &["mv", "/home/bob/notes", "/home/ada/notes"]);
    ok(&cluster, &["mv", "/home/ada/papers", "/home/bob/papers"]);
    let tree = ok(&cluster, &["tree", "/"]);
    assert_eq!(
        tree,
        "/\n  home/\n    ada/\n      notes\n    bob/\n      papers/\n        a.tex\n        b.tex\n"
    );
    assert!(fails(&cluster, &["stat", "/home/bob/notes"]).contains("ENOENT"));
    // A rename onto an existing name in another ministry is refused and undone.
    ok(&cluster, &["touch", "/home/bob/notes2"]);
    ok(&cluster, &["touch", "/home/ada/notes2"]);
    assert!(fails(&cluster, &["mv", "/home/bob/notes2", "/home/ada/notes2"]).contains("EEXIST"));
    ok(&cluster, &["stat", "/home/bob/notes2"]);

    // Removing the split directory: refused while not empty, then done.
    assert!(fails(&cluster, &["rm", "/home/ada"]).contains("ENOTEMPTY"));
    ok(&cluster, &["rm", "/home/ada/notes"]);
    ok(&cluster, &["rm", "/home/ada/notes2"]);
    ok(&cluster, &["rm", "/home/ada"]);
    let tree = ok(&cluster, &["tree", "/"]);
    assert_eq!(
        tree,
        "/\n  home/\n    bob/\n      notes2\n      papers/\n        a.tex\n        b.tex\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_splits_leaves_every_file_once() {
    let cluster = TestCluster::up_with(9, 1, "meta");
    let mut expected = String::from("/\n  data/\n");
    for d in 0..2 {
        ok(&cluster, &["mkdir", "-p", &format!("/data/d{d}")]);
        expected += &format!("    d{d}/\n");
        for f in 0..6 {
            ok(&cluster, &["touch", &format!("/data/d{d}/f{f}")]);
            expected += &format!("      f{f}\n");
        }
    }
    for (d, victim) in ["minister", "president"].iter().enumerate() {
        let path = format!("/data/d{d}");
        let addrs: Vec<String> = cluster.addrs.iter().map(|a| a.to_string()).collect();
        let split = Command::new(GOVFS)
            .args(["ministry", "split", &path])
            .env("GOVFS_CLUSTER", addrs.join(","))
            .env("GOVFS_KEY_FILE", cluster.path().join("cluster.key"))
            .spawn()
            .expect("start the split");
        tokio::time::sleep(Duration::from_millis(60)).await;
        // The node restarted after the last round may be holding an
        // election just now: wait for the victim to be known.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let node = loop {
            let found = match *victim {
                "minister" => cluster.ministry(1).await.map(|m| m.0),
                _ => cluster.president().await,
            };
            if let Some(node) = found {
                break node;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {victim} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("split of {path}: SIGKILL the {victim} (node {node})");
        cluster.kill(node);
        let out = tokio::task::spawn_blocking(move || split.wait_with_output())
            .await
            .unwrap()
            .expect("split finishes");
        assert!(
            out.status.success(),
            "the split survives the SIGKILL of the {victim}"
        );
        cluster.start(node);
        cluster.wait_serving(1, Duration::from_secs(30)).await;
        assert_eq!(
            ok(&cluster, &["tree", "/"]),
            expected,
            "after the {victim}'s SIGKILL"
        );
        let stat = ok(&cluster, &["stat", &format!("{path}/f0")]);
        assert_ne!(ministry_of_ino(&stat), 0);
    }
    // Both subtrees now live in ministries of their own (a node that just
    // restarted may still be catching up with the president's log).
    let c = cluster.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let held = loop {
        let map = c.map().await.expect("map");
        let held: Option<Vec<u64>> = ["/data/d0", "/data/d1"]
            .iter()
            .map(|p| map.transfers.subtrees.get(p.as_bytes()).map(|s| s.ministry))
            .collect();
        match held {
            Some(h) => break h,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => panic!("the map does not show both subtrees: {:?}", map.transfers),
        }
    };
    assert!(
        held.iter().all(|m| *m != 1) && held[0] != held[1],
        "{held:?}"
    );
}
