//! Helpers for tests that need real hardware. So far only RDMA device
//! discovery through sysfs; the RDMA transport these tests will exercise
//! (DESIGN.md section 6) is not built yet.

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
