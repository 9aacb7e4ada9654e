//! Runs everywhere; does real checks only on a machine with an RDMA device.

use std::path::Path;

use govfs_hw_tests::{rdma_devices, INFINIBAND_CLASS_DIR};

#[test]
fn rdma_device_present_or_skip() {
    let devices = rdma_devices();
    if devices.is_empty() {
        println!(
            "SKIPPED: no RDMA device found under {INFINIBAND_CLASS_DIR}; \
             run hw-tests/setup-soft-roce.sh IFACE on a machine with the rdma_rxe module"
        );
        return;
    }
    for device in &devices {
        let ports = Path::new(INFINIBAND_CLASS_DIR).join(device).join("ports");
        let entries = std::fs::read_dir(&ports)
            .unwrap_or_else(|err| panic!("RDMA device {device}: cannot read {ports:?}: {err}"));
        let count = entries.count();
        println!("RDMA device {device}: {count} port(s)");
    }
}
