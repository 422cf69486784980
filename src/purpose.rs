//! Purposes: what a code and a proof are for (`verify`, `signup`, `login`,
//! `reset`, `change_contact`, or one the host registers).
//!
//! A code is sent and verified for one purpose, and the grant records each
//! proven contact with its purpose. The extractors take the purpose as a
//! type: [`VerifiedEmail<Login>`](crate::VerifiedEmail) accepts only a proof
//! made for `login`; the plain forms mean [`Verify`] (the default); an
//! [`AnyPurpose`] parameter accepts any. A host declares its own purpose in
//! one line and registers it on the builder:
//!
//! ```
//! use tower_otp::{Otp, purpose::Purpose};
//!
//! tower_otp::purpose!(pub Checkout = "checkout");
//!
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .purpose::<Checkout>()
//!     .build()
//!     .unwrap();
//! assert_eq!(Checkout::NAME, Some("checkout"));
//! ```

use std::fmt;

/// The purpose of a request that names none.
pub const DEFAULT_PURPOSE: &str = "verify";

/// The built-in purposes.
pub const BUILTIN_PURPOSES: &[&str] = &["verify", "signup", "login", "reset", "change_contact"];

/// The longest purpose name.
pub const MAX_PURPOSE_LEN: usize = 32;

/// A purpose as a type, for the extractors' type parameter.
pub trait Purpose: Send + Sync + 'static {
    /// The purpose's name; `None` accepts any purpose ([`AnyPurpose`]).
    const NAME: Option<&'static str>;
}

/// Declares a purpose marker type: `tower_otp::purpose!(pub Checkout =
/// "checkout");`. Register it with
/// [`OtpBuilder::purpose`](crate::OtpBuilder::purpose).
#[macro_export]
macro_rules! purpose {
    ($(#[$meta:meta])* $vis:vis $name:ident = $value:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        $vis struct $name;
        impl $crate::purpose::Purpose for $name {
            const NAME: Option<&'static str> = Some($value);
        }
    };
}

purpose!(
    /// `verify`: the default purpose.
    pub Verify = "verify"
);
purpose!(
    /// `signup`.
    pub Signup = "signup"
);
purpose!(
    /// `login`.
    pub Login = "login"
);
purpose!(
    /// `reset`.
    pub Reset = "reset"
);
purpose!(
    /// `change_contact`.
    pub ChangeContact = "change_contact"
);

/// Accepts a proof made for any purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnyPurpose;

impl Purpose for AnyPurpose {
    const NAME: Option<&'static str> = None;
}

/// Whether `name` is a well-formed purpose name: lower-case ASCII letters,
/// digits and `_`, 1 to 32 characters.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_PURPOSE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The purposes a layer accepts: the built-ins and the host's.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Purposes(Vec<String>);

impl Default for Purposes {
    fn default() -> Self {
        Self(BUILTIN_PURPOSES.iter().map(|p| (*p).to_owned()).collect())
    }
}

impl fmt::Debug for Purposes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl Purposes {
    /// Adds `name` (already validated).
    pub(crate) fn add(&mut self, name: &str) {
        if !self.contains(name) {
            self.0.push(name.to_owned());
        }
    }

    /// The registered name equal to `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().map(String::as_str).find(|p| *p == name)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every registered name, built-ins first.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["verify", "change_contact", "step2", &"a".repeat(32)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "Login", "log-in", "log in", &"a".repeat(33), "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(Login::NAME, Some("login"));
        assert_eq!(AnyPurpose::NAME, None);
    }
}
