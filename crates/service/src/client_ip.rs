//! The client's IP address, honouring `HERALD_TRUSTED_PROXIES`.
//!
//! Rate limits and logs key on the client's address. Behind nginx or an ingress the TCP peer is
//! the proxy, and the client is named in `X-Forwarded-For`; but anyone can send that header, so
//! it is believed only when the peer is a configured proxy. The header is read from the right
//! (the entry the nearest proxy appended) and trusted hops are skipped, so a client cannot
//! choose its address by prepending entries.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header::HeaderName, web};
use ipnet::IpNet;
use serde::Deserialize;

/// The networks whose `X-Forwarded-For` is believed. Empty (the default): the TCP peer is the
/// client.
///
/// Configured as a comma-separated list of CIDRs or bare addresses
/// (`HERALD_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`). Register it as app data
/// (`App::app_data(web::Data::new(proxies))`) for the [`ClientIp`] extractor to use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the given networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Number of configured networks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` belongs to a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with the given
    /// `X-Forwarded-For` header values (in the order they appear).
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // An unparsable entry ends the chain we can vouch for.
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }

    /// The client address of `req`: see [`Self::resolve`]. Requests without a peer address
    /// (only in unit tests) resolve to `0.0.0.0`.
    pub fn client_ip(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip());
        let values = req
            .headers()
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .filter_map(|value| value.to_str().ok());
        self.resolve(peer, values)
    }
}

impl FromStr for TrustedProxies {
    type Err = ipnet::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(parse_network)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let networks: Vec<NetworkOrAddress> = crate::config::comma_separated(deserializer)?;
        Ok(Self(networks.into_iter().map(|n| n.0).collect()))
    }
}

/// A CIDR or a bare address (a /32 or /128 network).
struct NetworkOrAddress(IpNet);

impl FromStr for NetworkOrAddress {
    type Err = ipnet::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_network(s).map(Self)
    }
}

fn parse_network(s: &str) -> Result<IpNet, ipnet::AddrParseError> {
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => s.parse::<IpNet>(),
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| canonical(addr.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as their IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Extractor for the client's IP address. Uses the [`TrustedProxies`] registered as
/// `web::Data`; without one, the TCP peer is the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequest for ClientIp {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let ip = match req.app_data::<web::Data<TrustedProxies>>() {
            Some(proxies) => proxies.client_ip(req),
            None => TrustedProxies::default().client_ip(req),
        };
        ready(Ok(Self(ip)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let proxies = TrustedProxies::default();
        assert_eq!(proxies.resolve(ip("10.0.0.5"), ["1.2.3.4"]), ip("10.0.0.5"));
    }

    #[test]
    fn a_trusted_peer_hands_over_to_the_rightmost_untrusted_hop() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            proxies.resolve(ip("10.0.0.5"), ["6.6.6.6, 1.2.3.4, 10.1.1.1"]),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_its_address() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(proxies.resolve(ip("8.8.8.8"), ["1.2.3.4"]), ip("8.8.8.8"));
    }

    #[test]
    fn several_header_lines_form_one_chain() {
        let proxies: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        assert_eq!(
            proxies.resolve(ip("127.0.0.1"), ["5.5.5.5", "10.0.0.9"]),
            ip("5.5.5.5")
        );
    }

    #[test]
    fn garbage_in_the_header_stops_at_the_last_good_hop() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            proxies.resolve(ip("10.0.0.5"), ["nonsense, 10.0.0.7"]),
            ip("10.0.0.7")
        );
        assert_eq!(
            proxies.resolve(ip("10.0.0.5"), ["1.2.3.4:999"]),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.resolve(ip("::ffff:127.0.0.1"), ["9.9.9.9"]),
            ip("9.9.9.9")
        );
    }
}
