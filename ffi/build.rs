//! Writes `govfs.pc` next to the libraries (`target/<profile>/`), so a C
//! program builds with `pkg-config --cflags --libs govfs` and
//! `PKG_CONFIG_PATH=target/release`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let Some(profile_dir) = out.ancestors().nth(3).map(Path::to_path_buf) else {
        println!(
            "cargo:warning=unexpected OUT_DIR {}; no govfs.pc written",
            out.display()
        );
        return;
    };
    let version = std::env::var("CARGO_PKG_VERSION").expect("set by cargo");
    let pc = format!(
        "libdir={lib}\nincludedir={inc}\n\nName: govfs\nDescription: GovFS client C API\nVersion: {version}\nCflags: -I${{includedir}}\nLibs: -L${{libdir}} -lgovfs_ffi\nLibs.private: -lpthread -ldl -lm\n",
        lib = profile_dir.display(),
        inc = manifest.join("include").display(),
    );
    if let Err(e) = std::fs::write(profile_dir.join("govfs.pc"), pc) {
        println!("cargo:warning=cannot write govfs.pc: {e}");
    }
}
