//! Secret values (server secret, SMTP password, API keys, auth tokens).
//!
//! A [`Secret`] never prints its content: both `Debug` and `Display` show
//! `***`, and the bytes are zeroed when it is dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string that never prints itself and is zeroed on drop.
///
/// ```
/// use tower_otp::Secret;
///
/// let key = Secret::new("SG.very-secret");
/// assert_eq!(format!("{key:?}"), "***");
/// assert_eq!(key.expose(), "SG.very-secret");
/// ```
///
/// `Secret` has no `PartialEq`: an `==` on secret bytes would be a
/// variable-time comparison. Where two secrets must be compared, use
/// [`Secret::ct_eq`], which takes the same time whatever the content (for
/// equal lengths).
///
/// ```compile_fail,E0369
/// use tower_otp::Secret;
///
/// let (a, b) = (Secret::new("a"), Secret::new("b"));
/// // Does not compile: `==` would stop at the first differing byte and leak,
/// // through its timing, how much of a secret was guessed. Use `a.ct_eq(&b)`.
/// let _ = a == b;
/// ```
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value. Call this only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether both secrets hold the same value, compared in constant time
    /// (the time depends on the lengths only).
    ///
    /// ```
    /// use tower_otp::Secret;
    ///
    /// assert!(Secret::new("a").ct_eq(&Secret::new("a")));
    /// assert!(!Secret::new("a").ct_eq(&Secret::new("b")));
    /// ```
    pub fn ct_eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// The server secret and the older secrets still accepted (key rotation),
/// with the per-purpose keys derived from each.
///
/// Index 0 is the current secret: new codes and grants use it. Older ones
/// only verify what was issued under them.
#[derive(Clone)]
pub(crate) struct KeyRing {
    entries: Vec<KeyEntry>,
}

/// One server secret and what is derived from it.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    /// A fingerprint naming this secret in stored records (not secret).
    pub(crate) id: u32,
    /// The raw secret: Argon2's secret input.
    pub(crate) secret: Zeroizing<Vec<u8>>,
    /// Key of the keyed digest that names a contact in store keys.
    pub(crate) store_key: Zeroizing<[u8; 32]>,
    /// Key that signs grants.
    pub(crate) grant_key: Zeroizing<[u8; 32]>,
}

impl KeyRing {
    /// Builds the ring from the current secret and the older ones.
    pub(crate) fn new(current: &Secret, old: &[Secret]) -> Self {
        let entries = std::iter::once(current)
            .chain(old)
            .map(|s| KeyEntry::derive(s.expose().as_bytes()))
            .collect();
        Self { entries }
    }

    /// The current secret's keys.
    pub(crate) fn current(&self) -> &KeyEntry {
        &self.entries[0]
    }

    /// Every accepted secret, current first.
    pub(crate) fn all(&self) -> &[KeyEntry] {
        &self.entries
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("secrets", &self.entries.len())
            .finish()
    }
}

impl KeyEntry {
    fn derive(secret: &[u8]) -> Self {
        let id_bytes = derive(secret, b"tower-otp/v1/secret-id");
        Self {
            id: u32::from_be_bytes([id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]]),
            secret: Zeroizing::new(secret.to_vec()),
            store_key: Zeroizing::new(derive(secret, b"tower-otp/v1/store-key")),
            grant_key: Zeroizing::new(derive(secret, b"tower-otp/v1/grant-key")),
        }
    }
}

impl KeyEntry {
    /// Key of the keyed digest that names a client address in a shared
    /// limiter store.
    pub(crate) fn limit_key(&self) -> [u8; 32] {
        derive(&self.secret, b"tower-otp/v1/limit-key")
    }
}

/// HMAC-SHA256(secret, label): one independent key per purpose.
fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key size");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let ring = KeyRing::new(&s, &[Secret::new("old")]);
        assert!(!format!("{ring:?}").contains("hunter2"));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_secret() {
        let ring = KeyRing::new(&Secret::new("a"), &[Secret::new("b")]);
        let (a, b) = (&ring.all()[0], &ring.all()[1]);
        assert_ne!(*a.store_key, *a.grant_key);
        assert_ne!(*a.store_key, *b.store_key);
        assert_ne!(a.id, b.id);
    }
}
