//! Which IP address a request comes from.
//!
//! By default, the address of the TCP peer: axum's `ConnectInfo<SocketAddr>`
//! (serve with `into_make_service_with_connect_info::<SocketAddr>()`), or a
//! [`ClientAddr`] / plain `SocketAddr` extension that a non-axum host inserts.
//!
//! # Deployment caveat
//!
//! Behind a reverse proxy, the peer is the proxy, so every client would share
//! one limit. List the proxies' addresses with
//! [`OtpBuilder::trusted_proxies`](crate::OtpBuilder::trusted_proxies) (or
//! `OTP_TRUSTED_PROXIES`): only when the peer is one of them are `Forwarded`
//! and `X-Forwarded-For` read, and the client is the **right-most address
//! that is not a trusted proxy**. A client cannot choose its address by
//! sending its own `X-Forwarded-For`: without a trusted peer the header is
//! ignored, and behind one, whatever the client wrote stands to the left of
//! the address the proxy appended.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use http::{Extensions, HeaderMap};
use ipnet::IpNet;

use crate::error::ConfigError;

/// The client's socket address, inserted into request extensions by hosts
/// that do not use axum's `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The proxies whose forwarded headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No trusted proxy: forwarded headers are ignored (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses comma-separated CIDRs or addresses (`10.0.0.0/8, ::1`).
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                IpNet::from_str(item)
                    .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            "OTP_TRUSTED_PROXIES",
                            format!("{item:?} is not a CIDR or IP address"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The peer address of the connection, from the extensions a server puts
/// in every request.
pub(crate) fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(canonical(info.0.ip()));
    }
    extensions
        .get::<ClientAddr>()
        .map(|a| a.0)
        .or_else(|| extensions.get::<SocketAddr>().copied())
        .map(|addr| canonical(addr.ip()))
}

/// The client address: the peer, or, when the peer is a trusted proxy, the
/// right-most untrusted hop of `Forwarded` (preferred) or `X-Forwarded-For`.
pub(crate) fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer_ip(extensions)?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops = forwarded_hops(headers).or_else(|| x_forwarded_for_hops(headers));
    let Some(hops) = hops else {
        return Some(peer);
    };
    // Walk from the proxy nearest to us outwards; the first address we do
    // not trust is the client. If every hop is trusted, the furthest is.
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !trusted.contains(&hop) {
            break;
        }
    }
    Some(client)
}

/// `for=` values of every `Forwarded` header, in order; `None` when the
/// header is absent or any element is unreadable (then it is not used).
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut hops = Vec::new();
    let mut seen = false;
    for value in headers.get_all(http::header::FORWARDED) {
        seen = true;
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let Some(node) = element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
            }) else {
                continue;
            };
            hops.push(parse_node(node)?);
        }
    }
    (seen && !hops.is_empty()).then_some(hops)
}

/// Every address of every `X-Forwarded-For` header, in order.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for item in value.to_str().ok()?.split(',') {
            hops.push(parse_node(item.trim())?);
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// Reads `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:443"`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(canonical(ip));
    }
    if let Ok(addr) = SocketAddr::from_str(node) {
        return Some(canonical(addr.ip()));
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&str, &str)]) -> (Extensions, HeaderMap) {
        let mut ext = Extensions::new();
        ext.insert(ClientAddr(peer.parse().unwrap()));
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        (ext, map)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_headers_are_ignored_from_untrusted_peers() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let (e, h) = request("203.0.113.9:5000", &[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(client_ip(&e, &h, &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(&e, &h, &TrustedProxies::none()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        // The client forged "6.6.6.6"; the edge proxy appended the real address.
        let (e, h) = request(
            "10.0.0.2:80",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.0.2.1")],
        );
        assert_eq!(client_ip(&e, &h, &trusted), ip("198.51.100.7"));
        let (e, h) = request(
            "10.0.0.2:80",
            &[(
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::7]:443\";proto=https",
            )],
        );
        assert_eq!(client_ip(&e, &h, &trusted), ip("2001:db8::7"));
        let (e, h) = request("10.0.0.2:80", &[("x-forwarded-for", "not an ip")]);
        assert_eq!(client_ip(&e, &h, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn bad_proxy_lists_name_the_variable() {
        let err = TrustedProxies::parse("10.0.0.0/8, banana").unwrap_err();
        assert!(err.to_string().contains("OTP_TRUSTED_PROXIES"));
    }
}
