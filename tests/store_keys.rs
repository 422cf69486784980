//! Store keys are keyed digests of the contact: what a leaked store shows
//! must not lead back to an address or number without the server secret.
//! (The unit test beside the digest only checks that hex has no `@`, which
//! no digest could fail.)

mod common;

use sha2::{Digest, Sha256};
use tower_otp::{Contact, Email, Mobile, Otp, hash::HashParams};

fn otp(secret: &str) -> Otp {
    Otp::builder()
        .secret(secret)
        .hash_params(HashParams::insecure_fast())
        .build()
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn email(s: &str) -> Contact {
    Contact::Email(Email::parse(s).unwrap())
}

#[test]
fn store_keys_are_keyed_digests_that_do_not_reveal_the_contact() {
    let a = otp(common::SECRET);
    let b = otp("a different server secret, 32 b!");
    let ada = email("ada@b.co");
    let key = a.store_key(&ada).to_string();

    // 128 bits in hex.
    assert_eq!(key.len(), 32, "{key}");
    assert!(key.bytes().all(|c| c.is_ascii_hexdigit()), "{key}");
    // Stable for one secret (instances share a store), and the spellings
    // the crate treats as one address share it.
    assert_eq!(a.store_key(&ada).to_string(), key);
    assert_eq!(otp(common::SECRET).store_key(&ada).to_string(), key);
    assert_eq!(a.store_key(&email(" ada@B.CO ")).to_string(), key);
    // Keyed: another secret gives an unrelated key.
    assert_ne!(b.store_key(&ada).to_string(), key);
    // Different contacts, different keys.
    assert_ne!(a.store_key(&email("bob@b.co")).to_string(), key);
    let mobile = Contact::Mobile(Mobile::parse("+14155550123", None).unwrap());
    assert_ne!(a.store_key(&mobile).to_string(), key);

    // Not the contact itself, nor an unkeyed hash anyone can recompute.
    for unkeyed in [
        hex(b"ada@b.co"),
        hex(&Sha256::digest(b"ada@b.co")),
        hex(&Sha256::digest(b"email:ada@b.co")),
    ] {
        assert!(
            !unkeyed.starts_with(&key) && !key.contains(&unkeyed[..16]),
            "{key} is the unkeyed {unkeyed}"
        );
    }
}
