//! [`Waker`]: how another thread interrupts a reactor's `poll`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tracing::warn;

/// Ends the owning reactor's current or next wait with
/// [`NetEvent::Woken`](super::NetEvent::Woken). Cheap to clone, usable from
/// any thread; wakes that arrive before the loop looks coalesce into one
/// event. A waker outliving its reactor does nothing harmful.
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// A waker writing to `fd`, an eventfd the backend reads.
    pub(crate) fn new(fd: Arc<OwnedFd>) -> Waker {
        Waker { fd }
    }

    /// Wakes the reactor. Never blocks in practice: an eventfd write blocks
    /// only when its counter would pass 2^64 - 2.
    pub fn wake(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64 to an fd we own.
            let n = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    std::ptr::addr_of!(one).cast(),
                    size_of::<u64>(),
                )
            };
            if n >= 0 {
                return;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                // The counter is saturated: the reactor is awake anyway.
                io::ErrorKind::WouldBlock => return,
                _ => {
                    warn!(error = %err, "reactor waker failed");
                    return;
                }
            }
        }
    }
}
