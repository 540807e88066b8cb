//! TCP listeners of Hookline's servers (the API, the admin listener, `hookline sink`).

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Connections the kernel holds for a listener before they are accepted (capped by
/// `net.core.somaxconn`), as Go's and nginx's servers ask, not tokio's 1,024: when many
/// clients connect at once (a sender starting with a backlog for many endpoints opened about
/// 2,000 connections to one receiver within a second; a fleet of publishers restarting
/// does the same to the ingest API), each connection a full queue drops waits for its
/// client's SYN retransmission, a whole second (docs/performance.md, "The receiver's listen
/// queue").
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (address reuse on, as tokio's `TcpListener::bind`) and listens with
/// [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
