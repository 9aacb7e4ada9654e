//! The namespace workload: every ministry runs `govfs_core::meta::Namespace`;
//! clients send file-system operations on a small, shared name space so
//! that they collide (EEXIST, ENOENT, ENOTEMPTY, EACCES, ...); the checker
//! holds an independent model file system per ministry.
//!
//! | file | job |
//! |---|---|
//! | `model.rs` | the reference file system and its session table |
//! | `workload.rs` | the clients' operations, what they learn from answers, the end-of-run check against every member's namespace |

mod model;
mod workload;

pub use model::{FsModel, MetaAnswer};
pub use workload::MetaWorkload;
