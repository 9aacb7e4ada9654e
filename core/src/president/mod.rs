//! The president: the cluster map its group replicates, and the driver that
//! runs on the elected president to form ministries, replace failed ministers
//! and clerks, and hand out terms from the map's single counter.

pub mod driver;
pub mod map;
pub mod transfer;

pub use driver::{
    space_changed, DriverConfig, MemberReport, PresidentDriver, ShardReport, StepOrder,
    StorageSpace,
};
pub use map::{Applied, ClusterMap, MinistryInfo, Order, PendingAppointment};
pub use transfer::{
    transfer_client, Step, Subtree, Transfer, TransferKind, TransferRequest, Transfers,
};
