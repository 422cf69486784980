//! Who owns a contact's code: our own hash (we generate, store and check
//! it), or a provider that generates and checks it itself (Twilio Verify),
//! with our limits and attempt counting still in force.

use std::sync::Arc;

use crate::{
    contact::{Contact, Mobile},
    delivery::SmsVerifier,
};

/// The strategy for one contact.
pub(crate) enum Owner<'a> {
    /// We generate the code, keep its Argon2id hash and check it.
    Hash,
    /// The provider generates, sends and checks the code.
    Provider {
        verifier: &'a dyn SmsVerifier,
        mobile: &'a Mobile,
    },
}

/// Which channels a provider owns the codes of.
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeOwners {
    mobile: Option<Arc<dyn SmsVerifier>>,
}

impl CodeOwners {
    /// SMS codes are owned by `verifier`.
    pub(crate) fn mobile_provider(verifier: Arc<dyn SmsVerifier>) -> Self {
        Self {
            mobile: Some(verifier),
        }
    }

    /// The provider that owns SMS codes, if any.
    pub(crate) fn mobile_provider_ref(&self) -> Option<Arc<dyn SmsVerifier>> {
        self.mobile.clone()
    }

    /// Who owns `contact`'s code.
    pub(crate) fn of<'a>(&'a self, contact: &'a Contact) -> Owner<'a> {
        match (contact, &self.mobile) {
            (Contact::Mobile(mobile), Some(verifier)) => Owner::Provider {
                verifier: verifier.as_ref(),
                mobile,
            },
            _ => Owner::Hash,
        }
    }
}
