//! A listening socket several core threads can each own: every core binds
//! the node's address with SO_REUSEPORT and the kernel spreads incoming
//! connections over them, so no core accepts for another.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::FromRawFd;

/// Bind `addr` with SO_REUSEADDR and SO_REUSEPORT and listen.
pub fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket syscalls on a fd we own until it moves into the
    // TcpListener (or is closed on error).
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let (storage, len) = sockaddr(addr);
        if libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::listen(fd, 1024) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(listener)
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn two_listeners_share_one_port_and_both_accept() {
        let a = bind_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_shared(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // A third, plain bind of the same port fails: the port is really taken.
        assert!(TcpListener::bind(addr).is_err());
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut accepted = 0;
        let mut clients = Vec::new();
        for _ in 0..32 {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"x").unwrap();
            clients.push(c);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while accepted < 32 && std::time::Instant::now() < deadline {
            for l in [&a, &b] {
                if let Ok((mut s, _)) = l.accept() {
                    s.set_nonblocking(false).unwrap();
                    let mut byte = [0u8; 1];
                    s.read_exact(&mut byte).unwrap();
                    assert_eq!(&byte, b"x");
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, 32);
    }
}
