//! The client's address behind a reverse proxy.
//!
//! Behind nginx or Caddy every request comes from the proxy's address, so
//! the per-address login limit would lump every client together and the
//! sessions would show the proxy as every viewer. When (and only when) the
//! TCP peer is one of the configured trusted proxies, the client's address
//! is read from the header the proxy sets: `X-Forwarded-For`, walked from
//! the right (the entry the nearest proxy added) past every trusted proxy to
//! the first address that is not one, or the `for=` of RFC 7239 `Forwarded`,
//! walked the same way. A header from any other peer is ignored: a client
//! could write anything in it. Only one header is read, the one configured,
//! so a proxy that sets one cannot be fooled by a client sending the other.
//!
//! [`real_client`] applies this to every request by replacing its
//! `ConnectInfo` (the port becomes 0: the proxy does not say the client's);
//! handlers, logins and the sessions view then all see the client.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::AppState;

/// Which header a trusted proxy puts the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Traefik, Caddy).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

/// The proxies whose word about the client's address is taken.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ClientIpHeader,
}

impl TrustedProxies {
    /// Trusts peers in `nets` (none: every header is ignored) to say the
    /// client's address in `header`.
    pub fn new(nets: Vec<IpNet>, header: ClientIpHeader) -> Self {
        TrustedProxies { nets, header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let name = match self.header {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        };
        // Every occurrence of the header, in order, as one list of hops.
        let hops: Vec<&str> = headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let parsed = match self.header {
                ClientIpHeader::XForwardedFor => parse_node(hop),
                ClientIpHeader::Forwarded => forwarded_for(hop).and_then(parse_node),
            };
            match parsed {
                // A trusted proxy passed it on: look further left.
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return ip,
                // Garbage, `unknown` or an obfuscated name: the last hop we
                // trust is as far as we can see.
                None => return client,
            }
        }
        client
    }
}

/// The `for=` value of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`
/// or `[2001:db8::1]:5678`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Middleware over every route: a request from a trusted proxy carries the
/// client's address (port 0) as its `ConnectInfo` from here on.
pub(crate) async fn real_client(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = st.access.proxies.client_ip(peer.ip(), req.headers());
        if client != peer.ip() {
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(nets: &[&str], header: ClientIpHeader) -> TrustedProxies {
        let net = |n: &&str| n.parse::<IpNet>().unwrap_or_else(|_| IpNet::from(ip(n)));
        TrustedProxies::new(nets.iter().map(net).collect(), header)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let none = TrustedProxies::default();
        let spoof = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(none.client_ip(ip("192.0.2.1"), &spoof), ip("192.0.2.1"));
        let other = proxies(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        assert_eq!(other.client_ip(ip("192.0.2.1"), &spoof), ip("192.0.2.1"));
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        let p = proxies(&["10.0.0.0/8", "127.0.0.1"], ClientIpHeader::XForwardedFor);
        // The client wrote "6.6.6.6" itself; nginx appended the real address.
        let h = headers("x-forwarded-for", &["6.6.6.6, 198.51.100.7"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        // Two proxies, the header split over two lines.
        let h = headers("x-forwarded-for", &["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(p.client_ip(ip("10.9.9.9"), &h), ip("198.51.100.7"));
        // Ports and brackets as some proxies write them.
        let h = headers("x-forwarded-for", &["[2001:db8::7]:4711"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers("x-forwarded-for", &["198.51.100.7:80"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        // Garbage stops the walk at the last trusted hop.
        let h = headers("x-forwarded-for", &["198.51.100.7, unknown, 10.0.0.5"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(p.client_ip(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // Only the configured header counts.
        let h = headers("forwarded", &["for=198.51.100.7"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_for_is_read_the_same_way() {
        let p = proxies(&["127.0.0.1/32", "::1"], ClientIpHeader::Forwarded);
        let h = headers("forwarded", &["for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=127.0.0.1"]);
        assert_eq!(p.client_ip(ip("::1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=_hidden;proto=http"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers("x-forwarded-for", &["198.51.100.7"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"), "the other header is ignored");
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let p = proxies(&["127.0.0.1"], ClientIpHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["198.51.100.7"]);
        assert_eq!(p.client_ip(ip("::ffff:127.0.0.1"), &h), ip("198.51.100.7"));
    }
}
