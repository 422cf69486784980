//! Which IP address a request comes from.
//!
//! By default, the address of the TCP peer: axum's `ConnectInfo<SocketAddr>`
//! (serve with `into_make_service_with_connect_info::<SocketAddr>()`), or a
//! [`ClientAddr`] / plain `SocketAddr` extension that a non-axum host inserts.
//! With none of them, the per-IP limits are not lifted: every such request
//! draws from one shared "unknown" budget, and an error is logged once (see
//! [`crate::limit`]).
//!
//! # Deployment caveat
//!
//! Behind a reverse proxy, the peer is the proxy, so every client would share
//! one limit. List the proxies' addresses with
//! [`OtpBuilder::trusted_proxies`](crate::OtpBuilder::trusted_proxies) (or
//! `OTP_TRUSTED_PROXIES`): only when the peer is one of them is the
//! forwarded header read (`X-Forwarded-For`, or `Forwarded` with
//! [`ForwardedHeader::Forwarded`] / `OTP_FORWARDED_HEADER=forwarded`; never
//! both, since a proxy passes the other one through from the client), and
//! the client is the **right-most address that is not a trusted proxy**. A client cannot choose its address by
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

/// Which header the trusted proxies write the client chain in. Only that
/// header is read: a client could send the other one through a proxy that
/// does not overwrite it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load
    /// balancers). The default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// The proxies whose forwarded header is believed, and which header that is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

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
                            "trusted_proxies",
                            format!("{item:?} is not a CIDR or IP address"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| Self {
                nets,
                header: ForwardedHeader::default(),
            })
    }

    /// Reads the client chain from `header` instead of `X-Forwarded-For`.
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
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
/// right-most untrusted hop of the configured forwarded header.
pub(crate) fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer_ip(extensions)?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops = match trusted.header {
        ForwardedHeader::XForwardedFor => x_forwarded_for_hops(headers),
        ForwardedHeader::Forwarded => forwarded_hops(headers),
    };
    // Walk from the proxy nearest to us outwards: the first address we do
    // not trust is the client. An unreadable hop (`unknown`, an obfuscated
    // name, garbage) stops the walk at the last trusted address to its
    // right, so nothing a client wrote further left can be chosen.
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(hop) = hop else { break };
        client = hop;
        if !trusted.contains(&hop) {
            break;
        }
    }
    Some(client)
}

/// `for=` values of every `Forwarded` header, in order (`None` for a value
/// that is not an IP address).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        for element in elements(value) {
            let node = element.and_then(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
                })
            });
            hops.push(node.and_then(parse_node));
        }
    }
    hops
}

/// The comma-separated elements of a header line, each read on its own
/// (`None` for one that is not visible ASCII): a byte a client put in its
/// own element (obs-text, which proxies pass on) spoils only that element,
/// not the hops a proxy appended after it on the same line.
fn elements(value: &http::HeaderValue) -> impl Iterator<Item = Option<&str>> {
    value.as_bytes().split(|&b| b == b',').map(|element| {
        std::str::from_utf8(element).ok().filter(|text| {
            text.bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        })
    })
}

/// Every address of every `X-Forwarded-For` header, in order (`None` for an
/// entry that is not an IP address).
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(elements(value).map(|item| item.and_then(|item| parse_node(item.trim()))));
    }
    hops
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
        let forwarded = trusted.clone().with_header(ForwardedHeader::Forwarded);
        assert_eq!(client_ip(&e, &h, &forwarded), ip("2001:db8::7"));
        let (e, h) = request("10.0.0.2:80", &[("x-forwarded-for", "not an ip")]);
        assert_eq!(client_ip(&e, &h, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // The proxy writes X-Forwarded-For and passes a client's own
        // Forwarded header through: that header must not be believed.
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let (e, h) = request(
            "10.0.0.2:80",
            &[
                ("forwarded", "for=203.0.113.99"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        );
        assert_eq!(client_ip(&e, &h, &trusted), ip("198.51.100.7"));
        // And the other way round, with an unreadable element on the left.
        let forwarded = trusted.with_header(ForwardedHeader::Forwarded);
        let (e, h) = request(
            "10.0.0.2:80",
            &[
                ("forwarded", "for=garbage, for=198.51.100.7"),
                ("x-forwarded-for", "203.0.113.99"),
            ],
        );
        assert_eq!(client_ip(&e, &h, &forwarded), ip("198.51.100.7"));
    }

    #[test]
    fn a_non_ascii_byte_in_the_clients_element_spoils_only_that_element() {
        // nginx appends the real address to the client's own header on one
        // line; an obs-text byte the client sent must not hide it.
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"6.6.6.\xff, 198.51.100.7").unwrap(),
        );
        let (e, _) = request("10.0.0.2:80", &[]);
        assert_eq!(client_ip(&e, &h, &trusted), ip("198.51.100.7"));
        let forwarded = trusted.with_header(ForwardedHeader::Forwarded);
        let mut h = HeaderMap::new();
        h.append(
            "forwarded",
            http::HeaderValue::from_bytes(b"for=\"\xe9\", for=198.51.100.7").unwrap(),
        );
        assert_eq!(client_ip(&e, &h, &forwarded), ip("198.51.100.7"));
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_address() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let (e, h) = request(
            "10.0.0.2:80",
            &[("x-forwarded-for", "203.0.113.99, unknown, 10.0.0.9")],
        );
        assert_eq!(client_ip(&e, &h, &trusted), ip("10.0.0.9"));
    }

    #[test]
    fn bad_proxy_lists_name_the_setting_and_the_item() {
        // The builder method here; `OTP_TRUSTED_PROXIES` from the
        // environment (renamed by the environment table).
        let err = TrustedProxies::parse("10.0.0.0/8, banana").unwrap_err();
        assert!(err.to_string().contains("`trusted_proxies`"), "{err}");
        assert!(err.to_string().contains("banana"), "{err}");
    }
}
