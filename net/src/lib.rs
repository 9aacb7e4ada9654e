//! GovFS networking, sans-IO part: how bytes on a connection become frames
//! and back. Nothing here opens a socket; the engine reads bytes into a
//! [`FrameDecoder`] and writes the bytes of an [`OutBatch`].
//!
//! Wire frame (all integers little-endian, 24-byte header then the body):
//!
//! ```text
//! offset  size  field
//!      0     4  magic       b"GOVF"
//!      4     2  version     1
//!      6     2  kind        FrameKind (1 Raft, 2 Control, 3 Client, 4 Data, 5 Auth)
//!      8     4  body_len    bytes of body that follow the header
//!     12     8  request_id  chosen by the sender, echoed in the reply
//!     20     4  crc         crc32c of header bytes 0..20, then of the body
//!     24     -  body
//! ```

pub mod batch;
pub mod frame;

pub use batch::{BatchError, OutBatch};
pub use frame::{
    encode_frame, encoded_len, Frame, FrameDecoder, FrameError, FrameHeader, FrameKind,
    DEFAULT_MAX_BODY_LEN, HEADER_LEN, MAGIC, VERSION,
};
