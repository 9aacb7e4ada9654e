//! Reliable-connected queue pairs and their state transitions
//! (RESET -> INIT -> RTR -> RTS).

use std::sync::Arc;

use rdma_sys::{
    ibv_access_flags, ibv_create_qp, ibv_destroy_qp, ibv_modify_qp, ibv_post_recv, ibv_post_send,
    ibv_qp, ibv_qp_attr, ibv_qp_attr_mask, ibv_qp_cap, ibv_qp_init_attr, ibv_qp_state, ibv_qp_type,
    ibv_recv_wr, ibv_send_flags, ibv_send_wr, ibv_sge, ibv_wr_opcode, rdma_t,
};

use super::cq::{CompletionQueue, CqInner};
use super::endpoint::EndpointInfo;
use super::error::{last_os_error, returned_errno, RdmaError};
use super::memory::{PdInner, ProtectionDomain, RegionSlice};

/// Queue sizes of a queue pair (one scatter-gather entry per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpCaps {
    pub max_send_wr: u32,
    pub max_recv_wr: u32,
}

/// Path settings for the INIT -> RTR transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathSettings {
    /// Local port, numbered from 1.
    pub port: u8,
    /// Index of the local GID used as the source of the GRH (RoCE).
    pub gid_index: u8,
    /// `enum ibv_mtu`: the smaller of the two ends' active MTUs.
    pub mtu: u32,
}

/// A reliable-connected queue pair. Holds its CQ and PD, so neither can go
/// before it.
pub struct QueuePair {
    raw: *mut ibv_qp,
    // Dropped after the QP is destroyed (Drop runs before field drops).
    pd: Arc<PdInner>,
    _cq: Arc<CqInner>,
}

// SAFETY: verbs are thread safe; the QP pointer is only passed to verbs and
// destroyed once.
unsafe impl Send for QueuePair {}

impl Drop for QueuePair {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ibv_create_qp and is destroyed once; its CQ
        // and PD are still alive (we hold Arcs to them).
        let rc = unsafe { ibv_destroy_qp(self.raw) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_destroy_qp failed");
        }
    }
}

fn modify(
    qp: *mut ibv_qp,
    attr: &mut ibv_qp_attr,
    mask: ibv_qp_attr_mask,
) -> Result<(), RdmaError> {
    let mask = i32::try_from(mask.0).map_err(|_| RdmaError::Config("QP attribute mask"))?;
    // SAFETY: `qp` is live (callers pass self.raw) and `attr` is a valid,
    // fully initialised attribute struct for the fields in `mask`.
    let rc = unsafe { ibv_modify_qp(qp, attr, mask) };
    if rc != 0 {
        return Err(returned_errno("ibv_modify_qp", rc));
    }
    Ok(())
}

impl QueuePair {
    /// A new RC queue pair in RESET, sending and receiving through `cq`.
    pub fn new_rc(
        pd: &ProtectionDomain,
        cq: &CompletionQueue,
        caps: QpCaps,
    ) -> Result<QueuePair, RdmaError> {
        let mut init = ibv_qp_init_attr {
            qp_context: std::ptr::null_mut(),
            send_cq: cq.inner.raw,
            recv_cq: cq.inner.raw,
            srq: std::ptr::null_mut(),
            cap: ibv_qp_cap {
                max_send_wr: caps.max_send_wr,
                max_recv_wr: caps.max_recv_wr,
                max_send_sge: 1,
                max_recv_sge: 1,
                max_inline_data: 0,
            },
            qp_type: ibv_qp_type::IBV_QPT_RC,
            sq_sig_all: 0,
        };
        // SAFETY: PD and CQ are live (we hold them); `init` is fully set.
        let raw = unsafe { ibv_create_qp(pd.inner.raw, &mut init) };
        if raw.is_null() {
            return Err(last_os_error("ibv_create_qp"));
        }
        Ok(QueuePair {
            raw,
            pd: Arc::clone(&pd.inner),
            _cq: Arc::clone(&cq.inner),
        })
    }

    /// The queue pair number the peer addresses.
    pub fn qpn(&self) -> u32 {
        // SAFETY: `raw` is live while self is; qp_num is set at creation.
        unsafe { (*self.raw).qp_num }
    }

    /// RESET -> INIT: bound to `port`, the peer may RDMA-write.
    pub fn to_init(&mut self, port: u8) -> Result<(), RdmaError> {
        // SAFETY: ibv_qp_attr is integers and unions of integers: zero is valid.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_INIT;
        attr.pkey_index = 0;
        attr.port_num = port;
        attr.qp_access_flags = ibv_access_flags::IBV_ACCESS_REMOTE_WRITE.0;
        modify(
            self.raw,
            &mut attr,
            ibv_qp_attr_mask::IBV_QP_STATE
                | ibv_qp_attr_mask::IBV_QP_PKEY_INDEX
                | ibv_qp_attr_mask::IBV_QP_PORT
                | ibv_qp_attr_mask::IBV_QP_ACCESS_FLAGS,
        )
    }

    /// INIT -> RTR: connected to `remote`, receiving from its first PSN.
    pub fn to_rtr(&mut self, remote: &EndpointInfo, path: PathSettings) -> Result<(), RdmaError> {
        // SAFETY: as in to_init.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_RTR;
        attr.path_mtu = path.mtu;
        attr.dest_qp_num = remote.qpn;
        attr.rq_psn = remote.psn;
        attr.max_dest_rd_atomic = 1;
        attr.min_rnr_timer = 12;
        attr.ah_attr.dlid = remote.lid;
        attr.ah_attr.sl = 0;
        attr.ah_attr.src_path_bits = 0;
        attr.ah_attr.port_num = path.port;
        if remote.gid != [0; 16] {
            // RoCE (and routed InfiniBand) need a global route header.
            attr.ah_attr.is_global = 1;
            attr.ah_attr.grh.dgid.raw = remote.gid;
            attr.ah_attr.grh.sgid_index = path.gid_index;
            attr.ah_attr.grh.hop_limit = 64;
            attr.ah_attr.grh.traffic_class = 0;
            attr.ah_attr.grh.flow_label = 0;
        }
        modify(
            self.raw,
            &mut attr,
            ibv_qp_attr_mask::IBV_QP_STATE
                | ibv_qp_attr_mask::IBV_QP_AV
                | ibv_qp_attr_mask::IBV_QP_PATH_MTU
                | ibv_qp_attr_mask::IBV_QP_DEST_QPN
                | ibv_qp_attr_mask::IBV_QP_RQ_PSN
                | ibv_qp_attr_mask::IBV_QP_MAX_DEST_RD_ATOMIC
                | ibv_qp_attr_mask::IBV_QP_MIN_RNR_TIMER,
        )
    }

    /// RTR -> RTS: sending from `local_psn`. Retries a lost packet 7 times
    /// and a receiver-not-ready forever (`rnr_retry` 7): a peer that has not
    /// posted a receive yet slows us, it does not fail us.
    pub fn to_rts(&mut self, local_psn: u32) -> Result<(), RdmaError> {
        // SAFETY: as in to_init.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_RTS;
        attr.timeout = 14;
        attr.retry_cnt = 7;
        attr.rnr_retry = 7;
        attr.sq_psn = local_psn;
        attr.max_rd_atomic = 1;
        modify(
            self.raw,
            &mut attr,
            ibv_qp_attr_mask::IBV_QP_STATE
                | ibv_qp_attr_mask::IBV_QP_TIMEOUT
                | ibv_qp_attr_mask::IBV_QP_RETRY_CNT
                | ibv_qp_attr_mask::IBV_QP_RNR_RETRY
                | ibv_qp_attr_mask::IBV_QP_SQ_PSN
                | ibv_qp_attr_mask::IBV_QP_MAX_QP_RD_ATOMIC,
        )
    }

    fn sge(&self, local: &RegionSlice<'_>) -> Result<ibv_sge, RdmaError> {
        if local.pd_raw() != self.pd.raw {
            return Err(RdmaError::ForeignRegion);
        }
        let length = u32::try_from(local.len())
            .map_err(|_| RdmaError::Config("a work request moves at most 4 GiB - 1"))?;
        Ok(ibv_sge {
            addr: local.addr(),
            length,
            lkey: local.lkey(),
        })
    }

    fn post_send_wr(&mut self, wr: &mut ibv_send_wr) -> Result<(), RdmaError> {
        let mut bad: *mut ibv_send_wr = std::ptr::null_mut();
        // SAFETY: the QP is live; `wr` and the sge it points to outlive the
        // call (the library copies them); `bad` is a valid out pointer.
        let rc = unsafe { ibv_post_send(self.raw, wr, &mut bad) };
        if rc != 0 {
            return Err(returned_errno("ibv_post_send", rc));
        }
        Ok(())
    }

    /// Posts a signaled send of `local` to the peer's next receive.
    ///
    /// # Safety
    /// The device reads `local` until the completion for `wr_id` arrives:
    /// the bytes must not be changed before then.
    pub unsafe fn post_send(
        &mut self,
        local: &RegionSlice<'_>,
        wr_id: u64,
    ) -> Result<(), RdmaError> {
        let mut sge = self.sge(local)?;
        // SAFETY: ibv_send_wr is integers, pointers and unions of those:
        // all zeros is valid (null next, no flags).
        let mut wr: ibv_send_wr = unsafe { std::mem::zeroed() };
        wr.wr_id = wr_id;
        wr.sg_list = &mut sge;
        wr.num_sge = i32::from(!local.is_empty());
        wr.opcode = ibv_wr_opcode::IBV_WR_SEND;
        wr.send_flags = ibv_send_flags::IBV_SEND_SIGNALED.0;
        self.post_send_wr(&mut wr)
    }

    /// Posts a signaled RDMA write of `local` to `remote_addr` (under
    /// `rkey`) in the peer's memory, with `imm` delivered to the peer's next
    /// receive. Bounds in the peer's buffer are the caller's to check (the
    /// peer's device refuses writes outside its region, but fails the
    /// whole connection doing so).
    ///
    /// # Safety
    /// As for [`QueuePair::post_send`]: `local` must not change until the
    /// completion for `wr_id`.
    pub unsafe fn post_write_with_imm(
        &mut self,
        local: &RegionSlice<'_>,
        remote_addr: u64,
        rkey: u32,
        imm: u32,
        wr_id: u64,
    ) -> Result<(), RdmaError> {
        let mut sge = self.sge(local)?;
        // SAFETY: as in post_send.
        let mut wr: ibv_send_wr = unsafe { std::mem::zeroed() };
        wr.wr_id = wr_id;
        wr.sg_list = &mut sge;
        // A zero-length sge means 2^31 bytes to some devices: none instead.
        wr.num_sge = i32::from(!local.is_empty());
        wr.opcode = ibv_wr_opcode::IBV_WR_RDMA_WRITE_WITH_IMM;
        wr.send_flags = ibv_send_flags::IBV_SEND_SIGNALED.0;
        wr.imm_data_invalidated_rkey_union.imm_data = imm.to_be();
        wr.wr.rdma = rdma_t { remote_addr, rkey };
        self.post_send_wr(&mut wr)
    }

    /// Posts a receive into `local` (for a send, or for the immediate of an
    /// RDMA write, which uses no bytes of it).
    ///
    /// # Safety
    /// The device may write `local` until the completion for `wr_id`: no
    /// Rust reference to those bytes may be used before then.
    pub unsafe fn post_recv(
        &mut self,
        local: &RegionSlice<'_>,
        wr_id: u64,
    ) -> Result<(), RdmaError> {
        let mut sge = self.sge(local)?;
        let mut wr = ibv_recv_wr {
            wr_id,
            next: std::ptr::null_mut(),
            sg_list: &mut sge,
            num_sge: i32::from(!local.is_empty()),
        };
        let mut bad: *mut ibv_recv_wr = std::ptr::null_mut();
        // SAFETY: the QP is live; `wr` and `sge` outlive the call (copied by
        // the library); `bad` is a valid out pointer. The caller keeps the
        // buffer alone until completion (this function's contract).
        let rc = unsafe { ibv_post_recv(self.raw, &mut wr, &mut bad) };
        if rc != 0 {
            return Err(returned_errno("ibv_post_recv", rc));
        }
        Ok(())
    }
}
