//! The C examples, built with the system's C compiler against the library
//! this crate makes (shared through pkg-config, and static), run against a
//! real local cluster of `govfs node` processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

#[test]
fn hello_c_runs_against_a_real_cluster_linked_both_ways() {
    let profile = profile_dir();
    let release = profile.file_name().is_some_and(|n| n == "release");
    // This crate's libraries and govfs.pc come with its own build; the
    // node binary comes with `cargo test --workspace` (the tools' tests
    // need it). Run alone, build what is missing.
    let needed = ["govfs", "libgovfs_ffi.so", "libgovfs_ffi.a", "govfs.pc"];
    if needed.iter().any(|f| !profile.join(f).exists()) {
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
    }
    let govfs = profile.join("govfs");
    assert!(govfs.exists(), "{} missing", govfs.display());
    assert!(
        profile.join("govfs.pc").exists(),
        "build.rs writes govfs.pc"
    );

    let work = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.c");
    // Shared library, through pkg-config.
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "govfs"])
        .env("PKG_CONFIG_PATH", &profile));
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let shared = work.path().join("hello-shared");
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(&example)
        .args(flags.split_whitespace())
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

    let cluster = Cluster {
        govfs: govfs.clone(),
        dir: tempfile::Builder::new()
            .prefix("govfs-c-")
            .tempdir()
            .unwrap(),
    };
    let up = run(Command::new(&govfs)
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
    let key = cluster.dir.path().join("cluster.key");
    for (name, exe) in [("shared", &shared), ("static", &fixed)] {
        let out = run(Command::new(exe)
            .env("GOVFS_CLUSTER", &addrs)
            .env("GOVFS_KEY_FILE", &key)
            .env("LD_LIBRARY_PATH", &profile));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("all ok"), "hello ({name}):\n{text}");
        assert!(
            text.contains("greeting") && text.contains("no such file"),
            "hello ({name}) lists the directory and shows the ENOENT message:\n{text}"
        );
    }
}
