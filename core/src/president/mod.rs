//! The president: the cluster map its group replicates, and the driver that
//! runs on the elected president to form ministries, replace failed ministers
//! and clerks, and hand out terms from the map's single counter.

pub mod driver;
pub mod map;

pub use driver::{DriverConfig, MemberReport, PresidentDriver, ShardReport};
pub use map::{Applied, ClusterMap, MinistryInfo, Order, PendingAppointment};
