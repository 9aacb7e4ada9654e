//! Completion queues, polled (no completion channel).

use std::sync::Arc;

use rdma_sys::{
    ibv_cq, ibv_create_cq, ibv_destroy_cq, ibv_poll_cq, ibv_wc, ibv_wc_flags, ibv_wc_opcode,
    ibv_wc_status,
};

use super::device::{Context, ContextInner};
use super::error::{last_os_error, RdmaError, WcStatus};

pub(crate) struct CqInner {
    pub(crate) raw: *mut ibv_cq,
    _ctx: Arc<ContextInner>,
}

// SAFETY: verbs are thread safe; the CQ pointer is only passed to verbs and
// destroyed once.
unsafe impl Send for CqInner {}
// SAFETY: as for Send (ibv_poll_cq may be called from several threads).
unsafe impl Sync for CqInner {}

impl Drop for CqInner {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ibv_create_cq; every QP using it holds an Arc
        // to this inner, so all are destroyed before it.
        let rc = unsafe { ibv_destroy_cq(self.raw) };
        if rc != 0 {
            tracing::warn!(rc, "ibv_destroy_cq failed");
        }
    }
}

/// A completion queue for the send and receive sides of queue pairs.
#[derive(Clone)]
pub struct CompletionQueue {
    pub(crate) inner: Arc<CqInner>,
}

/// What a successful work request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Send,
    RdmaWrite,
    RdmaRead,
    /// A receive consumed by the peer's send.
    Recv,
    /// A receive consumed by the peer's RDMA write with immediate.
    RecvRdmaWithImm,
    Other(u32),
}

impl Opcode {
    fn from_raw(raw: u32) -> Opcode {
        match raw {
            ibv_wc_opcode::IBV_WC_SEND => Opcode::Send,
            ibv_wc_opcode::IBV_WC_RDMA_WRITE => Opcode::RdmaWrite,
            ibv_wc_opcode::IBV_WC_RDMA_READ => Opcode::RdmaRead,
            ibv_wc_opcode::IBV_WC_RECV => Opcode::Recv,
            ibv_wc_opcode::IBV_WC_RECV_RDMA_WITH_IMM => Opcode::RecvRdmaWithImm,
            other => Opcode::Other(other),
        }
    }

    /// The `enum ibv_wc_opcode` value.
    pub fn raw(self) -> u32 {
        match self {
            Opcode::Send => ibv_wc_opcode::IBV_WC_SEND,
            Opcode::RdmaWrite => ibv_wc_opcode::IBV_WC_RDMA_WRITE,
            Opcode::RdmaRead => ibv_wc_opcode::IBV_WC_RDMA_READ,
            Opcode::Recv => ibv_wc_opcode::IBV_WC_RECV,
            Opcode::RecvRdmaWithImm => ibv_wc_opcode::IBV_WC_RECV_RDMA_WITH_IMM,
            Opcode::Other(raw) => raw,
        }
    }
}

/// A successful work completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub wr_id: u64,
    pub opcode: Opcode,
    /// Bytes received (receives only; the library leaves it 0 otherwise).
    pub byte_len: u32,
    /// The immediate value, host order, when the peer sent one.
    pub imm: Option<u32>,
    pub qp_num: u32,
}

impl CompletionQueue {
    /// A queue with room for at least `capacity` completions.
    pub fn new(ctx: &Context, capacity: u32) -> Result<CompletionQueue, RdmaError> {
        let cqe = i32::try_from(capacity).map_err(|_| RdmaError::Config("CQ capacity"))?;
        if cqe == 0 {
            return Err(RdmaError::Config("CQ capacity must be at least 1"));
        }
        // SAFETY: the context is open; no completion channel and no user
        // context pointer; the CQ is owned by CqInner and destroyed once.
        let raw = unsafe {
            ibv_create_cq(
                ctx.inner.raw,
                cqe,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if raw.is_null() {
            return Err(last_os_error("ibv_create_cq"));
        }
        Ok(CompletionQueue {
            inner: Arc::new(CqInner {
                raw,
                _ctx: Arc::clone(&ctx.inner),
            }),
        })
    }

    /// Takes one completion if there is one. A work request that failed
    /// is an `Err(RdmaError::Completion)` carrying its wr_id and status.
    pub fn poll_one(&self) -> Result<Option<Completion>, RdmaError> {
        // SAFETY: ibv_wc is a C struct of integers and a union of integers:
        // all zeros is a valid value.
        let mut wc: ibv_wc = unsafe { std::mem::zeroed() };
        // SAFETY: the CQ is live; `wc` has room for the one entry asked for.
        let n = unsafe { ibv_poll_cq(self.inner.raw, 1, &mut wc) };
        if n < 0 {
            return Err(RdmaError::Verbs {
                call: "ibv_poll_cq",
                source: std::io::Error::other(format!("returned {n}")),
            });
        }
        if n == 0 {
            return Ok(None);
        }
        if wc.status != ibv_wc_status::IBV_WC_SUCCESS {
            return Err(RdmaError::Completion {
                wr_id: wc.wr_id,
                status: WcStatus(wc.status),
                vendor_err: wc.vendor_err,
            });
        }
        let with_imm = wc.wc_flags & ibv_wc_flags::IBV_WC_WITH_IMM.0 != 0;
        let imm = if with_imm {
            // SAFETY: with IBV_WC_WITH_IMM set, the union holds imm_data
            // (network order); any u32 is valid.
            Some(u32::from_be(unsafe {
                wc.imm_data_invalidated_rkey_union.imm_data
            }))
        } else {
            None
        };
        Ok(Some(Completion {
            wr_id: wc.wr_id,
            opcode: Opcode::from_raw(wc.opcode),
            byte_len: wc.byte_len,
            imm,
            qp_num: wc.qp_num,
        }))
    }
}
