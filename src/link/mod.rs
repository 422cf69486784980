//! Email sign-in links and "this wasn't me" cancel links (opt-in with
//! [`OtpBuilder::email_links`](crate::OtpBuilder::email_links) or
//! `OTP_LINK_BASE_URL`).
//!
//! With links on, every code email also carries two links, each with its own
//! token of 128 random bits from the OS generator:
//!
//! - the **sign-in link** `<base>/otp/link/?t=<token>`: a GET or HEAD shows
//!   a small confirm page and spends nothing (mail scanners follow links);
//!   the page's button POSTs the token, which spends the pending code and
//!   sets the grant, exactly like a verify with the right code;
//! - the **cancel link** `<base>/otp/cancel/?t=<token>`: its POST destroys
//!   the pending code and blocks new sends to the address for a while.
//!
//! A token is `base64url(version ‖ kind ‖ contact digest ‖ random ‖
//! purpose)`: the contact digest is the store key's keyed digest (it names
//! the slot without revealing the address). The store holds, next to the
//! code, a link record with only keyed digests of both tokens, the code's
//! salt (a resend replaces the code, so an older link no longer matches),
//! an optional device-id digest, and the address as typed, encrypted
//! (ChaCha20-Poly1305) under keys derived from each token: a store dump
//! reveals neither a usable token nor the address.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{
    contact::{Email, hex},
    error::ConfigError,
    secret::KeyRing,
    store::StoreKey,
};

pub(crate) mod page;

/// Default time sends to an address stay blocked after its "this wasn't
/// me" link was used.
pub const DEFAULT_CANCEL_BLOCK: Duration = Duration::from_secs(3600);

/// The longest cancel block accepted (30 days).
const MAX_CANCEL_BLOCK: Duration = Duration::from_secs(30 * 24 * 3600);

/// The device cookie's name when it is `Secure` (the default).
pub const SECURE_DEVICE_COOKIE: &str = "__Host-otp_device";
/// The device cookie's name when it is not `Secure` (local development).
pub const DEVICE_COOKIE: &str = "otp_device";

/// Email sign-in and cancel links: where they point and how they behave.
///
/// ```
/// use std::time::Duration;
/// use tower_otp::{Otp, link::EmailLinks};
///
/// let otp = Otp::builder()
///     .secret("an example secret, use 32+ random bytes")
///     .email_links(
///         EmailLinks::new("https://app.example.com")
///             .redirect("/welcome")
///             .same_device(true)
///             .cancel_block(Duration::from_secs(1800)),
///     )
///     .build()
///     .unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLinks {
    base_url: String,
    redirect: String,
    same_device: bool,
    cancel_block: Duration,
}

impl EmailLinks {
    /// Links under `base_url` (`https://app.example.com`, or with a path:
    /// the configured route paths are appended to it). `http://` is for
    /// local development.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim().trim_end_matches('/').to_owned(),
            redirect: "/".to_owned(),
            same_device: false,
            cancel_block: DEFAULT_CANCEL_BLOCK,
        }
    }

    /// Where a browser goes (303) after a sign-in link succeeded: a local
    /// path (`/welcome`) or a URL under the base URL, never elsewhere (no
    /// open redirect). Default `/`.
    pub fn redirect(mut self, to: impl Into<String>) -> Self {
        self.redirect = to.into().trim().to_owned();
        self
    }

    /// Whether a sign-in link works only in the browser that asked for the
    /// code (a signed device cookie set by the send). Default off.
    pub fn same_device(mut self, on: bool) -> Self {
        self.same_device = on;
        self
    }

    /// How long sends to an address stay blocked after its cancel link was
    /// used (1 s to 30 days). Default [`DEFAULT_CANCEL_BLOCK`] (1 hour).
    pub fn cancel_block(mut self, block: Duration) -> Self {
        self.cancel_block = block;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where a successful sign-in link redirects.
    pub fn redirect_to(&self) -> &str {
        &self.redirect
    }

    /// Whether links are bound to the requesting browser.
    pub fn is_same_device(&self) -> bool {
        self.same_device
    }

    /// How long a cancel blocks sends.
    pub fn cancel_block_for(&self) -> Duration {
        self.cancel_block
    }

    /// Checks the settings; errors name `email_links` (the base URL),
    /// `link_redirect` or `cancel_block`.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let base = &self.base_url;
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| {
                ConfigError::invalid("email_links", "the base URL must start with https://")
            })?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.contains('@') || !url_safe(base) || base.contains(['?', '#']) {
            return Err(ConfigError::invalid(
                "email_links",
                "the base URL must be an origin with an optional path: no user, query or \
                 fragment, no spaces",
            ));
        }
        let redirect = &self.redirect;
        let local = redirect.starts_with('/') && !redirect.starts_with("//");
        let under_base = redirect == base
            || redirect
                .strip_prefix(base.as_str())
                .is_some_and(|tail| tail.starts_with(['/', '?']));
        if !(local || under_base) || !url_safe(redirect) || redirect.contains('\\') {
            return Err(ConfigError::invalid(
                "link_redirect",
                "must be a local path (`/welcome`) or a URL under the link base URL",
            ));
        }
        if self.cancel_block < Duration::from_secs(1) || self.cancel_block > MAX_CANCEL_BLOCK {
            return Err(ConfigError::invalid(
                "cancel_block",
                "must be 1 second to 30 days",
            ));
        }
        Ok(())
    }
}

/// Visible ASCII only (no spaces, quotes or angle brackets): safe in a
/// header and in an HTML attribute.
fn url_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'`' | b'\''))
}

/// What a link token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SignIn,
    Cancel,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Self::SignIn => b'l',
            Self::Cancel => b'c',
        }
    }
}

const TOKEN_VERSION: u8 = 1;
const DIGEST_LEN: usize = 16;
const RANDOM_LEN: usize = 16;
const HEAD_LEN: usize = 2 + DIGEST_LEN + RANDOM_LEN;
const MAX_PURPOSE_LEN: usize = 32;
/// No valid token is longer (base64 of the longest one).
pub(crate) const MAX_TOKEN_CHARS: usize = (HEAD_LEN + MAX_PURPOSE_LEN).div_ceil(3) * 4;

/// A parsed link token. Its bytes never reach a log (no `Debug` of them).
pub(crate) struct Token {
    kind: Kind,
    digest: [u8; DIGEST_LEN],
    random: Zeroizing<[u8; RANDOM_LEN]>,
    purpose: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Parses the text of a `t` parameter; `None` for anything that is not
    /// a well-formed token of `kind` (never panics, whatever the input).
    pub(crate) fn parse(text: &str, kind: Kind) -> Option<Self> {
        if text.is_empty() || text.len() > MAX_TOKEN_CHARS || !is_token_text(text) {
            return None;
        }
        let bytes = Zeroizing::new(B64.decode(text).ok()?);
        if bytes.len() <= HEAD_LEN || bytes.len() > HEAD_LEN + MAX_PURPOSE_LEN {
            return None;
        }
        if bytes[0] != TOKEN_VERSION || bytes[1] != kind.byte() {
            return None;
        }
        let digest: [u8; DIGEST_LEN] = bytes[2..2 + DIGEST_LEN].try_into().ok()?;
        let random: [u8; RANDOM_LEN] = bytes[2 + DIGEST_LEN..HEAD_LEN].try_into().ok()?;
        let purpose = std::str::from_utf8(&bytes[HEAD_LEN..]).ok()?;
        if !purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        Some(Self {
            kind,
            digest,
            random: Zeroizing::new(random),
            purpose: purpose.to_owned(),
        })
    }

    fn encode(&self) -> String {
        let mut bytes = Zeroizing::new(Vec::with_capacity(HEAD_LEN + self.purpose.len()));
        bytes.push(TOKEN_VERSION);
        bytes.push(self.kind.byte());
        bytes.extend_from_slice(&self.digest);
        bytes.extend_from_slice(&self.random[..]);
        bytes.extend_from_slice(self.purpose.as_bytes());
        B64.encode(&bytes[..])
    }

    /// The contact's store key (cooldown, quota, failure budget).
    pub(crate) fn contact_key(&self) -> StoreKey {
        StoreKey::new(hex(&self.digest))
    }

    /// The purpose named in the token (not yet checked against the
    /// registry).
    pub(crate) fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The bytes the keyed digest covers: everything in the token.
    fn mac_input(&self, mac: &mut Hmac<Sha256>) {
        mac.update(&[TOKEN_VERSION, self.kind.byte()]);
        mac.update(&self.digest);
        mac.update(&self.random[..]);
        mac.update(self.purpose.as_bytes());
    }
}

/// Whether `text` is base64url without padding (the only characters a
/// token has).
pub(crate) fn is_token_text(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A browser's device id (the same-device option).
#[derive(Clone)]
pub(crate) struct DeviceId(Zeroizing<[u8; 16]>);

impl std::fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceId(..)")
    }
}

/// What a send made: the two URLs for the email and the record to store.
pub(crate) struct IssuedLinks {
    pub(crate) sign_in_url: String,
    pub(crate) cancel_url: String,
    pub(crate) record: Vec<u8>,
}

impl std::fmt::Debug for IssuedLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedLinks(..)")
    }
}

/// A stored link record, read back.
pub(crate) struct LinkRecord {
    pub(crate) salt: [u8; 16],
    sign_in: [u8; 32],
    cancel: [u8; 32],
    device: Option<[u8; 32]>,
    sealed_sign_in: Vec<u8>,
    sealed_cancel: Vec<u8>,
}

const RECORD_VERSION: u8 = 1;

impl LinkRecord {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 16 + 32 * 3 + 1 + 2 + self.sealed_sign_in.len() + self.sealed_cancel.len(),
        );
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.sign_in);
        out.extend_from_slice(&self.cancel);
        out.push(u8::from(self.device.is_some()));
        out.extend_from_slice(&self.device.unwrap_or([0; 32]));
        let len = u16::try_from(self.sealed_sign_in.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.sealed_sign_in);
        out.extend_from_slice(&self.sealed_cancel);
        out
    }

    /// The inverse of `to_bytes`; `None` for anything malformed.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        const FIXED: usize = 1 + 16 + 32 + 32 + 1 + 32 + 2;
        if bytes.len() < FIXED || bytes[0] != RECORD_VERSION {
            return None;
        }
        let salt = bytes[1..17].try_into().ok()?;
        let sign_in = bytes[17..49].try_into().ok()?;
        let cancel = bytes[49..81].try_into().ok()?;
        let device: [u8; 32] = bytes[82..114].try_into().ok()?;
        let device = (bytes[81] == 1).then_some(device);
        let len = usize::from(u16::from_be_bytes(bytes[114..116].try_into().ok()?));
        let rest = &bytes[FIXED..];
        if rest.len() < len {
            return None;
        }
        Some(Self {
            salt,
            sign_in,
            cancel,
            device,
            sealed_sign_in: rest[..len].to_vec(),
            sealed_cancel: rest[len..].to_vec(),
        })
    }
}

/// How a link token stood against the stored record.
#[derive(Debug)]
pub(crate) enum Checked {
    /// The token is the record's: the address as typed.
    Valid(Email),
    /// The token is the record's, but the device cookie is missing or not
    /// the one the code was sent to.
    WrongDevice,
    /// No record, or another token's record (used, replaced, expired, or
    /// made up).
    NoMatch,
}

/// The links' settings and keys, ready to issue and check tokens.
pub(crate) struct Links {
    pub(crate) settings: EmailLinks,
    key: Zeroizing<[u8; 32]>,
    sign_in_base: String,
    cancel_base: String,
    pub(crate) cookie_secure: bool,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Links {
    /// Links under `settings`, served at `sign_in_path` and `cancel_path`
    /// (prefix included), keyed by the current secret.
    pub(crate) fn new(
        settings: EmailLinks,
        keys: &KeyRing,
        sign_in_path: &str,
        cancel_path: &str,
        cookie_secure: bool,
    ) -> Self {
        let key = Zeroizing::new(hmac(&keys.current().secret, &[b"tower-otp/v1/link-key"]));
        let sign_in_base = format!("{}{sign_in_path}?t=", settings.base_url);
        let cancel_base = format!("{}{cancel_path}?t=", settings.base_url);
        Self {
            settings,
            key,
            sign_in_base,
            cancel_base,
            cookie_secure,
        }
    }

    /// The device cookie's name for this `Secure` setting.
    pub(crate) fn device_cookie(&self) -> &'static str {
        if self.cookie_secure {
            SECURE_DEVICE_COOKIE
        } else {
            DEVICE_COOKIE
        }
    }

    /// Makes both tokens for the code stored at `code_key` (with `salt`)
    /// for `email`, and the record to store next to it.
    pub(crate) fn issue(
        &self,
        code_key: &StoreKey,
        email: &Email,
        salt: [u8; 16],
        device: Option<&DeviceId>,
    ) -> IssuedLinks {
        let digest = digest_bytes(code_key.as_str());
        let purpose = code_key
            .purpose()
            .unwrap_or(crate::purpose::DEFAULT_PURPOSE)
            .to_owned();
        let make = |kind| Token {
            kind,
            digest,
            random: Zeroizing::new(random_bytes()),
            purpose: purpose.clone(),
        };
        let sign_in = make(Kind::SignIn);
        let cancel = make(Kind::Cancel);
        let record = LinkRecord {
            salt,
            sign_in: self.token_digest(&sign_in),
            cancel: self.token_digest(&cancel),
            device: device.map(|d| self.device_digest(d)),
            sealed_sign_in: self.seal(&sign_in, email.as_str().as_bytes()),
            sealed_cancel: self.seal(&cancel, email.as_str().as_bytes()),
        };
        IssuedLinks {
            sign_in_url: format!("{}{}", self.sign_in_base, sign_in.encode()),
            cancel_url: format!("{}{}", self.cancel_base, cancel.encode()),
            record: record.to_bytes(),
        }
    }

    /// Checks `token` against the stored record bytes (`None`: no record),
    /// in constant time, and for a sign-in token with a device binding,
    /// the device.
    pub(crate) fn check(
        &self,
        token: &Token,
        stored: Option<&[u8]>,
        device: Option<&DeviceId>,
    ) -> (Checked, Option<[u8; 16]>) {
        let Some(record) = stored.and_then(LinkRecord::from_bytes) else {
            return (Checked::NoMatch, None);
        };
        let (expected, sealed) = match token.kind {
            Kind::SignIn => (&record.sign_in, &record.sealed_sign_in),
            Kind::Cancel => (&record.cancel, &record.sealed_cancel),
        };
        if !bool::from(self.token_digest(token).ct_eq(expected)) {
            return (Checked::NoMatch, None);
        }
        let Some(email) = self
            .open(token, sealed)
            .and_then(|plain| String::from_utf8(plain.to_vec()).ok())
            .and_then(|address| Email::parse(&address).ok())
        else {
            return (Checked::NoMatch, None);
        };
        if token.kind == Kind::SignIn
            && let Some(bound) = &record.device
        {
            let same = device.is_some_and(|d| bool::from(self.device_digest(d).ct_eq(bound)));
            if !same {
                return (Checked::WrongDevice, Some(record.salt));
            }
        }
        (Checked::Valid(email), Some(record.salt))
    }

    fn token_digest(&self, token: &Token) -> [u8; 32] {
        let mut mac = new_mac(&self.key[..]);
        mac.update(b"token:");
        token.mac_input(&mut mac);
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self, token: &Token) -> ChaCha20Poly1305 {
        let key = Zeroizing::new(hmac(
            &self.key[..],
            &[b"seal:", &[token.kind.byte()], &token.random[..]],
        ));
        ChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key))
    }

    fn aad(token: &Token) -> Vec<u8> {
        let mut aad = token.digest.to_vec();
        aad.extend_from_slice(token.purpose.as_bytes());
        aad
    }

    /// Encrypts `plain` under a key derived from the token: each key seals
    /// one message only, so the nonce is fixed.
    fn seal(&self, token: &Token, plain: &[u8]) -> Vec<u8> {
        let aad = Self::aad(token);
        self.cipher(token)
            .encrypt(
                &Default::default(),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default()
    }

    fn open(&self, token: &Token, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let aad = Self::aad(token);
        self.cipher(token)
            .decrypt(
                &Default::default(),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// A fresh device id.
    pub(crate) fn new_device(&self) -> DeviceId {
        DeviceId(Zeroizing::new(random_bytes()))
    }

    /// The signed cookie value of a device id.
    pub(crate) fn device_cookie_value(&self, device: &DeviceId) -> String {
        let tag = hmac(&self.key[..], &[b"device-cookie:", &device.0[..]]);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes[..16].copy_from_slice(&device.0[..]);
        bytes[16..].copy_from_slice(&tag[..16]);
        B64.encode(&bytes[..])
    }

    /// The device id of a signed cookie value, if its signature holds.
    pub(crate) fn device_from_cookie(&self, value: &str) -> Option<DeviceId> {
        if value.len() != 43 || !is_token_text(value) {
            return None;
        }
        let bytes = Zeroizing::new(B64.decode(value).ok()?);
        let id: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
        let tag = hmac(&self.key[..], &[b"device-cookie:", &id]);
        bool::from(tag[..16].ct_eq(bytes.get(16..32)?)).then(|| DeviceId(Zeroizing::new(id)))
    }

    /// The device id carried by the request's device cookie, if valid.
    pub(crate) fn device_in(&self, headers: &http::HeaderMap) -> Option<DeviceId> {
        let name = self.device_cookie();
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| crate::gate::location::cookie_pairs(v, name))
            .find_map(|value| self.device_from_cookie(value))
    }

    fn device_digest(&self, device: &DeviceId) -> [u8; 32] {
        hmac(&self.key[..], &[b"device-id:", &device.0[..]])
    }
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key size")
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The 16 bytes of a store key's hex digest (zeros for anything else,
/// which no store key is).
fn digest_bytes(hex_digest: &str) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    for (i, pair) in hex_digest.as_bytes().chunks(2).take(DIGEST_LEN).enumerate() {
        let value = std::str::from_utf8(pair)
            .ok()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .unwrap_or(0);
        out[i] = value;
    }
    out
}

fn random_bytes() -> [u8; 16] {
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn links(same_device: bool) -> Links {
        let keys = KeyRing::new(&Secret::new("a test secret of 32 bytes or so!"), &[]);
        Links::new(
            EmailLinks::new("https://app.example.com/").same_device(same_device),
            &keys,
            "/otp/link/",
            "/otp/cancel/",
            true,
        )
    }

    fn token_of(url: &str) -> &str {
        url.split_once("?t=").unwrap().1
    }

    #[test]
    fn a_token_opens_its_own_record_only() {
        let links = links(false);
        let key = StoreKey::new("00112233445566778899aabbccddeeff").with_purpose("login");
        let email = Email::parse("Ada@Example.com").unwrap();
        let issued = links.issue(&key, &email, [7; 16], None);
        assert!(
            issued
                .sign_in_url
                .starts_with("https://app.example.com/otp/link/?t=")
        );
        let sign_in = Token::parse(token_of(&issued.sign_in_url), Kind::SignIn).unwrap();
        assert_eq!(sign_in.purpose(), "login");
        assert_eq!(sign_in.contact_key(), StoreKey::new(key.as_str()));
        match links.check(&sign_in, Some(&issued.record), None) {
            (Checked::Valid(e), Some(salt)) => {
                assert_eq!(e.as_str(), "Ada@example.com");
                assert_eq!(salt, [7; 16]);
            }
            other => panic!("{other:?}"),
        }
        // A sign-in token is not a cancel token.
        assert!(Token::parse(token_of(&issued.sign_in_url), Kind::Cancel).is_none());
        let cancel = Token::parse(token_of(&issued.cancel_url), Kind::Cancel).unwrap();
        assert!(matches!(
            links.check(&cancel, Some(&issued.record), None).0,
            Checked::Valid(_)
        ));
        // Another issue's record does not match.
        let other = links.issue(&key, &email, [8; 16], None);
        assert!(matches!(
            links.check(&sign_in, Some(&other.record), None).0,
            Checked::NoMatch
        ));
        // The record holds neither the address nor the token.
        let record = String::from_utf8_lossy(&issued.record).to_lowercase();
        assert!(!record.contains("ada") && !record.contains("example"));
    }

    #[test]
    fn garbage_never_parses_and_never_panics() {
        for text in [
            "",
            "a",
            "%%%",
            "AQ",
            &"A".repeat(10_000),
            "AWwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "Ã©Ã©",
        ] {
            assert!(Token::parse(text, Kind::SignIn).is_none(), "{text}");
        }
        let links = links(false);
        assert!(LinkRecord::from_bytes(&[1; 10]).is_none());
        assert!(links.device_from_cookie("x").is_none());
    }

    #[test]
    fn a_bound_link_needs_its_device() {
        let links = links(true);
        let key = StoreKey::new("00112233445566778899aabbccddeeff");
        let email = Email::parse("a@b.co").unwrap();
        let device = links.new_device();
        let issued = links.issue(&key, &email, [1; 16], Some(&device));
        let token = Token::parse(token_of(&issued.sign_in_url), Kind::SignIn).unwrap();
        assert!(matches!(
            links.check(&token, Some(&issued.record), None).0,
            Checked::WrongDevice
        ));
        let other = links.new_device();
        assert!(matches!(
            links.check(&token, Some(&issued.record), Some(&other)).0,
            Checked::WrongDevice
        ));
        let cookie = links.device_cookie_value(&device);
        let back = links.device_from_cookie(&cookie).unwrap();
        assert!(matches!(
            links.check(&token, Some(&issued.record), Some(&back)).0,
            Checked::Valid(_)
        ));
        let mut forged = cookie.into_bytes();
        forged[40] = if forged[40] == b'A' { b'B' } else { b'A' };
        assert!(
            links
                .device_from_cookie(std::str::from_utf8(&forged).unwrap())
                .is_none()
        );
    }

    #[test]
    fn settings_refuse_open_redirects_and_odd_urls() {
        let ok = EmailLinks::new("https://app.example.com");
        assert!(ok.clone().validate().is_ok());
        assert!(ok.clone().redirect("/welcome?x=1").validate().is_ok());
        assert!(
            ok.clone()
                .redirect("https://app.example.com/home")
                .validate()
                .is_ok()
        );
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a b",
        ] {
            let err = ok.clone().redirect(bad).validate().unwrap_err();
            assert!(err.to_string().contains("link_redirect"), "{bad}: {err}");
        }
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://",
            "https://a/?q",
            "https://u@a",
        ] {
            assert!(EmailLinks::new(bad).validate().is_err(), "{bad}");
        }
        assert!(ok.cancel_block(Duration::ZERO).validate().is_err());
    }
}
