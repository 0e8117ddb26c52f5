//! The root tuner's discovery responders: SSDP (UDP 1900, the multicast
//! group 239.255.255.250) and SiliconDust's protocol (UDP 65001, broadcast),
//! so that Plex, Jellyfin, Channels DVR and HDHomeRun's own apps find the
//! gateway on the LAN. Off unless configured (`hdhomerun.discovery`): they
//! answer anyone on the network segment and announce the tuner.
//!
//! Searches arrive by broadcast and multicast, which a socket bound to one
//! unicast address does not receive, so both sockets listen on every
//! interface and a request is answered only when the answer leaves by the
//! configured interface (`hdhomerun.discovery_bind`; `0.0.0.0`: any). The
//! announced base URL is `public_url` when set, else that interface's
//! address and the HTTP port. Nothing is announced while the root tuner has
//! no active user. The tasks end when their stop token is cancelled.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{packet, root_device_id, root_user, ssdp, tuner_count, DEVICE_AUTH};
use crate::AppState;

/// SSDP's multicast group.
const SSDP_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);

/// Where the discovery responders listen and what they announce.
///
/// Exists so that `tunerpool serve` (and tests, on ports of their own) can
/// start them from the configuration without the HTTP crate reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// Answer only requests whose answer leaves by this interface's
    /// address; `0.0.0.0`: any.
    pub interface: Ipv4Addr,
    /// SSDP's port (1900; 0 for any free one, in tests).
    pub ssdp_port: u16,
    /// SiliconDust's discovery port (65001; 0 for any free one, in tests).
    pub hdhomerun_port: u16,
    /// The port the HTTP server listens on, announced in the URLs.
    pub http_port: u16,
}

/// The running responders: the addresses they listen on. They stop when
/// the token given to [`start`] is cancelled, or when this is dropped.
#[derive(Debug)]
pub struct Discovery {
    /// The SSDP socket's address.
    pub ssdp: SocketAddr,
    /// The SiliconDust discovery socket's address.
    pub hdhomerun: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// A UDP socket on every interface at `port`, shared with other SSDP
/// listeners on this machine (Plex's, a DLNA server's).
fn udp_socket(port: u16, what: &str) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let context =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot listen on UDP {addr} ({what}): {e}"));
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(context)?;
    socket.set_reuse_address(true).map_err(context)?;
    socket.set_nonblocking(true).map_err(context)?;
    socket.bind(&addr.into()).map_err(context)?;
    UdpSocket::from_std(socket.into()).map_err(context)
}

/// Starts both responders.
pub async fn start(
    state: AppState,
    settings: DiscoverySettings,
    stop: CancellationToken,
) -> std::io::Result<Discovery> {
    let ssdp_socket = udp_socket(settings.ssdp_port, "SSDP discovery")?;
    let hdhr_socket = udp_socket(settings.hdhomerun_port, "HDHomeRun discovery")?;
    if let Err(e) = ssdp_socket.join_multicast_v4(SSDP_GROUP, settings.interface) {
        tracing::warn!(error = %e, interface = %settings.interface,
            "SSDP: cannot join the multicast group; only searches sent to this address are answered");
    }
    let (ssdp_addr, hdhr_addr) = (ssdp_socket.local_addr()?, hdhr_socket.local_addr()?);
    tracing::info!(ssdp = %ssdp_addr, hdhomerun = %hdhr_addr, interface = %settings.interface,
        "HDHomeRun discovery: answering SSDP and SiliconDust searches for the root tuner");
    let tasks = vec![
        tokio::spawn(respond(ssdp_socket, state.clone(), settings, stop.clone(), Protocol::Ssdp)),
        tokio::spawn(respond(hdhr_socket, state, settings, stop, Protocol::HdHomeRun)),
    ];
    Ok(Discovery { ssdp: ssdp_addr, hdhomerun: hdhr_addr, tasks })
}

#[derive(Clone, Copy)]
enum Protocol {
    Ssdp,
    HdHomeRun,
}

/// Answers the searches that arrive on `socket` until `stop`.
async fn respond(socket: UdpSocket, st: AppState, settings: DiscoverySettings, stop: CancellationToken, p: Protocol) {
    let mut buf = vec![0u8; 2048];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(r) => r,
            // An ICMP error for an earlier answer, on some systems: not ours to stop on.
            Err(e) => {
                tracing::debug!(error = %e, "discovery: receive failed");
                continue;
            }
        };
        let answers = match p {
            Protocol::Ssdp => answer_ssdp(&st, &settings, &buf[..n], peer).await,
            Protocol::HdHomeRun => answer_hdhomerun(&st, &settings, &buf[..n], peer).await,
        };
        for a in answers {
            if let Err(e) = socket.send_to(&a, peer).await {
                tracing::debug!(error = %e, %peer, "discovery: cannot answer");
            }
        }
    }
}

/// The local address an answer to `peer` leaves from (the routing table's
/// choice; connecting a UDP socket sends nothing).
fn local_address_towards(peer: SocketAddr) -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect(peer).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

/// What to announce to `peer`: the root tuner's user, device id and base
/// URL — or nothing (not our interface, no active root user).
async fn announced(st: &AppState, settings: &DiscoverySettings, peer: SocketAddr) -> Option<Announced> {
    let local = local_address_towards(peer)?;
    if !settings.interface.is_unspecified() && local != IpAddr::V4(settings.interface) {
        tracing::debug!(%peer, %local, "discovery: a search from another interface, not answered");
        return None;
    }
    let user = match root_user(st).await {
        Ok(u) => u,
        Err(_) => {
            tracing::debug!(%peer, "discovery: the root tuner has no active user, not answered");
            return None;
        }
    };
    let base = match &st.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("http://{}", SocketAddr::new(local, settings.http_port)),
    };
    Some(Announced { device_id: root_device_id(st, user.id).await, tuners: tuner_count(st, &user).await, base })
}

struct Announced {
    device_id: u32,
    tuners: u32,
    base: String,
}

async fn answer_hdhomerun(
    st: &AppState,
    settings: &DiscoverySettings,
    datagram: &[u8],
    peer: SocketAddr,
) -> Vec<Vec<u8>> {
    let request = match packet::parse_request(datagram) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HDHomeRun discovery: datagram ignored");
            return Vec::new();
        }
    };
    let Some(a) = announced(st, settings, peer).await else { return Vec::new() };
    if !request.wants(a.device_id) {
        return Vec::new();
    }
    let reply = packet::Reply {
        device_id: a.device_id,
        tuner_count: u8::try_from(a.tuners).unwrap_or(u8::MAX),
        lineup_url: format!("{}/lineup.json", a.base),
        base_url: a.base,
        device_auth: DEVICE_AUTH.to_owned(),
    };
    vec![reply.encode()]
}

async fn answer_ssdp(st: &AppState, settings: &DiscoverySettings, datagram: &[u8], peer: SocketAddr) -> Vec<Vec<u8>> {
    let Some(target) = ssdp::search_target(datagram) else { return Vec::new() };
    let Some(a) = announced(st, settings, peer).await else { return Vec::new() };
    let udn = ssdp::udn(&format!("{:08X}", a.device_id));
    let location = format!("{}/device.xml", a.base);
    ssdp::targets(&target, &udn).iter().map(|t| ssdp::answer(t, &udn, &location).into_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_to_a_loopback_peer_leaves_from_loopback() {
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        assert_eq!(local_address_towards(peer), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
