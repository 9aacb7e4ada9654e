//! Protection domains and registered memory regions.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use rdma_sys::{
    ibv_access_flags, ibv_alloc_pd, ibv_dealloc_pd, ibv_dereg_mr, ibv_mr, ibv_pd, ibv_reg_mr,
};

use super::device::{Context, ContextInner};
use super::error::{last_os_error, RdmaError};

/// Alignment of every registered buffer: a page.
pub const REGION_ALIGN: usize = 4096;

pub(crate) struct PdInner {
    pub(crate) raw: *mut ibv_pd,
    // Keeps the context open while the PD lives (dropped after `raw` is
    // deallocated, in Drop).
    _ctx: Arc<ContextInner>,
}

// SAFETY: verbs are thread safe; the PD pointer is only passed to verbs and
// deallocated once.
unsafe impl Send for PdInner {}
// SAFETY: as for Send.
unsafe impl Sync for PdInner {}

impl Drop for PdInner {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ibv_alloc_pd; every MR and QP in it holds an
        // Arc to this inner, so all are gone.
        let rc = unsafe { ibv_dealloc_pd(self.raw) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_dealloc_pd failed");
        }
    }
}

/// A protection domain: memory regions and queue pairs in the same domain
/// may be used together.
#[derive(Clone)]
pub struct ProtectionDomain {
    pub(crate) inner: Arc<PdInner>,
}

/// Who may access a [`MemoryRegion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The local device reads and writes it (sources of writes and sends,
    /// targets of receives).
    Local,
    /// Also the peer, by RDMA write (a buffer whose rkey is handed out).
    RemoteWrite,
}

impl ProtectionDomain {
    pub fn new(ctx: &Context) -> Result<ProtectionDomain, RdmaError> {
        // SAFETY: the context is open (we hold an Arc); the PD is owned by
        // PdInner and deallocated once, in its Drop.
        let raw = unsafe { ibv_alloc_pd(ctx.inner.raw) };
        if raw.is_null() {
            return Err(last_os_error("ibv_alloc_pd"));
        }
        Ok(ProtectionDomain {
            inner: Arc::new(PdInner {
                raw,
                _ctx: Arc::clone(&ctx.inner),
            }),
        })
    }

    /// A new zeroed, page-aligned buffer of `len` bytes, registered.
    pub fn register(&self, len: usize, access: Access) -> Result<MemoryRegion, RdmaError> {
        let buf = AlignedBuf::zeroed(len)?;
        let flags = match access {
            Access::Local => ibv_access_flags::IBV_ACCESS_LOCAL_WRITE,
            Access::RemoteWrite => {
                ibv_access_flags::IBV_ACCESS_LOCAL_WRITE | ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
            }
        };
        let access_bits = i32::try_from(flags.0).map_err(|_| RdmaError::Config("access flags"))?;
        // SAFETY: the PD is live; `buf` is a valid allocation of `len` bytes
        // that the MemoryRegion owns and frees only after deregistering.
        let mr = unsafe { ibv_reg_mr(self.inner.raw, buf.ptr.as_ptr().cast(), len, access_bits) };
        if mr.is_null() {
            return Err(last_os_error("ibv_reg_mr"));
        }
        Ok(MemoryRegion {
            mr,
            buf,
            pd: Arc::clone(&self.inner),
        })
    }
}

/// A zeroed heap buffer aligned to [`REGION_ALIGN`].
struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl AlignedBuf {
    fn zeroed(len: usize) -> Result<AlignedBuf, RdmaError> {
        if len == 0 {
            return Err(RdmaError::Config("a memory region needs at least one byte"));
        }
        let layout = Layout::from_size_align(len, REGION_ALIGN)
            .map_err(|_| RdmaError::Config("memory region too large"))?;
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(RdmaError::Config("out of memory for region"))?;
        Ok(AlignedBuf { ptr, layout })
    }

    fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by alloc_zeroed with exactly this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// A registered buffer it owns: page-aligned, zeroed at start. Deregistered
/// before the buffer is freed, and before the protection domain goes.
pub struct MemoryRegion {
    mr: *mut ibv_mr,
    buf: AlignedBuf,
    pd: Arc<PdInner>,
}

// SAFETY: the MR pointer is only read (lkey, rkey) and deregistered once;
// the buffer is plain heap memory owned by this value.
unsafe impl Send for MemoryRegion {}
// SAFETY: shared access only reads the buffer or the MR's keys.
unsafe impl Sync for MemoryRegion {}

impl Drop for MemoryRegion {
    fn drop(&mut self) {
        // SAFETY: `mr` came from ibv_reg_mr and is deregistered once; after
        // this the device no longer touches the buffer, which the field drop
        // frees next.
        let rc = unsafe { ibv_dereg_mr(self.mr) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_dereg_mr failed");
        }
    }
}

impl MemoryRegion {
    /// The buffer's address, as the device and the peer name it.
    pub fn addr(&self) -> u64 {
        self.buf.ptr.as_ptr() as u64
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never true (a region has at least one byte); here for clippy.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }

    /// Key for local work requests naming this region.
    pub fn lkey(&self) -> u32 {
        // SAFETY: `mr` is live while self is; lkey is set at registration.
        unsafe { (*self.mr).lkey }
    }

    /// Key a peer uses to RDMA-write into this region.
    pub fn rkey(&self) -> u32 {
        // SAFETY: as for lkey.
        unsafe { (*self.mr).rkey }
    }

    /// The bytes. For a region a peer may write into, or one posted to a
    /// receive, read only what a completion said is there.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the buffer holds `len` initialised (zeroed) bytes and lives
        // as long as self.
        unsafe { std::slice::from_raw_parts(self.buf.ptr.as_ptr(), self.buf.len()) }
    }

    /// The bytes, to fill before a send or write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for as_slice, and `&mut self` makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.buf.ptr.as_ptr(), self.buf.len()) }
    }

    /// `len` bytes from `offset`, checked against the region.
    pub fn slice(&self, offset: usize, len: usize) -> Result<RegionSlice<'_>, RdmaError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(RegionSlice {
                region: self,
                offset,
                len,
            }),
            _ => Err(RdmaError::LocalOutOfBounds {
                offset,
                len,
                region_len: self.len(),
            }),
        }
    }

    pub(crate) fn pd_raw(&self) -> *mut ibv_pd {
        self.pd.raw
    }

    /// Copies `out.len()` bytes from `offset` without making a Rust
    /// reference to the buffer (the device may be writing other parts).
    pub(crate) fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<(), RdmaError> {
        let slice = self.slice(offset, out.len())?;
        // SAFETY: the range is inside the buffer (checked by slice) and `out`
        // is a distinct Rust allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.buf.ptr.as_ptr().add(slice.offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` to `offset` (a slot this end owns, not posted).
    pub(crate) fn copy_in(&mut self, offset: usize, data: &[u8]) -> Result<(), RdmaError> {
        self.slice(offset, data.len())?;
        self.as_mut_slice()[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// A checked byte range of a [`MemoryRegion`], for work requests.
#[derive(Clone, Copy)]
pub struct RegionSlice<'a> {
    region: &'a MemoryRegion,
    offset: usize,
    len: usize,
}

impl RegionSlice<'_> {
    pub fn addr(&self) -> u64 {
        self.region.addr() + self.offset as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn lkey(&self) -> u32 {
        self.region.lkey()
    }

    pub(crate) fn pd_raw(&self) -> *mut ibv_pd {
        self.region.pd_raw()
    }
}
