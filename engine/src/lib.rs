//! GovFS engine: the IO under the sans-IO core. It carries out what the core
//! asks (persist these records, send these messages) on real files and sockets.

pub mod chunk;
pub mod io;
pub mod log_store;
pub mod node;
