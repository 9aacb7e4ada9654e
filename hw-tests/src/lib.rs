//! Helpers for tests that need real hardware: RDMA device discovery through
//! sysfs, and the skip rule every hardware test follows. The RDMA transport
//! they exercise is `govfs_net::rdma` (feature `rdma`).

use std::path::Path;

/// Where the kernel lists RDMA devices (InfiniBand, RoCE, soft-RoCE `rxe`).
pub const INFINIBAND_CLASS_DIR: &str = "/sys/class/infiniband";

/// Names of the RDMA devices on this machine (for example `mlx5_0` or
/// `rxe0`), sorted; empty when there are none or the directory is missing.
pub fn rdma_devices() -> Vec<String> {
    rdma_devices_in(Path::new(INFINIBAND_CLASS_DIR))
}

/// Like [`rdma_devices`], reading a sysfs-style class directory at `dir`.
pub fn rdma_devices_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort_unstable();
    names
}

/// The line a test prints (to stderr) when it skips for want of a device.
pub const SKIP_NO_RDMA: &str = "SKIPPED: no RDMA device (see hw-tests/setup-soft-roce.sh)";

/// The first RDMA device, or `None` after printing [`SKIP_NO_RDMA`] and
/// the test's name to stderr: a hardware test calls this first and
/// returns when it gets `None`.
pub fn rdma_device_or_skip(test: &str) -> Option<String> {
    let device = rdma_devices().into_iter().next();
    if device.is_none() {
        eprintln!("{SKIP_NO_RDMA}: {test}");
    }
    device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_means_no_devices() {
        let dir = tempfile::tempdir().unwrap();
        assert!(rdma_devices_in(&dir.path().join("infiniband")).is_empty());
    }

    #[test]
    fn lists_device_entries_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["rxe1", "mlx5_0", "rxe0"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        assert_eq!(rdma_devices_in(dir.path()), ["mlx5_0", "rxe0", "rxe1"]);
    }
}
