//! `TCP_NODELAY` on the process's Postgres connections.
//!
//! sqlx 0.9.0 no longer sets it (launchbadge/sqlx#4335; the fix, #4336, is not released). Without
//! it Nagle's algorithm holds back a small write while an earlier one is unacknowledged, and the
//! server delays that acknowledgement by up to 40 ms: a `COPY` sends its data, then its trailer
//! and `CopyDone` as separate writes, and every sink batch (two `COPY`s) waited 40-80 ms for
//! nothing (the backfill benchmark's 10-row `COPY` of block markers took 43 ms on the server).
//! sqlx gives no access to its sockets, so after each connect the process's TCP sockets whose
//! peer port is the database's get the option. A socket of another kind, or to another port, is
//! left alone; setting it on an unrelated connection to the same port would only change its
//! latency.

/// Sets `TCP_NODELAY` on every TCP socket of this process whose peer port is `port`; returns how
/// many it set. Linux only (elsewhere it does nothing and returns 0).
pub fn set_nodelay_towards(port: u16) -> usize {
    #[cfg(target_os = "linux")]
    {
        linux::set_nodelay_towards(port)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        0
    }
}

/// The TCP port of a `postgres://` URL (5432 when it names none; `None` when it is not a URL).
pub fn port_of(url: &str) -> Option<u16> {
    let u = url::Url::parse(url).ok()?;
    Some(u.port().unwrap_or(5432))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::mem::{size_of, zeroed};

    pub(super) fn set_nodelay_towards(port: u16) -> usize {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return 0;
        };
        let mut set = 0;
        for entry in dir.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
                continue;
            };
            if peer_port(fd) == Some(port) && nodelay(fd) {
                set += 1;
            }
        }
        set
    }

    /// The peer port of `fd` when it is a connected IPv4 or IPv6 stream socket.
    fn peer_port(fd: libc::c_int) -> Option<u16> {
        // SAFETY: fstat, getsockopt and getpeername only write into the buffers given, whose
        // sizes are passed; an fd closed meanwhile makes them fail, which is handled.
        unsafe {
            let mut st: libc::stat = zeroed();
            if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                return None;
            }
            let mut kind: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut kind as *mut libc::c_int).cast(),
                &mut len,
            ) != 0
                || kind != libc::SOCK_STREAM
            {
                return None;
            }
            let mut addr: libc::sockaddr_storage = zeroed();
            let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(
                fd,
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut len,
            ) != 0
            {
                return None;
            }
            match libc::c_int::from(addr.ss_family) {
                libc::AF_INET => {
                    let a = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                    Some(u16::from_be(a.sin_port))
                }
                libc::AF_INET6 => {
                    let a = &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                    Some(u16::from_be(a.sin6_port))
                }
                _ => None,
            }
        }
    }

    fn nodelay(fd: libc::c_int) -> bool {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `one`.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn sets_the_option_on_connections_to_the_port_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert!(!client.nodelay().unwrap());
        assert!(set_nodelay_towards(port) >= 1);
        assert!(client.nodelay().unwrap(), "the connection to the port");
        assert!(
            !server.nodelay().unwrap(),
            "the accepted side's peer port is another"
        );
        assert_eq!(port_of("postgres://u@db/x"), Some(5432));
        assert_eq!(port_of("postgres://u@db:6543/x"), Some(6543));
    }
}
