//! The C examples, built with the system's C compiler against the library
//! this crate makes (shared through pkg-config, and static), run against a
//! real local cluster of `govfs node` processes: hello.c (the namespace),
//! files.c (file calls, async writes, error paths) and, with Open MPI's
//! `mpicc` and `mpirun`, mpi_rows.c (2 ranks writing one shared file under
//! region leases, and a file each).
//!
//! Without `mpicc` or `mpirun` the MPI test prints a SKIPPED line and
//! passes, unless `GOVFS_REQUIRE_MPI=1` is set (for CI, where it must run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>`, from this test's own path (`.../deps/c_examples-*`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stops the cluster however the test ends.
struct Cluster {
    govfs: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.govfs)
            .args(["cluster", "down", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

/// The C libraries, govfs.pc and the node binary, built now: `cargo
/// test` builds this crate as an rlib only, so a `.so` or `.a` left by an
/// earlier build could be stale (and speak an older wire format than the
/// nodes). Cargo makes this a no-op when they are fresh. Returns
/// `target/<profile>` and the `govfs` binary.
fn prepare() -> (PathBuf, PathBuf) {
    let profile = profile_dir();
    let release = profile.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "-p",
        "govfs-ffi",
        "-p",
        "govfs-tools",
        "--bin",
        "govfs",
        "--lib",
    ]);
    if release {
        build.arg("--release");
    }
    run(&mut build);
    let govfs = profile.join("govfs");
    assert!(govfs.exists(), "{} missing", govfs.display());
    assert!(
        profile.join("govfs.pc").exists(),
        "build.rs writes govfs.pc"
    );
    (profile, govfs)
}

/// `pkg-config --cflags --libs govfs` against this build's govfs.pc.
fn pkg_config_flags(profile: &Path) -> Vec<String> {
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "govfs"])
        .env("PKG_CONFIG_PATH", profile));
    String::from_utf8_lossy(&flags.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

impl Cluster {
    /// `govfs cluster up`: 3 nodes on loopback running the namespace and
    /// storage. Returns the cluster and its `GOVFS_CLUSTER` addresses.
    fn up(govfs: &Path) -> (Cluster, String) {
        let cluster = Cluster {
            govfs: govfs.to_path_buf(),
            dir: tempfile::Builder::new()
                .prefix("govfs-c-")
                .tempdir()
                .unwrap(),
        };
        let up = run(Command::new(govfs)
            .args([
                "cluster", "up", "--nodes", "3", "--app", "meta", "--wait", "60", "--dir",
            ])
            .arg(cluster.dir.path()));
        let stdout = String::from_utf8_lossy(&up.stdout);
        let addrs = stdout
            .lines()
            .find_map(|l| l.strip_prefix("GOVFS_CLUSTER="))
            .expect("GOVFS_CLUSTER line")
            .to_string();
        (cluster, addrs)
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("cluster.key")
    }
}

/// Runs `cmd` to its end, killing it after `limit`; asserts success.
fn run_for(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} ran over {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether `tool --version` runs.
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn hello_c_runs_against_a_real_cluster_linked_both_ways() {
    let (profile, govfs) = prepare();
    let work = tempfile::tempdir().unwrap();
    let example = example("hello.c");
    // Shared library, through pkg-config.
    let shared = work.path().join("hello-shared");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(&example)
        .args(pkg_config_flags(&profile))
        .arg("-o")
        .arg(&shared));
    // Static library.
    let fixed = work.path().join("hello-static");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(format!(
            "-I{}",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("include")
                .display()
        ))
        .arg(&example)
        .arg(profile.join("libgovfs_ffi.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&fixed));

    let (cluster, addrs) = Cluster::up(&govfs);
    for (name, exe) in [("shared", &shared), ("static", &fixed)] {
        let out = run(Command::new(exe)
            .env("GOVFS_CLUSTER", &addrs)
            .env("GOVFS_KEY_FILE", cluster.key())
            .env("LD_LIBRARY_PATH", &profile));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("all ok"), "hello ({name}):\n{text}");
        assert!(
            text.contains("greeting") && text.contains("no such file"),
            "hello ({name}) lists the directory and shows the ENOENT message:\n{text}"
        );
    }
}

/// files.c, then mpi_rows.c with 2 ranks (shared file, then a file per
/// rank), on one cluster.
#[test]
fn file_calls_and_mpi_rows_run_against_a_real_cluster() {
    let (profile, govfs) = prepare();
    let work = tempfile::tempdir().unwrap();
    let flags = pkg_config_flags(&profile);
    let files = work.path().join("files");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg(example("files.c"))
        .args(&flags)
        .arg("-o")
        .arg(&files));
    let mpi = have("mpicc") && have("mpirun");
    let mpi_rows = work.path().join("mpi_rows");
    if mpi {
        run(Command::new("mpicc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
            .arg(example("mpi_rows.c"))
            .args(&flags)
            .arg("-o")
            .arg(&mpi_rows));
    }

    let (cluster, addrs) = Cluster::up(&govfs);
    let out = run_for(
        Command::new(&files)
            .env("GOVFS_CLUSTER", &addrs)
            .env("GOVFS_KEY_FILE", cluster.key())
            .env("LD_LIBRARY_PATH", &profile),
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("all ok"), "files.c:\n{text}");
    assert!(
        text.contains("outside the granted range"),
        "files.c shows why a write outside the region was refused:\n{text}"
    );

    if !mpi {
        assert!(
            std::env::var_os("GOVFS_REQUIRE_MPI").is_none(),
            "GOVFS_REQUIRE_MPI is set but mpicc or mpirun is missing"
        );
        eprintln!("SKIPPED mpi_rows.c: mpicc or mpirun not found (apt-get install openmpi-bin libopenmpi-dev)");
        return;
    }
    for mode in ["shared", "fpp"] {
        let out = run_for(
            Command::new("mpirun")
                .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
                .args(["-x", "GOVFS_CLUSTER", "-x", "GOVFS_KEY_FILE"])
                .args(["-x", "LD_LIBRARY_PATH"])
                .arg(&mpi_rows)
                .args([mode, "32", "65536"])
                .env("GOVFS_CLUSTER", &addrs)
                .env("GOVFS_KEY_FILE", cluster.key())
                .env("LD_LIBRARY_PATH", &profile),
            Duration::from_secs(180),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        eprint!("{text}");
        assert!(
            text.contains(&format!("OK: {mode}, 2 ranks, every byte verified")),
            "mpi_rows {mode}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("4194304 bytes verified"),
            "2 ranks x 32 rows x 64 KiB read back:\n{text}"
        );
    }
}
