//! The verification grant: a signed token saying which contacts the caller
//! proved, and until when.
//!
//! Format: `base64url(payload).base64url(mac)`, where the payload is a small
//! JSON object and the MAC is HMAC-SHA256 over the first part with a key
//! derived from the server secret. Grants signed with an older secret still
//! verify while that secret is listed as old (key rotation). The grant is
//! sent as the `__Host-otp_verification` cookie (`otp_verification` when
//! not Secure; HttpOnly, SameSite=Lax, Secure
//! unless configured off, Path=/) and returned as `"token"` for API clients,
//! who send it back in the `x-verification-token` header.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{location::GrantLocation, proof::VerifiedContact};
use crate::{
    contact::{Email, Mobile},
    secret::KeyRing,
};

/// Tokens longer than this are refused before any work.
const MAX_TOKEN_LEN: usize = 2048;
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    /// The mobile number's country calling code (for masking without a parse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<u16>,
    exp: u64,
    /// The grant's id (128 random bits), which single-use mode records as
    /// spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    j: Option<String>,
}

/// Signs and checks grants.
#[derive(Debug, Clone)]
pub(crate) struct GrantCodec {
    keys: Arc<KeyRing>,
    ttl: Duration,
}

impl GrantCodec {
    pub(crate) fn new(keys: Arc<KeyRing>, ttl: Duration) -> Self {
        Self { keys, ttl }
    }

    /// Signs a grant for these contacts with the current secret, expiring
    /// after the configured TTL.
    pub(crate) fn issue(&self, email: Option<&Email>, mobile: Option<&Mobile>) -> VerifiedToken {
        let expires_at = unix_now() + self.ttl.as_secs().max(1);
        let payload = Payload {
            v: VERSION,
            e: email.map(|e| e.as_str().to_owned()),
            m: mobile.map(|m| m.as_str().to_owned()),
            c: mobile.map(Mobile::country_code),
            exp: expires_at,
            j: Some(grant_id()),
        };
        let json = serde_json::to_vec(&payload).expect("grant payload serializes");
        let body = B64.encode(json);
        let tag = mac(&self.keys.current().grant_key[..], body.as_bytes());
        VerifiedToken {
            token: format!("{body}.{}", B64.encode(tag)),
            contact: VerifiedContact::new(
                email.cloned(),
                mobile.cloned(),
                UNIX_EPOCH + Duration::from_secs(expires_at),
                payload.j,
            ),
        }
    }

    /// Checks a token: signature (under any accepted secret), format and
    /// expiry. `None` for anything that does not pass.
    pub(crate) fn verify(&self, token: &str) -> Option<VerifiedContact> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (body, tag) = token.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        let signed = self.keys.all().iter().any(|entry| {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&entry.grant_key[..])
                .expect("HMAC takes any key size");
            m.update(body.as_bytes());
            m.verify_slice(&tag).is_ok()
        });
        if !signed {
            return None;
        }
        let payload: Payload = serde_json::from_slice(&B64.decode(body).ok()?).ok()?;
        if payload.v != VERSION || payload.exp <= unix_now() {
            return None;
        }
        let email = payload.e.map(Email::from_trusted);
        let mobile = match (payload.m, payload.c) {
            (Some(m), Some(c)) => Some(Mobile::from_trusted(m, c)),
            _ => None,
        };
        if email.is_none() && mobile.is_none() {
            return None;
        }
        Some(VerifiedContact::new(
            email,
            mobile,
            UNIX_EPOCH + Duration::from_secs(payload.exp),
            payload.j,
        ))
    }

    /// The first valid grant the request carries (header first, then
    /// cookie).
    pub(crate) fn find_in_headers(
        &self,
        headers: &HeaderMap,
        location: &GrantLocation,
    ) -> Option<VerifiedContact> {
        location
            .tokens(headers)
            .find_map(|token| self.verify(token))
    }
}

/// A freshly signed grant and what it proves.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    pub(crate) token: String,
    pub(crate) contact: VerifiedContact,
}

/// The `Set-Cookie` value that removes the grant cookie from the browser.
pub(crate) fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&value).expect("cookie name is header-safe")
}

/// The `Set-Cookie` value carrying a grant.
pub(crate) fn set_cookie(name: &str, token: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{name}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).expect("cookie name and token are header-safe")
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key size");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// 128 random bits from the OS generator, base64url.
fn grant_id() -> String {
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    B64.encode(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn codec(secret: &str, old: &[&str]) -> GrantCodec {
        let old: Vec<Secret> = old.iter().map(|s| Secret::new(*s)).collect();
        GrantCodec::new(
            Arc::new(KeyRing::new(&Secret::new(secret), &old)),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn round_trip_and_rotation() {
        let email = Email::parse("a@b.co").unwrap();
        let old = codec("old secret", &[]);
        let token = old.issue(Some(&email), None).token;
        assert_eq!(
            old.verify(&token).unwrap().email().map(Email::as_str),
            Some("a@b.co")
        );
        assert!(
            codec("new secret", &["old secret"])
                .verify(&token)
                .is_some()
        );
        assert!(codec("new secret", &[]).verify(&token).is_none());
    }

    #[test]
    fn tampering_is_detected() {
        let c = codec("s", &[]);
        let email = Email::parse("a@b.co").unwrap();
        let token = c.issue(Some(&email), None).token;
        let (body, tag) = token.split_once('.').unwrap();
        let forged = B64.encode(br#"{"v":1,"e":"evil@b.co","exp":99999999999}"#);
        assert!(c.verify(&format!("{forged}.{tag}")).is_none());
        assert!(
            c.verify(&format!("{body}.{}", B64.encode([0u8; 32])))
                .is_none()
        );
        assert!(c.verify(body).is_none());
        assert!(c.verify("").is_none());
        assert!(c.verify(&"a".repeat(5000)).is_none());
    }
}
