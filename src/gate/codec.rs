//! The verification grant: a signed token saying which contacts the caller
//! proved, and until when.
//!
//! Format: `base64url(payload).base64url(mac)`, where the payload is a small
//! JSON object and the MAC is HMAC-SHA256 over the first part with a key
//! derived from the server secret. The payload (version 2) carries an
//! audience (the app id: a grant for another app is refused even with the
//! right secret), an id, and each proven contact with its channel, purpose
//! and own expiry. Grants signed with an older secret still verify while
//! that secret is listed as old (key rotation), but what they prove is not
//! carried into a new grant. The grant is
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

use super::{
    location::GrantLocation,
    proof::{Proof, VerifiedContact},
};
use crate::{
    contact::{Contact, Email, Mobile},
    secret::KeyRing,
};

/// Tokens longer than this are refused before any work (a cookie holds
/// about 4 KiB).
const MAX_TOKEN_LEN: usize = 4000;
/// Grant format version 2: an audience and per-contact proofs.
const VERSION: u8 = 2;
/// The most proofs one grant carries (one per channel and purpose); past
/// it the earliest-expiring are dropped.
const MAX_PROOFS: usize = 8;

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// The audience: the app the grant is for (`OTP_APP_ID`).
    aud: String,
    /// The grant's id (128 random bits), which single-use mode records as
    /// spent.
    j: String,
    /// The proven contacts.
    p: Vec<WireProof>,
}

#[derive(Serialize, Deserialize)]
struct WireProof {
    /// `e` (email) or `m` (mobile).
    k: String,
    /// The address or number as proven.
    v: String,
    /// The mobile number's country calling code (for masking without a
    /// parse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cc: Option<u16>,
    /// The purpose.
    p: String,
    /// Expiry, unix seconds.
    x: u64,
}

impl WireProof {
    fn from_proof(proof: &Proof) -> Self {
        let (k, cc) = match &proof.contact {
            Contact::Email(_) => ("e", None),
            Contact::Mobile(m) => ("m", Some(m.country_code())),
        };
        Self {
            k: k.to_owned(),
            v: proof.contact.as_str().to_owned(),
            cc,
            p: proof.purpose.clone(),
            x: proof.expires_at,
        }
    }

    fn into_proof(self) -> Option<Proof> {
        let contact = match (self.k.as_str(), self.cc) {
            ("e", None) => Contact::Email(Email::from_trusted(self.v)),
            ("m", Some(cc)) => Contact::Mobile(Mobile::from_trusted(self.v, cc)),
            _ => return None,
        };
        Some(Proof {
            contact,
            purpose: self.p,
            expires_at: self.x,
        })
    }
}

/// Signs and checks grants.
#[derive(Debug, Clone)]
pub(crate) struct GrantCodec {
    keys: Arc<KeyRing>,
    ttl: Duration,
    audience: Arc<str>,
}

impl GrantCodec {
    pub(crate) fn new(keys: Arc<KeyRing>, ttl: Duration, audience: &str) -> Self {
        Self {
            keys,
            ttl,
            audience: audience.into(),
        }
    }

    /// Signs a grant proving `contact` for `purpose` from now for the
    /// configured TTL, plus what `held` proves: a held proof keeps its own
    /// expiry (a merge never extends a proof), a held proof of the same
    /// channel and purpose is replaced, and nothing is carried from a grant
    /// that verified only under a rotated-out secret.
    pub(crate) fn issue(
        &self,
        contact: &Contact,
        purpose: &str,
        held: Option<&VerifiedContact>,
    ) -> VerifiedToken {
        let now = unix_now();
        let carried = held
            .filter(|grant| grant.signed_with_current_key())
            .map(VerifiedContact::proofs)
            .unwrap_or_default()
            .iter()
            .filter(|p| {
                p.is_live(now)
                    && !(p.purpose == purpose && p.contact.channel() == contact.channel())
            })
            .cloned();
        let fresh = Proof {
            contact: contact.clone(),
            purpose: purpose.to_owned(),
            expires_at: now + self.ttl.as_secs().max(1),
        };
        self.sign(std::iter::once(fresh).chain(carried).collect())
    }

    /// Signs a grant carrying exactly `proofs` (test support).
    #[cfg(feature = "test-util")]
    pub(crate) fn issue_fresh(&self, contacts: &[Contact]) -> VerifiedToken {
        let expires_at = unix_now() + self.ttl.as_secs().max(1);
        let proofs = contacts
            .iter()
            .map(|contact| Proof {
                contact: contact.clone(),
                purpose: super::proof::DEFAULT_PURPOSE.to_owned(),
                expires_at,
            })
            .collect();
        self.sign(proofs)
    }

    fn sign(&self, mut proofs: Vec<Proof>) -> VerifiedToken {
        if proofs.len() > MAX_PROOFS {
            proofs.sort_by_key(|p| std::cmp::Reverse(p.expires_at));
            proofs.truncate(MAX_PROOFS);
        }
        let payload = Payload {
            v: VERSION,
            aud: self.audience.to_string(),
            j: grant_id(),
            p: proofs.iter().map(WireProof::from_proof).collect(),
        };
        let json = serde_json::to_vec(&payload).expect("grant payload serializes");
        let body = B64.encode(json);
        let tag = mac(&self.keys.current().grant_key[..], body.as_bytes());
        VerifiedToken {
            token: format!("{body}.{}", B64.encode(tag)),
            contact: VerifiedContact::from_proofs(proofs, Some(payload.j), true),
        }
    }

    /// Checks a token: signature (under any accepted secret), format,
    /// version, audience and expiry. `None` for anything that does not
    /// pass; expired proofs are left out of what it proves.
    pub(crate) fn verify(&self, token: &str) -> Option<VerifiedContact> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (body, tag) = token.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        let signer = self.keys.all().iter().position(|entry| {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&entry.grant_key[..])
                .expect("HMAC takes any key size");
            m.update(body.as_bytes());
            m.verify_slice(&tag).is_ok()
        })?;
        let payload: Payload = serde_json::from_slice(&B64.decode(body).ok()?).ok()?;
        if payload.v != VERSION
            || payload.aud.as_bytes() != self.audience.as_bytes()
            || payload.p.len() > MAX_PROOFS
        {
            return None;
        }
        let now = unix_now();
        let proofs: Vec<Proof> = payload
            .p
            .into_iter()
            .map(WireProof::into_proof)
            .collect::<Option<_>>()?;
        let live: Vec<Proof> = proofs.into_iter().filter(|p| p.is_live(now)).collect();
        if live.is_empty() {
            return None;
        }
        Some(VerifiedContact::from_proofs(
            live,
            Some(payload.j),
            signer == 0,
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
    let mut value = HeaderValue::from_str(&value).expect("cookie name is header-safe");
    value.set_sensitive(true);
    value
}

/// The `Set-Cookie` value carrying a grant.
pub(crate) fn set_cookie(name: &str, token: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{name}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    );
    let mut value = HeaderValue::from_str(&value).expect("cookie name and token are header-safe");
    // Kept out of `http`'s Debug output (header logging).
    value.set_sensitive(true);
    value
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
    use crate::{Secret, gate::proof::DEFAULT_PURPOSE};

    fn codec_for(secret: &str, old: &[&str], audience: &str) -> GrantCodec {
        let old: Vec<Secret> = old.iter().map(|s| Secret::new(*s)).collect();
        GrantCodec::new(
            Arc::new(KeyRing::new(&Secret::new(secret), &old)),
            Duration::from_secs(60),
            audience,
        )
    }

    fn codec(secret: &str, old: &[&str]) -> GrantCodec {
        codec_for(secret, old, "app")
    }

    fn email(s: &str) -> Contact {
        Contact::Email(Email::parse(s).unwrap())
    }

    fn mobile() -> Contact {
        Contact::Mobile(Mobile::parse("+14155550123", None).unwrap())
    }

    #[test]
    fn round_trip_and_rotation() {
        let old = codec("old secret", &[]);
        let token = old.issue(&email("a@b.co"), DEFAULT_PURPOSE, None).token;
        let proven = old.verify(&token).unwrap();
        assert_eq!(proven.email().map(Email::as_str), Some("a@b.co"));
        assert!(proven.signed_with_current_key());
        let rotated = codec("new secret", &["old secret"]).verify(&token).unwrap();
        assert!(!rotated.signed_with_current_key());
        assert!(codec("new secret", &[]).verify(&token).is_none());
    }

    #[test]
    fn another_audience_is_refused() {
        let token = codec_for("s", &[], "shop")
            .issue(&email("a@b.co"), DEFAULT_PURPOSE, None)
            .token;
        assert!(codec_for("s", &[], "shop").verify(&token).is_some());
        assert!(codec_for("s", &[], "blog").verify(&token).is_none());
    }

    #[test]
    fn a_merge_keeps_each_expiry_and_drops_old_key_proofs() {
        let c = codec("s", &[]);
        let first = c.issue(&email("a@b.co"), DEFAULT_PURPOSE, None);
        let email_expiry = first.contact.proofs()[0].expires_at;
        let merged = c.issue(&mobile(), DEFAULT_PURPOSE, Some(&first.contact));
        let proofs = merged.contact.proofs();
        assert_eq!(proofs.len(), 2);
        let carried = proofs
            .iter()
            .find(|p| p.contact == email("a@b.co"))
            .unwrap();
        assert_eq!(carried.expires_at, email_expiry);

        // Held under a rotated-out secret: nothing is carried.
        let old = codec("old", &[]).issue(&email("a@b.co"), DEFAULT_PURPOSE, None);
        let rotated = codec("new", &["old"]);
        let held = rotated.verify(&old.token).unwrap();
        let merged = rotated.issue(&mobile(), DEFAULT_PURPOSE, Some(&held));
        assert_eq!(merged.contact.proofs().len(), 1);
        assert!(merged.contact.email().is_none());
    }

    #[test]
    fn expired_proofs_are_left_out() {
        let c = codec("s", &[]);
        let expired = Proof {
            contact: email("old@b.co"),
            purpose: DEFAULT_PURPOSE.into(),
            expires_at: unix_now() - 1,
        };
        let live = Proof {
            contact: mobile(),
            purpose: DEFAULT_PURPOSE.into(),
            expires_at: unix_now() + 60,
        };
        let token = c.sign(vec![expired.clone(), live]).token;
        let proven = c.verify(&token).unwrap();
        assert!(proven.email().is_none());
        assert!(proven.mobile().is_some());
        assert!(c.verify(&c.sign(vec![expired]).token).is_none());
    }

    #[test]
    fn tampering_is_detected() {
        let c = codec("s", &[]);
        let token = c.issue(&email("a@b.co"), DEFAULT_PURPOSE, None).token;
        let (body, tag) = token.split_once('.').unwrap();
        let forged = B64.encode(
            br#"{"v":2,"aud":"app","j":"x","p":[{"k":"e","v":"evil@b.co","p":"verify","x":99999999999}]}"#,
        );
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
