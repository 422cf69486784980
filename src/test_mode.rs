//! Test mode: fixed codes for an explicit list of test contacts, for a host
//! app's own CI and for app-store reviewers who cannot receive real codes.
//!
//! For a listed contact, a send delivers nothing and answers success (no
//! cooldown or quota applies), and stores a record with no hash, so the
//! fixed code then verifies like a real one: once per send, within the code
//! lifetime. **Wrong guesses count like anyone's**: each costs one of the
//! code's attempts (the last destroys it: `attempts_exceeded`, then
//! `otp_expired` until the next send), and each counts toward the contact's
//! failure budget, which locks its verifies (429 `rate_limited`) whatever
//! the number of sends. So a guesser gets the same odds against a test
//! contact as against anyone; still give test accounts a long code
//! (`OTP_LENGTH` up to 10) and keep them to review periods. Every other
//! contact is treated normally.
//!
//! It is off unless enabled twice: the builder method carries `dangerous` in
//! its name (and from the environment, `OTP_TEST_CONTACTS` is refused unless
//! `OTP_TEST_MODE=enabled`), and it is refused at start-up whenever the
//! production flag is set ([`OtpBuilder::production`](crate::OtpBuilder::production)
//! or `OTP_PRODUCTION=true`), and when the failure budget is off
//! (`OTP_FAILURE_BUDGET=0`): it alone bounds the guesses of a code that
//! every send gives fresh attempts.
//!
//! ```
//! use tower_otp::{Otp, test_mode::TestContacts};
//!
//! let reviewers = TestContacts::new("424242")
//!     .email("review@example.com").unwrap()
//!     .mobile("+14155550100").unwrap();
//! let otp = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .dangerous_test_contacts(reviewers)
//!     .build()
//!     .unwrap();
//!
//! // Never together with the production flag.
//! let refused = Otp::builder()
//!     .secret("an example secret, use 32+ random bytes")
//!     .dangerous_test_contacts(TestContacts::new("424242"))
//!     .production()
//!     .build();
//! assert!(refused.is_err());
//! ```

use std::collections::HashSet;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::contact::{Contact, Email, InvalidContact, Mobile};

/// The test contacts and their fixed code.
#[derive(Clone)]
pub struct TestContacts {
    code: Zeroizing<String>,
    contacts: HashSet<Contact>,
}

impl std::fmt::Debug for TestContacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestContacts")
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl TestContacts {
    /// Test contacts that verify with `code` (it must have the configured
    /// length; checked at build).
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: Zeroizing::new(code.into()),
            contacts: HashSet::new(),
        }
    }

    /// Adds a test email address.
    pub fn email(mut self, email: &str) -> Result<Self, InvalidContact> {
        self.contacts.insert(Contact::Email(Email::parse(email)?));
        Ok(self)
    }

    /// Adds a test mobile number (with its `+`).
    pub fn mobile(mut self, mobile: &str) -> Result<Self, InvalidContact> {
        self.contacts
            .insert(Contact::Mobile(Mobile::parse(mobile, None)?));
        Ok(self)
    }

    /// Adds a contact of either kind: an address if it has an `@`.
    pub(crate) fn any(self, contact: &str) -> Result<Self, InvalidContact> {
        if contact.contains('@') {
            self.email(contact)
        } else {
            self.mobile(contact)
        }
    }

    pub(crate) fn code(&self) -> &str {
        &self.code
    }

    /// Whether `contact` is a test contact.
    pub fn contains(&self, contact: &Contact) -> bool {
        self.contacts.contains(contact)
    }

    /// Whether `candidate` is the fixed code (constant time).
    pub(crate) fn matches(&self, candidate: &str) -> bool {
        self.code.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}
