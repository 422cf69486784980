//! Contacts: email addresses and mobile numbers, normalized before anything
//! else sees them.
//!
//! - [`Email`]: trimmed, the domain lower-cased, ASCII dot-atom local part.
//!   Anything that could smuggle a header (CR, LF, `<`, `>`, `,`, `;`, …) is
//!   refused. Internationalized addresses are refused as `invalid_email`.
//! - [`Mobile`]: parsed with the `phonenumber` crate and stored in E.164
//!   (`+919812345678`). A number without a leading `+` is read in the
//!   configured default region, and refused when there is none.
//!
//! Both mask themselves for logs (`a***@example.com`, `+91******5678`), and
//! both give a keyed digest used as the store key, so the store never holds
//! a raw address or number.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A phone number region (ISO 3166-1 alpha-2, e.g. `IN`, `US`), used to read
/// numbers written without a leading `+`.
pub type Region = phonenumber::country::Id;

/// Why a contact was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidContact {
    /// Not a deliverable email address.
    #[error("not a valid email address")]
    Email,
    /// Not a deliverable mobile number.
    #[error("not a valid mobile number")]
    Mobile,
    /// A valid number that cannot receive SMS (fixed line, premium rate,
    /// shared cost, toll free, voicemail, ...).
    #[error("this number cannot receive text messages")]
    CannotReceiveSms,
}

/// The two verification channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Email, code sent by email.
    Email,
    /// Mobile number, code sent by SMS.
    Mobile,
}

impl Channel {
    /// `"email"` or `"mobile"`, as used in JSON bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Mobile => "mobile",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channels a layer serves (`OTP_CHANNELS`). A channel turned off has
/// no routes: its paths pass through to the inner service, and the
/// production checks ignore its sender.
///
/// ```
/// use tower_otp::{Channel, Channels};
///
/// let email_only: Channels = "email".parse().unwrap();
/// assert!(email_only.contains(Channel::Email));
/// assert!(!email_only.contains(Channel::Mobile));
/// assert_eq!("email, mobile".parse::<Channels>().unwrap(), Channels::BOTH);
/// assert!("fax".parse::<Channels>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    email: bool,
    mobile: bool,
}

impl Channels {
    /// Email and mobile (the default).
    pub const BOTH: Self = Self {
        email: true,
        mobile: true,
    };
    /// Email only.
    pub const EMAIL: Self = Self {
        email: true,
        mobile: false,
    };
    /// Mobile only.
    pub const MOBILE: Self = Self {
        email: false,
        mobile: true,
    };

    /// Whether `channel` is served.
    pub fn contains(self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email,
            Channel::Mobile => self.mobile,
        }
    }
}

impl Default for Channels {
    fn default() -> Self {
        Self::BOTH
    }
}

impl std::str::FromStr for Channels {
    type Err = String;

    /// `email`, `mobile` or `email,mobile` (any order, spaces allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut channels = Self {
            email: false,
            mobile: false,
        };
        for part in s.split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "email" => channels.email = true,
                "mobile" => channels.mobile = true,
                _ => return Err(format!("{part:?} is not a channel (email, mobile)")),
            }
        }
        Ok(channels)
    }
}

/// A normalized email address.
///
/// ```
/// use tower_otp::Email;
///
/// let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
/// assert_eq!(email.as_str(), "Ada.Lovelace@example.com");
/// assert_eq!(email.masked().to_string(), "A***@example.com");
/// assert!(Email::parse("a@b.co\r\nBcc: x@y.z").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// The longest address SMTP can carry (RFC 5321 path limit less the brackets).
const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

impl Email {
    /// Parses and normalizes an address: trims it, lower-cases the domain,
    /// and refuses anything that is not a plain deliverable address.
    pub fn parse(input: &str) -> Result<Self, InvalidContact> {
        let input = input.trim();
        if input.is_empty() || input.len() > MAX_EMAIL_LEN || !input.is_ascii() {
            return Err(InvalidContact::Email);
        }
        let (local, domain) = input.rsplit_once('@').ok_or(InvalidContact::Email)?;
        if !valid_local_part(local) || !valid_domain(domain) {
            return Err(InvalidContact::Email);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an address that was normalized earlier (read back from a
    /// signed grant).
    pub(crate) fn from_trusted(normalized: String) -> Self {
        Self(normalized)
    }

    /// The canonical mailbox: the identity the crate's limits and store
    /// keys use, so that variants of one inbox share one cooldown, one
    /// quota, one failure budget and one pending code.
    ///
    /// The local part is lower-cased and any `+tag` removed; for
    /// `gmail.com` and `googlemail.com` the dots of the local part are
    /// removed too and the domain becomes `gmail.com`. Mail still goes to
    /// the address as typed ([`as_str`](Self::as_str)); use this form only
    /// to compare or key addresses (for example to refuse a second account
    /// for one inbox).
    ///
    /// ```
    /// use tower_otp::Email;
    ///
    /// let canonical = |s: &str| Email::parse(s).unwrap().canonical();
    /// assert_eq!(canonical("Ada+news@Example.com"), "ada@example.com");
    /// assert_eq!(canonical("ada@example.com"), canonical("ADA@example.com"));
    /// assert_eq!(canonical("A.Da+x@GoogleMail.com"), "ada@gmail.com");
    /// // Dots matter at other providers.
    /// assert_eq!(canonical("a.da@example.com"), "a.da@example.com");
    /// ```
    pub fn canonical(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or(("", &self.0));
        let mut local = local.to_ascii_lowercase();
        // "+tag@x" keeps its whole local part: there is no mailbox before it.
        if let Some(plus) = local.find('+').filter(|&at| at > 0) {
            local.truncate(plus);
        }
        let domain = match domain {
            "gmail.com" | "googlemail.com" => {
                local.retain(|c| c != '.');
                "gmail.com"
            }
            other => other,
        };
        format!("{local}@{domain}")
    }

    /// The domain part (lower-case).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// A form safe for logs: `a***@example.com`.
    pub fn masked(&self) -> Masked<'_> {
        Masked(MaskedInner::Email(self))
    }
}

/// RFC 5322 dot-atom: atext runs separated by single dots.
fn valid_local_part(local: &str) -> bool {
    const ATEXT_SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(&b))
        })
}

/// A DNS host name with at least two labels and an alphabetic top-level label.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| {
            tld.len() >= 2
                && (tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--"))
        })
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email")
            .field(&self.masked().to_string())
            .finish()
    }
}

/// A mobile number in E.164 form.
///
/// ```
/// use tower_otp::{Mobile, Region};
///
/// let m = Mobile::parse("098123 45678", Some(Region::IN)).unwrap();
/// assert_eq!(m.as_str(), "+919812345678");
/// assert_eq!(m.masked().to_string(), "+91******5678");
/// assert!(Mobile::parse("9812345678", None).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mobile {
    e164: String,
    country_code: u16,
}

impl Mobile {
    /// Parses a number, reading it in `default_region` when it has no
    /// leading `+`, and normalizes it to E.164.
    pub fn parse(input: &str, default_region: Option<Region>) -> Result<Self, InvalidContact> {
        let input = input.trim();
        let allowed = |c: char| c.is_ascii_digit() || " -().".contains(c);
        let (plus, rest) = match input.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        if rest.is_empty() || rest.len() > 32 || !rest.chars().all(allowed) {
            return Err(InvalidContact::Mobile);
        }
        let region = if plus {
            None
        } else {
            Some(default_region.ok_or(InvalidContact::Mobile)?)
        };
        let number = phonenumber::parse(region, input).map_err(|_| InvalidContact::Mobile)?;
        if !phonenumber::is_valid(&number) {
            return Err(InvalidContact::Mobile);
        }
        if !can_receive_sms(&number) {
            return Err(InvalidContact::CannotReceiveSms);
        }
        Ok(Self {
            e164: number.format().mode(phonenumber::Mode::E164).to_string(),
            country_code: number.code().value(),
        })
    }

    /// Wraps a number that was normalized earlier (read back from a signed
    /// grant).
    pub(crate) fn from_trusted(e164: String, country_code: u16) -> Self {
        Self { e164, country_code }
    }

    /// The number in E.164 form, e.g. `+919812345678`.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The country calling code, e.g. `91`.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// A form safe for logs: `+91******5678`.
    pub fn masked(&self) -> Masked<'_> {
        Masked(MaskedInner::Mobile(self))
    }
}

/// Refuses number types that cannot take an SMS or that are abused for
/// toll fraud (premium rate, shared cost, fixed line).
fn can_receive_sms(number: &phonenumber::PhoneNumber) -> bool {
    use phonenumber::Type;
    !matches!(
        number.number_type(&phonenumber::metadata::DATABASE),
        Type::FixedLine
            | Type::PremiumRate
            | Type::SharedCost
            | Type::TollFree
            | Type::Voicemail
            | Type::Uan
            | Type::Unknown
    )
}

impl fmt::Debug for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mobile")
            .field(&self.masked().to_string())
            .finish()
    }
}

// Conversions. Neither type implements `Display`: a raw address or number
// must not slip into a log line through `{}`; log `masked()` instead, and
// call `as_str()` where the raw value is really needed.

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Mobile {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// [`Email::parse`].
///
/// ```
/// use tower_otp::Email;
///
/// let email: Email = " ada@Example.com".parse().unwrap();
/// assert_eq!(email.as_ref(), "ada@example.com");
/// ```
impl std::str::FromStr for Email {
    type Err = InvalidContact;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// [`Mobile::parse`] with no default region: the number needs its leading
/// `+`. Use [`Mobile::parse`] to read national numbers in a region.
///
/// ```
/// use tower_otp::Mobile;
///
/// let m: Mobile = "+91 98123 45678".parse().unwrap();
/// assert_eq!(m.as_ref(), "+919812345678");
/// assert!("98123 45678".parse::<Mobile>().is_err());
/// ```
impl std::str::FromStr for Mobile {
    type Err = InvalidContact;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, None)
    }
}

/// The normalized address, as a string.
impl serde::Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A string, normalized and validated as [`Email::parse`] does; an invalid
/// address is a deserialization error.
///
/// ```
/// use tower_otp::Email;
///
/// let email: Email = serde_json::from_str(r#""Ada@Example.COM""#).unwrap();
/// assert_eq!(serde_json::to_string(&email).unwrap(), r#""Ada@example.com""#);
/// assert!(serde_json::from_str::<Email>(r#""not an address""#).is_err());
/// ```
impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The number in E.164, as a string.
impl serde::Serialize for Mobile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A string, normalized and validated as [`Mobile::parse`] does with no
/// default region (the number needs its `+`); an invalid number is a
/// deserialization error.
///
/// ```
/// use tower_otp::Mobile;
///
/// let m: Mobile = serde_json::from_str(r#""+91 98123-45678""#).unwrap();
/// assert_eq!(serde_json::to_string(&m).unwrap(), r#""+919812345678""#);
/// ```
impl<'de> serde::Deserialize<'de> for Mobile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&raw, None).map_err(serde::de::Error::custom)
    }
}

/// An email address or a mobile number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Contact {
    /// An email address.
    Email(Email),
    /// A mobile number.
    Mobile(Mobile),
}

impl Contact {
    /// The channel this contact is verified on.
    pub fn channel(&self) -> Channel {
        match self {
            Self::Email(_) => Channel::Email,
            Self::Mobile(_) => Channel::Mobile,
        }
    }

    /// The normalized value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(e) => e.as_str(),
            Self::Mobile(m) => m.as_str(),
        }
    }

    /// A form safe for logs.
    pub fn masked(&self) -> Masked<'_> {
        match self {
            Self::Email(e) => e.masked(),
            Self::Mobile(m) => m.masked(),
        }
    }

    /// The keyed digest of the contact's identity (HMAC-SHA256, 128 bits in
    /// hex), used in store keys and per-contact limits so that a leaked store
    /// reveals no address or number. An address is keyed by its
    /// [canonical mailbox](Email::canonical): variants of one inbox share
    /// one key.
    pub(crate) fn digest(&self, key: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key size");
        mac.update(self.channel().as_str().as_bytes());
        mac.update(b":");
        match self {
            Self::Email(email) => mac.update(email.canonical().as_bytes()),
            Self::Mobile(mobile) => mac.update(mobile.as_str().as_bytes()),
        }
        let tag = mac.finalize().into_bytes();
        hex(&tag[..16])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A contact masked for logs; `Display` prints `a***@example.com` or
/// `+91******5678`.
#[derive(Debug, Clone, Copy)]
pub struct Masked<'a>(MaskedInner<'a>);

#[derive(Debug, Clone, Copy)]
enum MaskedInner<'a> {
    Email(&'a Email),
    Mobile(&'a Mobile),
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            MaskedInner::Email(email) => {
                let first = email.0.chars().next().unwrap_or('*');
                write!(f, "{first}***@{}", email.domain())
            }
            MaskedInner::Mobile(mobile) => {
                let cc = mobile.country_code.to_string();
                let national = mobile.e164.get(1 + cc.len()..).unwrap_or_default();
                let keep = national.len().min(4);
                let hidden = national.len() - keep;
                write!(f, "+{cc}{}{}", "*".repeat(hidden), &national[hidden..])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_hostile_ones_refused() {
        assert_eq!(Email::parse("a@B.Co").unwrap().as_str(), "a@b.co");
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.co",
            "a b@c.co",
            "a@b.co\r\nBcc: evil@x.co",
            "<a@b.co>",
            "a,b@c.co",
            "a;b@c.co",
            ".a@b.co",
            "a..b@c.co",
            "a@-b.co",
            "a@b.c0",
            "jörg@b.co",
            "a@bü.co",
            "\"quoted\"@b.co",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        // Surrounding whitespace is trimmed, not refused.
        assert_eq!(Email::parse(" a@b.co\n").unwrap().as_str(), "a@b.co");
        let long_local = format!("{}@b.co", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
    }

    #[test]
    fn mobiles_are_normalized_to_e164() {
        let m = Mobile::parse("+91 98123-45678", None).unwrap();
        assert_eq!(m.as_str(), "+919812345678");
        assert_eq!(m.country_code(), 91);
        assert!(Mobile::parse("+1 (415) 555-0123x", None).is_err());
        assert!(Mobile::parse("+12", None).is_err());
        assert!(Mobile::parse("+91 9812345678\r\n", None).is_ok());
        assert!(Mobile::parse("++919812345678", None).is_err());
    }

    #[test]
    fn digests_are_keyed_and_do_not_contain_the_contact() {
        let c = Contact::Email(Email::parse("a@b.co").unwrap());
        let d1 = c.digest(b"key one");
        assert_eq!(d1.len(), 32);
        // Keyed: another key names the same contact differently.
        assert_ne!(d1, c.digest(b"key two"));
        // Stable, and per contact and channel.
        assert_eq!(
            d1,
            Contact::Email(Email::parse("a@b.co").unwrap()).digest(b"key one")
        );
        assert_ne!(
            d1,
            Contact::Email(Email::parse("b@b.co").unwrap()).digest(b"key one")
        );
        // Pinned: HMAC-SHA256("key one", "email:a@b.co"), first 16 bytes.
        assert_eq!(d1, expected_digest(b"key one", "email:a@b.co"));
    }

    /// An independent HMAC-SHA256 over `channel:value`, in hex.
    fn expected_digest(key: &[u8], input: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }
}
