//! The checked-in header is what cbindgen makes from the crate now.
//! `GOVFS_BLESS=1 cargo test -p govfs-ffi --test header` rewrites it.

#[test]
fn the_checked_in_header_is_current() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = format!("{dir}/include/govfs.h");
    if std::env::var_os("GOVFS_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write the header");
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{path} is stale: run GOVFS_BLESS=1 cargo test -p govfs-ffi --test header\n--- generated ---\n{}",
        String::from_utf8_lossy(&fresh)
    );
}
