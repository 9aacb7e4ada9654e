//! RDMA devices and opened device contexts.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::Arc;

use rdma_sys::{
    ___ibv_query_port, ibv_close_device, ibv_context, ibv_device, ibv_free_device_list,
    ibv_get_device_guid, ibv_get_device_list, ibv_get_device_name, ibv_gid, ibv_open_device,
    ibv_port_attr, ibv_port_state, ibv_query_gid,
};

use super::error::{last_os_error, returned_errno, RdmaError};

/// The devices libibverbs found, freed on drop. A [`Context`] opened from
/// one stays valid after the list is gone.
pub struct DeviceList {
    list: *mut *mut ibv_device,
    len: usize,
}

impl DeviceList {
    /// Lists the devices. On a machine without the verbs kernel interface
    /// this is an error (`ibv_get_device_list` fails, often with ENOSYS);
    /// with it but no device, an empty list.
    pub fn new() -> Result<DeviceList, RdmaError> {
        let mut count: std::os::raw::c_int = 0;
        // SAFETY: `count` is a valid out pointer; the returned array is owned
        // by the DeviceList and freed once, in Drop.
        let list = unsafe { ibv_get_device_list(&mut count) };
        if list.is_null() {
            return Err(last_os_error("ibv_get_device_list"));
        }
        Ok(DeviceList {
            list,
            len: usize::try_from(count).unwrap_or(0),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The devices, in the library's order.
    pub fn iter(&self) -> impl Iterator<Item = Device<'_>> + '_ {
        (0..self.len).map(move |i| Device {
            // SAFETY: the array holds `len` valid device pointers (plus a NULL
            // terminator) for as long as the list lives, which the returned
            // Device's lifetime ties to.
            raw: unsafe { *self.list.add(i) },
            _list: PhantomData,
        })
    }
}

impl Drop for DeviceList {
    fn drop(&mut self) {
        // SAFETY: `list` came from ibv_get_device_list and is freed only here;
        // every Device borrowing it is gone (lifetime).
        unsafe { ibv_free_device_list(self.list) };
    }
}

/// One device in a [`DeviceList`].
pub struct Device<'list> {
    raw: *mut ibv_device,
    _list: PhantomData<&'list DeviceList>,
}

impl Device<'_> {
    /// The kernel's name for it, for example `rxe0` or `mlx5_0`.
    pub fn name(&self) -> String {
        // SAFETY: `raw` is a live device of the list; the name is a
        // NUL-terminated string owned by it (or NULL on failure).
        let ptr = unsafe { ibv_get_device_name(self.raw) };
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: non-null and NUL-terminated, valid while the list lives.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }

    /// The device's GUID (host order).
    pub fn guid(&self) -> u64 {
        // SAFETY: `raw` is a live device of the list.
        u64::from_be(unsafe { ibv_get_device_guid(self.raw) })
    }

    /// Opens the device.
    pub fn open(&self) -> Result<Context, RdmaError> {
        let name = self.name();
        // SAFETY: `raw` is a live device of the list; the context returned is
        // owned by ContextInner and closed once, in its Drop.
        let raw = unsafe { ibv_open_device(self.raw) };
        if raw.is_null() {
            return Err(last_os_error("ibv_open_device"));
        }
        Ok(Context {
            inner: Arc::new(ContextInner { raw, name }),
        })
    }
}

pub(crate) struct ContextInner {
    pub(crate) raw: *mut ibv_context,
    pub(crate) name: String,
}

// SAFETY: libibverbs is thread safe (rdma-core: "all verbs are thread
// safe"); the context pointer is only passed to verbs and closed once.
unsafe impl Send for ContextInner {}
// SAFETY: as for Send: shared use only calls thread-safe verbs.
unsafe impl Sync for ContextInner {}

impl Drop for ContextInner {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ibv_open_device; every object created from
        // it (PD, CQ, ...) holds an Arc to this inner, so all are destroyed.
        let rc = unsafe { ibv_close_device(self.raw) };
        if rc != 0 {
            tracing::warn!(device = %self.name, rc, "ibv_close_device failed");
        }
    }
}

/// An opened device. Cheap to clone; the device closes when the last clone
/// and the last object made from it are dropped.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
}

/// What [`Context::query_port`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// `enum ibv_port_state`; see [`PortInfo::is_active`].
    pub state: u32,
    pub lid: u16,
    /// `enum ibv_mtu` of the active MTU.
    pub active_mtu: u32,
    /// 1 InfiniBand, 2 Ethernet (RoCE, soft-RoCE), 0 unspecified.
    pub link_layer: u8,
    pub gid_table_len: i32,
}

/// `IBV_LINK_LAYER_ETHERNET` (a `#define` the bindings leave out).
pub const LINK_LAYER_ETHERNET: u8 = 2;

impl PortInfo {
    pub fn is_active(&self) -> bool {
        self.state == ibv_port_state::IBV_PORT_ACTIVE
    }
}

impl Context {
    /// Opens the device called `name`, or the first device when `None`.
    pub fn open(name: Option<&str>) -> Result<Context, RdmaError> {
        let list = DeviceList::new()?;
        let mut devices = list.iter();
        let device = match name {
            None => devices.next().ok_or(RdmaError::NoDevice)?,
            Some(name) => {
                devices
                    .find(|d| d.name() == name)
                    .ok_or_else(|| RdmaError::DeviceNotFound {
                        name: name.to_string(),
                    })?
            }
        };
        device.open()
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// State, LID, MTU and link layer of `port` (numbered from 1).
    pub fn query_port(&self, port: u8) -> Result<PortInfo, RdmaError> {
        // SAFETY: ibv_port_attr is a C struct of integers: all zeros is valid.
        let mut attr: ibv_port_attr = unsafe { std::mem::zeroed() };
        // SAFETY: the context is open (we hold it) and `attr` is a valid,
        // correctly sized out parameter.
        let rc = unsafe { ___ibv_query_port(self.inner.raw, port, &mut attr) };
        if rc != 0 {
            return Err(returned_errno("ibv_query_port", rc));
        }
        Ok(PortInfo {
            state: attr.state,
            lid: attr.lid,
            active_mtu: attr.active_mtu,
            link_layer: attr.link_layer,
            gid_table_len: attr.gid_tbl_len,
        })
    }

    /// Entry `index` of `port`'s GID table, in network order.
    pub fn query_gid(&self, port: u8, index: u8) -> Result<[u8; 16], RdmaError> {
        let mut gid = ibv_gid { raw: [0; 16] };
        // SAFETY: the context is open and `gid` is a valid out parameter of
        // the right type.
        let rc = unsafe { ibv_query_gid(self.inner.raw, port, i32::from(index), &mut gid) };
        if rc != 0 {
            return Err(last_os_error("ibv_query_gid"));
        }
        // SAFETY: every bit pattern is a valid [u8; 16]; `raw` is the union's
        // byte view.
        Ok(unsafe { gid.raw })
    }
}

/// The name of the first device whose port 1 is active, if any. Any error
/// on the way (no verbs support in the kernel, a device that will not open)
/// means "none", logged at debug.
pub fn usable_device() -> Option<String> {
    let list = match DeviceList::new() {
        Ok(list) => list,
        Err(err) => {
            tracing::debug!(%err, "no RDMA devices");
            return None;
        }
    };
    for device in list.iter() {
        let name = device.name();
        match device.open().and_then(|ctx| ctx.query_port(1)) {
            Ok(port) if port.is_active() => return Some(name),
            Ok(port) => tracing::debug!(device = %name, state = port.state, "port 1 not active"),
            Err(err) => tracing::debug!(device = %name, %err, "RDMA device not usable"),
        }
    }
    None
}
