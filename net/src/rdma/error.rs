//! The one error type of the RDMA transport.

use std::ffi::CStr;
use std::time::Duration;

use thiserror::Error;

use super::endpoint::EndpointError;

/// A work-completion status from the verbs (`enum ibv_wc_status`); 0 is
/// success. Shown with the library's name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WcStatus(pub u32);

impl WcStatus {
    /// The library's name for the status, for example "remote access error".
    pub fn name(self) -> String {
        // SAFETY: ibv_wc_status_str takes any value and returns a pointer to a
        // static NUL-terminated string ("unknown" for values it does not know).
        let ptr = unsafe { rdma_sys::ibv_wc_status_str(self.0) };
        if ptr.is_null() {
            return "unknown".to_string();
        }
        // SAFETY: non-null, static and NUL-terminated (see above).
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
}

impl std::fmt::Display for WcStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// Everything that can go wrong in the RDMA transport.
#[derive(Debug, Error)]
pub enum RdmaError {
    /// A verbs call failed; `source` carries the errno.
    #[error("{call} failed: {source}")]
    Verbs {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no RDMA device on this machine")]
    NoDevice,
    #[error("RDMA device {name:?} not found")]
    DeviceNotFound { name: String },
    #[error("port {port} of RDMA device {device} is not active (port state {state})")]
    PortNotActive {
        device: String,
        port: u8,
        state: u32,
    },
    /// A work request finished with an error status. After this the queue
    /// pair is in the error state: the connection must be dropped.
    #[error("work request {wr_id:#x} failed with status {status}, vendor error {vendor_err:#x}")]
    Completion {
        wr_id: u64,
        status: WcStatus,
        vendor_err: u32,
    },
    /// A completion this connection did not post, or one missing what its
    /// opcode promises (a receive with immediate but no immediate).
    #[error("unexpected completion {wr_id:#x} with opcode {opcode}")]
    UnexpectedCompletion { wr_id: u64, opcode: u32 },
    /// Refused before posting: the write would land outside the buffer the
    /// peer registered for us.
    #[error(
        "RDMA write of {len} bytes at offset {offset} does not fit the peer's {remote_len}-byte buffer"
    )]
    RemoteOutOfBounds {
        offset: u64,
        len: u64,
        remote_len: u64,
    },
    #[error("range {offset}..+{len} is outside the {region_len}-byte memory region")]
    LocalOutOfBounds {
        offset: usize,
        len: usize,
        region_len: usize,
    },
    #[error("memory region belongs to another protection domain")]
    ForeignRegion,
    #[error("control message of {len} bytes exceeds the limit of {max} bytes")]
    ControlTooLarge { len: usize, max: usize },
    /// Every send slot is in flight: poll completions first.
    #[error("send queue full: {in_flight} work requests of this kind in flight")]
    SendQueueFull { in_flight: usize },
    #[error("no completion within {0:?}")]
    Timeout(Duration),
    #[error("invalid RDMA configuration: {0}")]
    Config(&'static str),
    #[error("peer sent a bad endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("endpoint exchange I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("random PSN: {0}")]
    Random(getrandom::Error),
}

/// The error for a verbs call that reports failure through `errno`.
pub(crate) fn last_os_error(call: &'static str) -> RdmaError {
    RdmaError::Verbs {
        call,
        source: std::io::Error::last_os_error(),
    }
}

/// The error for a verbs call that returns an errno value (`rc`) itself.
pub(crate) fn returned_errno(call: &'static str, rc: i32) -> RdmaError {
    RdmaError::Verbs {
        call,
        source: std::io::Error::from_raw_os_error(rc.abs()),
    }
}
