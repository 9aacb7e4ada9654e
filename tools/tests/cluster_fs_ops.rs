//! Every namespace operation and every error of issue 4, through the
//! client's `FileSystem` on real node processes (3 nodes, one ministry of
//! 3, the namespace app): reads from any member with session consistency
//! (a handle reads its own writes at once, from clerks too) and through the
//! log; bad names and paths refused with nothing changed; permissions from
//! the presented credentials.

mod common;

use common::TestCluster;
use govfs_client::{FileSystem, FsError, FsOptions, ReadConsistency};
use govfs_core::meta::{Credentials, Errno, FileType, MetaOp, SetAttr, TimeSet, XattrHow, ROOT};

const DIR: u32 = 0o755;
const FILE: u32 = 0o644;

#[track_caller]
fn errno<T: std::fmt::Debug>(r: Result<T, FsError>, want: Errno) {
    match r {
        Err(FsError::Errno { errno, .. }) if errno == want => {}
        other => panic!("want {want:?}, got {other:?}"),
    }
}

async fn names(fs: &mut FileSystem, path: &str) -> Vec<String> {
    fs.readdir(path)
        .await
        .unwrap_or_else(|e| panic!("readdir {path}: {e}"))
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_error_on_a_real_cluster() {
    let cluster = TestCluster::up_with(3, 1, "meta");
    let client = cluster.client().await;
    let mut fs = FileSystem::new(client.clone(), FsOptions::default());
    let mut lin = FileSystem::new(
        client.clone(),
        FsOptions {
            reads: ReadConsistency::Linearizable,
            ..FsOptions::default()
        },
    );

    // mkdir, mkdir -p, create, exclusive create; reads see them at once.
    fs.mkdir("/proj", DIR).await.expect("mkdir");
    fs.mkdir_all("/proj/a/b/c", DIR).await.expect("mkdir -p");
    fs.mkdir_all("/proj/a/b", DIR)
        .await
        .expect("mkdir -p of an existing dir");
    let (f, created) = fs.create("/proj/a/f", FILE, true).await.expect("create");
    assert!(created);
    assert_eq!(f.kind, FileType::File);
    let (again, created) = fs.create("/proj/a/f", FILE, false).await.expect("O_CREAT");
    assert!(!created, "O_CREAT of an existing file finds it");
    assert_eq!(again.ino, f.ino);
    errno(fs.create("/proj/a/f", FILE, true).await, Errno::EEXIST);
    errno(fs.mkdir("/proj/a", DIR).await, Errno::EEXIST);
    errno(fs.mkdir_all("/proj/a/f/x", DIR).await, Errno::ENOTDIR);
    assert_eq!(fs.stat("/proj/a/f").await.unwrap().ino, f.ino);
    assert_eq!(lin.stat("/proj/a/f").await.unwrap().ino, f.ino);
    // Read-your-writes from every member: reads are spread over them.
    for _ in 0..6 {
        assert_eq!(fs.stat("/proj/a/b/c").await.unwrap().kind, FileType::Dir);
    }
    // A stat shows the change feed's sequence numbers.
    let d = fs.stat("/proj/a").await.unwrap();
    assert!(d.meta_seq > 0 && d.data_seq >= d.meta_seq, "{d:?}");

    // Lookup errors.
    errno(fs.stat("/proj/nope").await, Errno::ENOENT);
    errno(fs.stat("/proj/a/f/x").await, Errno::ENOTDIR);

    // readdir: direct children only, in name order, paged.
    fs.mkdir("/proj/many", DIR).await.unwrap();
    for i in 0..30 {
        fs.create(&format!("/proj/many/{i:02}"), FILE, true)
            .await
            .unwrap();
    }
    fs.mkdir("/proj/many/sub", DIR).await.unwrap();
    fs.create("/proj/many/sub/deep", FILE, true).await.unwrap();
    let all = names(&mut fs, "/proj/many").await;
    assert_eq!(all.len(), 31, "direct children only: {all:?}");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    let (page, more) = fs.readdir_page("/proj/many", None, 10).await.unwrap();
    assert_eq!(page.len(), 10);
    assert!(more);
    let after = page.last().unwrap().name.clone();
    let (page2, _) = fs
        .readdir_page("/proj/many", Some(after), 10)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&page2[0].name), "10");
    errno(fs.readdir("/proj/a/f").await, Errno::ENOTDIR);

    // unlink and rmdir.
    errno(fs.rmdir("/proj/many").await, Errno::ENOTEMPTY);
    errno(fs.unlink("/proj/many/sub").await, Errno::EISDIR);
    errno(fs.rmdir("/proj/many/00").await, Errno::ENOTDIR);
    errno(fs.unlink("/proj/many/none").await, Errno::ENOENT);
    fs.unlink("/proj/many/00").await.unwrap();
    errno(fs.stat("/proj/many/00").await, Errno::ENOENT);
    fs.unlink("/proj/many/sub/deep").await.unwrap();
    fs.rmdir("/proj/many/sub").await.unwrap();
    assert_eq!(names(&mut fs, "/proj/many").await.len(), 29);

    // rename: plain, over an existing file, never a cycle.
    fs.rename("/proj/many/01", "/proj/one", false)
        .await
        .unwrap();
    errno(fs.stat("/proj/many/01").await, Errno::ENOENT);
    let two = fs.stat("/proj/many/02").await.unwrap();
    fs.rename("/proj/many/02", "/proj/one", false)
        .await
        .expect("rename over an existing file");
    assert_eq!(fs.stat("/proj/one").await.unwrap().ino, two.ino);
    errno(
        fs.rename("/proj/many/03", "/proj/one", true).await,
        Errno::EEXIST,
    );
    errno(
        fs.rename("/proj/a", "/proj/a/b/c/x", false).await,
        Errno::EINVAL,
    );
    errno(
        fs.rename("/proj/a", "/proj/one", false).await,
        Errno::ENOTDIR,
    );
    errno(
        fs.rename("/proj/one", "/proj/a", false).await,
        Errno::EISDIR,
    );
    errno(
        fs.rename("/proj/a", "/proj/many", false).await,
        Errno::ENOTEMPTY,
    );
    errno(
        fs.rename("/proj/ghost", "/proj/x", false).await,
        Errno::ENOENT,
    );

    // link, symlink, readlink.
    let l = fs.link("/proj/one", "/proj/one-again").await.unwrap();
    assert_eq!(l.ino, two.ino);
    assert_eq!(l.nlink, 2);
    errno(fs.link("/proj/a", "/proj/a-link").await, Errno::EPERM);
    errno(fs.link("/proj/one", "/proj/one-again").await, Errno::EEXIST);
    let s = fs.symlink("/proj/one", "/proj/sym").await.unwrap();
    assert_eq!(s.kind, FileType::Symlink);
    assert_eq!(fs.readlink("/proj/sym").await.unwrap(), b"/proj/one");
    assert_eq!(
        fs.stat("/proj/sym").await.unwrap().ino,
        two.ino,
        "stat follows"
    );
    assert_eq!(fs.lstat("/proj/sym").await.unwrap().kind, FileType::Symlink);
    errno(fs.readlink("/proj/one").await, Errno::EINVAL);
    fs.symlink("/proj/loop2", "/proj/loop1").await.unwrap();
    fs.symlink("/proj/loop1", "/proj/loop2").await.unwrap();
    errno(fs.stat("/proj/loop1").await, Errno::ELOOP);

    // setattr: chmod, chown, truncate, utimens.
    assert_eq!(fs.chmod("/proj/one", 0o600).await.unwrap().mode, 0o600);
    let o = fs.chown("/proj/one", Some(1000), Some(1000)).await.unwrap();
    assert_eq!((o.uid, o.gid), (1000, 1000));
    assert_eq!(fs.truncate("/proj/one", 4096).await.unwrap().size, 4096);
    errno(fs.truncate("/proj/a", 1).await, Errno::EISDIR);
    let t = fs
        .utimens("/proj/one", Some(TimeSet::At(7)), Some(TimeSet::At(9)))
        .await
        .unwrap();
    assert_eq!((t.atime, t.mtime), (7, 9));
    errno(
        fs.setattr("/proj/nope", SetAttr::default()).await,
        Errno::ENOENT,
    );

    // statfs and extended attributes.
    let st = fs.statfs("/").await.unwrap();
    assert!(
        st.inodes >= 30 && st.free_inodes > 0 && st.name_max == 255,
        "{st:?}"
    );
    fs.setxattr("/proj/one", b"user.tag", b"blue", XattrHow::Create)
        .await
        .unwrap();
    errno(
        fs.setxattr("/proj/one", b"user.tag", b"red", XattrHow::Create)
            .await,
        Errno::EEXIST,
    );
    errno(
        fs.setxattr("/proj/one", b"user.none", b"x", XattrHow::Replace)
            .await,
        Errno::ENODATA,
    );
    assert_eq!(
        fs.getxattr("/proj/one", b"user.tag").await.unwrap(),
        b"blue"
    );
    assert_eq!(
        fs.listxattr("/proj/one").await.unwrap(),
        vec![b"user.tag".to_vec()]
    );
    fs.removexattr("/proj/one", b"user.tag").await.unwrap();
    errno(fs.getxattr("/proj/one", b"user.tag").await, Errno::ENODATA);

    // Bad names and paths: each its error, nothing changed.
    let before = names(&mut fs, "/").await;
    let bad: [(&[u8], Errno); 6] = [
        (b"", Errno::EINVAL),
        (b"a/b", Errno::EINVAL),
        (b"a\0b", Errno::EINVAL),
        (b".", Errno::EEXIST),
        (b"..", Errno::EEXIST),
        (&[b'n'; 256], Errno::ENAMETOOLONG),
    ];
    for (name, want) in bad {
        let op = MetaOp::Mkdir {
            parent: ROOT,
            name: name.to_vec(),
            mode: DIR,
        };
        errno(fs.call(1, op, "(raw mkdir)").await, want);
    }
    errno(fs.unlink("/proj/..").await, Errno::EINVAL);
    let long = format!("/{}", "x".repeat(255));
    errno(
        fs.mkdir(&format!("{long}y"), DIR).await,
        Errno::ENAMETOOLONG,
    );
    let too_long = format!("/{}", ["d"; 3000].join("/"));
    assert_eq!(
        fs.stat(&too_long).await.unwrap_err().errno(),
        Errno::ENAMETOOLONG.errno()
    );
    assert!(matches!(
        fs.stat("relative/path").await,
        Err(FsError::BadPath { .. })
    ));
    assert_eq!(
        names(&mut fs, "/").await,
        before,
        "bad input changed nothing"
    );

    // Permissions from the credentials presented.
    fs.mkdir("/home", DIR).await.unwrap();
    fs.mkdir("/home/ada", 0o700).await.unwrap();
    fs.chown("/home/ada", Some(1000), Some(1000)).await.unwrap();
    let user = |uid| FsOptions {
        creds: Credentials::user(uid, uid),
        ..FsOptions::default()
    };
    let mut ada = FileSystem::new(client.clone(), user(1000));
    let mut bob = FileSystem::new(client.clone(), user(1001));
    ada.create("/home/ada/notes", FILE, true).await.unwrap();
    errno(ada.mkdir("/home/not-hers", DIR).await, Errno::EACCES);
    errno(bob.stat("/home/ada/notes").await, Errno::EACCES);
    errno(bob.readdir("/home/ada").await, Errno::EACCES);
    errno(bob.chmod("/proj/one", 0o777).await, Errno::EPERM);
    errno(
        ada.chown("/home/ada/notes", Some(0), None).await,
        Errno::EPERM,
    );
    errno(bob.access("/home/ada", 1).await, Errno::EACCES);
    ada.access("/home/ada/notes", 6).await.unwrap();

    // The change feed lists what changed under a directory since an index.
    let changes = fs.changes("/home", 0).await.unwrap();
    let named: Vec<String> = changes
        .iter()
        .map(|c| String::from_utf8_lossy(&c.name).into_owned())
        .collect();
    assert!(
        named.iter().any(|n| n == "notes") && named.iter().any(|n| n == "ada"),
        "{named:?}"
    );
    assert!(
        !named.iter().any(|n| n == "one"),
        "nothing from outside /home: {named:?}"
    );
    let last = changes.iter().map(|c| c.index).max().unwrap();
    assert!(fs.changes("/home", last).await.unwrap().is_empty());
    errno(ada.changes("/home", 0).await, Errno::EACCES);

    // The linearizable handle agrees with the session one.
    assert_eq!(
        names(&mut lin, "/proj").await,
        names(&mut fs, "/proj").await
    );
}
