//! Where a grant travels: the token header and the grant cookie. The one
//! parser of both, used by the layer (does this request carry a grant?) and
//! by the codec (which tokens does it carry?), so the two cannot disagree.

use http::{HeaderMap, HeaderName, header};

/// The grant cookie's name when it is not `Secure` (local development
/// over plain HTTP).
pub const GRANT_COOKIE: &str = "otp_verification";
/// The grant cookie's name when it is `Secure` (the default): the `__Host-`
/// prefix makes browsers refuse it unless it is `Secure`, `Path=/` and
/// has no `Domain`, so a sibling subdomain cannot plant or shadow it.
pub const SECURE_GRANT_COOKIE: &str = "__Host-otp_verification";

/// The grant cookie's name for this `Secure` setting.
pub(crate) fn grant_cookie(secure: bool) -> &'static str {
    if secure {
        SECURE_GRANT_COOKIE
    } else {
        GRANT_COOKIE
    }
}
/// The default header API clients send the grant in.
pub const DEFAULT_TOKEN_HEADER: &str = "x-verification-token";

/// The token header and the grant cookie's name.
///
/// A cookie pair is read as RFC 6265 writes it: `name=value`, pairs
/// separated by `;` and optional spaces, no space around `=`, the value
/// optionally in double quotes. So every pair the parser finds contains the
/// bytes `name=`, which is what the passthrough's prefilter looks for.
#[derive(Debug, Clone)]
pub(crate) struct GrantLocation {
    header: HeaderName,
    /// The default token header when another one is configured: a request
    /// carrying it is handed the checker too, so the extractor answers 401
    /// (not "layer missing") for it.
    default_header: Option<HeaderName>,
    cookie: String,
    /// `cookie=`, searched with SIMD in Cookie headers.
    cookie_finder: memchr::memmem::Finder<'static>,
    /// In Secure mode, the bare cookie name too: never read as a grant, but
    /// a request carrying it is handed the checker, so the extractor
    /// answers 401 (not "layer missing").
    bare_cookie: Option<&'static str>,
}

impl GrantLocation {
    pub(crate) fn new(header: &HeaderName, cookie_name: &str) -> Self {
        let default = HeaderName::from_static(DEFAULT_TOKEN_HEADER);
        Self {
            default_header: (*header != default).then_some(default),
            header: header.clone(),
            cookie: cookie_name.to_owned(),
            // `otp_verification=` is also found inside `__Host-otp_verification=`.
            cookie_finder: memchr::memmem::Finder::new(
                format!("{}=", cookie_name.trim_start_matches("__Host-")).as_bytes(),
            )
            .into_owned(),
            bare_cookie: (cookie_name == SECURE_GRANT_COOKIE).then_some(GRANT_COOKIE),
        }
    }

    /// Whether `headers` may carry a grant: the token header (or the default
    /// one) is present, or a Cookie header holds a pair with the grant
    /// cookie's name. Allocation-free; one pass over the headers.
    pub(crate) fn may_carry(&self, headers: &HeaderMap) -> bool {
        headers.iter().any(|(name, value)| {
            if *name == self.header || self.default_header.as_ref() == Some(name) {
                return true;
            }
            // The prefilter first: a Cookie header without `name=` cannot
            // hold the pair, and most requests stop here.
            *name == header::COOKIE
                && self.cookie_finder.find(value.as_bytes()).is_some()
                && value.to_str().is_ok_and(|v| {
                    cookie_pairs(v, &self.cookie).next().is_some()
                        || self
                            .bare_cookie
                            .is_some_and(|bare| cookie_pairs(v, bare).next().is_some())
                })
        })
    }

    /// Marks the token header and the `Cookie` header sensitive, so that
    /// `http`'s `Debug` (header logging by the host or a tracing layer)
    /// prints `Sensitive` instead of the grant.
    pub(crate) fn mark_sensitive(&self, headers: &mut HeaderMap) {
        for (name, value) in headers.iter_mut() {
            if *name == self.header
                || self.default_header.as_ref() == Some(name)
                || *name == header::COOKIE
            {
                value.set_sensitive(true);
            }
        }
    }

    /// Every candidate token, header values first, then cookie values.
    pub(crate) fn tokens<'a>(&'a self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a str> {
        let from_header = headers
            .get_all(&self.header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim);
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| cookie_pairs(v, &self.cookie));
        from_header.chain(from_cookie)
    }
}

/// The values of the pairs named `name` in one Cookie header value.
pub(crate) fn cookie_pairs<'a>(value: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    value.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim_matches([' ', '\t']).split_once('=')?;
        (k == name).then(|| {
            let v = v.trim_matches([' ', '\t']);
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn location() -> GrantLocation {
        GrantLocation::new(&HeaderName::from_static("x-grant"), "otp_verification")
    }

    #[test]
    fn sees_the_header_the_default_header_and_the_cookie() {
        let loc = location();
        assert!(loc.may_carry(&headers(&[("x-grant", "t")])));
        assert!(loc.may_carry(&headers(&[(DEFAULT_TOKEN_HEADER, "t")])));
        assert!(loc.may_carry(&headers(&[(
            "cookie",
            "theme=dark; otp_verification=t; lang=en"
        )])));
        let mut two = headers(&[("cookie", "a=1")]);
        two.append(
            header::COOKIE,
            HeaderValue::from_static("otp_verification=t"),
        );
        assert!(loc.may_carry(&two));

        assert!(!loc.may_carry(&HeaderMap::new()));
        assert!(!loc.may_carry(&headers(&[
            ("host", "example.com"),
            ("cookie", "otp_verification_seen=1; otp_verificatio=2"),
            ("x-other", "otp_verification=t"),
        ])));
    }

    #[test]
    fn the_layer_and_the_codec_agree_at_the_edges() {
        let loc = location();
        // Each case: whether a token is found must equal whether the layer
        // hands the request the checker (header cases aside).
        for cookie in [
            "otp_verification=tok",
            "a=1;otp_verification=tok",
            "a=1;  otp_verification=\"tok\"",
            "xotp_verification=tok",
            "otp_verification =tok",
            "otp_verification_x=tok",
            "a=otp_verification=tok",
            "otp_verification=",
        ] {
            let h = headers(&[("cookie", cookie)]);
            assert_eq!(
                loc.may_carry(&h),
                loc.tokens(&h).next().is_some(),
                "{cookie:?}"
            );
        }
        let h = headers(&[("cookie", "a=1;  otp_verification=\"tok\"; b=2")]);
        assert_eq!(loc.tokens(&h).collect::<Vec<_>>(), vec!["tok"]);
        let h = headers(&[("x-grant", " t1 "), ("cookie", "otp_verification=t2")]);
        assert_eq!(loc.tokens(&h).collect::<Vec<_>>(), vec!["t1", "t2"]);
    }
}
