//! The RDMA verbs transport (cargo feature `rdma`): a safe wrapper over
//! libibverbs (through `rdma-sys`) and a [`Connection`] built on it.
//!
//! Layers, each holding an `Arc` to the one below so nothing is destroyed
//! while something made from it lives:
//!
//! - [`DeviceList`], [`Device`] and [`Context`] (an opened device, port and
//!   GID queries);
//! - [`ProtectionDomain`] and [`MemoryRegion`] (an owned, page-aligned,
//!   registered buffer exposing addr, lkey and rkey);
//! - [`CompletionQueue`], polled, returning [`Completion`]s (opcode, byte
//!   length, immediate value) or [`RdmaError::Completion`] with the verbs
//!   status;
//! - [`QueuePair`]: reliable connected, RESET -> INIT -> RTR -> RTS, posting
//!   sends, receives and RDMA writes with immediate;
//! - [`Connection`]: set up by exchanging [`EndpointInfo`] (qpn, psn, lid,
//!   gid, mtu, and the rkey/addr/len of the buffer the peer may write into)
//!   over an already-connected `TcpStream`; data moves by
//!   [`Connection::write_with_imm`] into the peer's registered buffer
//!   (bounds checked before posting), control messages by
//!   [`Connection::send`] into receives the connection keeps posted.
//!
//! Whether to use it at all is decided by `crate::rdma_choice` (compiled
//! with or without this feature). Not used by the data path yet: that
//! arrives with the storage service.

mod connection;
mod cq;
mod device;
mod endpoint;
mod error;
mod memory;
mod qp;

pub use connection::{check_remote_range, Connection, ConnectionConfig, Event, WrId};
pub use cq::{Completion, CompletionQueue, Opcode};
pub use device::{usable_device, Context, Device, DeviceList, PortInfo, LINK_LAYER_ETHERNET};
pub use endpoint::{
    EndpointError, EndpointInfo, ENDPOINT_LEN, ENDPOINT_MAGIC, ENDPOINT_VERSION,
    MAX_CONTROL_SLOT_LEN,
};
pub use error::{RdmaError, WcStatus};
pub use memory::{Access, MemoryRegion, ProtectionDomain, RegionSlice, REGION_ALIGN};
pub use qp::{PathSettings, QpCaps, QueuePair};

#[cfg(test)]
mod tests {
    use super::*;

    /// On any machine: listing devices either works or fails with a verbs
    /// error, and `usable_device` agrees with what the list shows.
    #[test]
    fn device_probe_is_consistent_with_the_list() {
        match DeviceList::new() {
            Ok(list) => {
                let names: Vec<String> = list.iter().map(|d| d.name()).collect();
                assert_eq!(names.len(), list.len());
                if let Some(name) = usable_device() {
                    assert!(names.contains(&name), "{name} not in {names:?}");
                }
            }
            Err(err) => {
                assert!(matches!(
                    err,
                    RdmaError::Verbs {
                        call: "ibv_get_device_list",
                        ..
                    }
                ));
                assert_eq!(usable_device(), None);
            }
        }
    }

    #[test]
    fn opening_a_missing_device_is_a_typed_error() {
        match Context::open(Some("no-such-device-govfs")) {
            Err(RdmaError::DeviceNotFound { name }) => assert_eq!(name, "no-such-device-govfs"),
            // No verbs support in this kernel at all.
            Err(RdmaError::Verbs { call, .. }) => assert_eq!(call, "ibv_get_device_list"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("opened a device that does not exist"),
        }
    }

    #[test]
    fn status_names_come_from_the_library() {
        assert_eq!(WcStatus(0).name(), "success");
        assert_eq!(WcStatus(10).to_string(), "10 (remote access error)");
    }
}
