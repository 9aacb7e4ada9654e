use super::*;

#[test]
fn bytes_per_inode_of_plain_files_is_under_200() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let creds = root();
    for i in 0..5_000 {
        let req = MetaRequest {
            op: MetaOp::Create {
                parent: d,
                name: format!("file-{i:06}").into_bytes(),
                mode: 0o644,
                exclusive: true,
                layout: None,
            },
            creds: creds.clone(),
            now: 1,
        };
        fx.index += 1;
        fx.ns.execute(fx.index, &req).expect("create");
    }
    let per = fx.ns.bytes_per_inode();
    println!(
        "estimated bytes per plain file: {per} (inode table entry {} bytes)",
        80
    );
    assert!(per < 200, "{per} bytes per inode");
}
