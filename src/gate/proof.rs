//! [`VerifiedContact`]: what a valid grant proves.

use std::{
    marker::PhantomData,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub(crate) use crate::purpose::DEFAULT_PURPOSE;
use crate::{
    contact::{Channel, Contact, Email, Mobile},
    purpose::{Purpose, Verify},
};

/// One proven contact in a grant: for what, and until when (unix seconds).
/// Each proof keeps its own expiry: adding a contact to a grant never
/// extends the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    pub(crate) contact: Contact,
    pub(crate) purpose: String,
    pub(crate) expires_at: u64,
}

impl Proof {
    pub(crate) fn is_live(&self, now: u64) -> bool {
        self.expires_at > now
    }
}

/// What a valid grant proves for purpose `P` (by default [`Verify`], the
/// default purpose; [`AnyPurpose`](crate::purpose::AnyPurpose) for any): at
/// least one of an email address and a mobile number, each until its own
/// expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedContact<P: Purpose = Verify> {
    /// Every live proof the grant carries (all purposes).
    proofs: Vec<Proof>,
    /// Where in `proofs` the email and the mobile number proven for `P` are.
    email_at: Option<usize>,
    mobile_at: Option<usize>,
    expires_at: SystemTime,
    /// The grant's id (single-use mode records it as spent).
    id: Option<String>,
    /// Signed with the current secret (not only with a rotated-out one):
    /// only such grants are carried into a new grant.
    current_key: bool,
    purpose: PhantomData<P>,
}

impl<P: Purpose> VerifiedContact<P> {
    /// What `proofs` (all live) prove for `P`.
    pub(crate) fn from_proofs(proofs: Vec<Proof>, id: Option<String>, current_key: bool) -> Self {
        let find = |channel| {
            proofs.iter().position(|p| {
                P::NAME.is_none_or(|name| p.purpose == name) && p.contact.channel() == channel
            })
        };
        let email_at = find(Channel::Email);
        let mobile_at = find(Channel::Mobile);
        let expires = email_at
            .iter()
            .chain(&mobile_at)
            .map(|&i| proofs[i].expires_at)
            .min()
            .or_else(|| proofs.iter().map(|p| p.expires_at).max())
            .unwrap_or(0);
        Self {
            proofs,
            email_at,
            mobile_at,
            expires_at: UNIX_EPOCH + Duration::from_secs(expires),
            id,
            current_key,
            purpose: PhantomData,
        }
    }

    /// The same grant seen for purpose `Q`.
    #[cfg(feature = "axum")] // the extractors' only
    pub(crate) fn view<Q: Purpose>(&self) -> VerifiedContact<Q> {
        VerifiedContact::from_proofs(self.proofs.clone(), self.id.clone(), self.current_key)
    }

    /// The purpose of each proven contact shown here: the email's and the
    /// mobile number's (useful with `AnyPurpose`).
    pub fn purposes(&self) -> (Option<&str>, Option<&str>) {
        let of = |at: Option<usize>| at.map(|i| self.proofs[i].purpose.as_str());
        (of(self.email_at), of(self.mobile_at))
    }

    /// The grant's id, if it has one.
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Every live proof the grant carries.
    pub(crate) fn proofs(&self) -> &[Proof] {
        &self.proofs
    }

    /// Whether the grant verified under the current secret.
    pub(crate) fn signed_with_current_key(&self) -> bool {
        self.current_key
    }

    /// Whether nothing is proven for the default purpose.
    pub(crate) fn is_empty(&self) -> bool {
        self.email_at.is_none() && self.mobile_at.is_none()
    }

    /// When the last proof of the grant expires (how long a spent record of
    /// it must be kept).
    pub(crate) fn valid_until(&self) -> SystemTime {
        let last = self.proofs.iter().map(|p| p.expires_at).max().unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(last)
    }

    /// The proven email address, if any.
    pub fn email(&self) -> Option<&Email> {
        match &self.proofs[self.email_at?].contact {
            Contact::Email(email) => Some(email),
            Contact::Mobile(_) => None,
        }
    }

    /// The proven mobile number, if any.
    pub fn mobile(&self) -> Option<&Mobile> {
        match &self.proofs[self.mobile_at?].contact {
            Contact::Mobile(mobile) => Some(mobile),
            Contact::Email(_) => None,
        }
    }

    /// When the first of the proofs above ([`email`](Self::email),
    /// [`mobile`](Self::mobile)) expires: each proven contact keeps the
    /// expiry it was proven with, so a grant that gained a mobile number
    /// later may lose its email first.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    #[cfg(feature = "axum")] // the extractors' only
    pub(crate) fn into_email(mut self) -> Option<Email> {
        match self.proofs.swap_remove(self.email_at?).contact {
            Contact::Email(email) => Some(email),
            Contact::Mobile(_) => None,
        }
    }

    #[cfg(feature = "axum")] // the extractors' only
    pub(crate) fn into_mobile(mut self) -> Option<Mobile> {
        match self.proofs.swap_remove(self.mobile_at?).contact {
            Contact::Mobile(mobile) => Some(mobile),
            Contact::Email(_) => None,
        }
    }
}
