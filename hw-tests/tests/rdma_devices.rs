//! Runs everywhere; does real checks only on a machine with an RDMA device.

use std::path::Path;

use govfs_hw_tests::{rdma_device_or_skip, rdma_devices, INFINIBAND_CLASS_DIR};

#[test]
fn rdma_device_present_or_skip() {
    if rdma_device_or_skip("rdma_device_present_or_skip").is_none() {
        return;
    }
    let devices = rdma_devices();
    for device in &devices {
        let ports = Path::new(INFINIBAND_CLASS_DIR).join(device).join("ports");
        let entries = std::fs::read_dir(&ports)
            .unwrap_or_else(|err| panic!("RDMA device {device}: cannot read {ports:?}: {err}"));
        let count = entries.count();
        assert!(count > 0, "RDMA device {device} lists no ports");
        println!("RDMA device {device}: {count} port(s)");
    }
}
