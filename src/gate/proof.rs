//! [`VerifiedContact`]: what a valid grant proves.

use std::time::SystemTime;

use crate::contact::{Email, Mobile};

/// What a valid grant proves: at least one of an email address and a mobile
/// number, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedContact {
    email: Option<Email>,
    mobile: Option<Mobile>,
    expires_at: SystemTime,
    /// The grant's id (single-use mode records it as spent).
    id: Option<String>,
}

impl VerifiedContact {
    pub(crate) fn new(
        email: Option<Email>,
        mobile: Option<Mobile>,
        expires_at: SystemTime,
        id: Option<String>,
    ) -> Self {
        Self {
            email,
            mobile,
            expires_at,
            id,
        }
    }

    /// The grant's id, if it has one.
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The proven email address, if any.
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// The proven mobile number, if any.
    pub fn mobile(&self) -> Option<&Mobile> {
        self.mobile.as_ref()
    }

    /// When the grant stops being valid.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    pub(crate) fn into_email(self) -> Option<Email> {
        self.email
    }

    pub(crate) fn into_mobile(self) -> Option<Mobile> {
        self.mobile
    }
}
