//! Both Argon2 backends give the same answers: RFC 9106's Argon2id test
//! vector (with secret and associated data), the crate's pinned hash for the
//! default parameters, and RustCrypto's `argon2` on assorted parameters.
//!
//! Run it once per backend (CI does):
//!
//! ```text
//! cargo test --test hash_backends                                              # rustcrypto-argon2 (default)
//! cargo test --no-default-features --features simd-argon2 --test hash_backends # argon2-rust
//! ```

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use tower_otp::{
    Secret,
    hash::{HashParams, HashPool, backend},
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_backend_compiled_in_is_the_one_the_features_select() {
    let expected = if cfg!(feature = "simd-argon2") {
        "argon2-rust"
    } else {
        "argon2"
    };
    assert_eq!(backend::NAME, expected);
}

/// RFC 9106 §5.3, Argon2id v0x13: password 32 × 0x01, salt 16 × 0x02,
/// secret 8 × 0x03, associated data 12 × 0x04, m=32 KiB, t=3, p=4, 32-byte tag.
#[test]
fn rfc_9106_argon2id_test_vector() {
    let params = HashParams {
        m_cost: 32,
        t_cost: 3,
        p_cost: 4,
    };
    let tag = backend::argon2id(params, &[0x03; 8], &[0x04; 12], &[0x01; 32], &[0x02; 16])
        .expect("the RFC's parameters are valid");
    assert_eq!(
        hex(&tag),
        "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
        "backend {}",
        backend::NAME
    );
}

/// The RFC's inputs through the hashing pool (no associated data there): the
/// pool runs the same computation as the backend it wraps.
#[tokio::test]
async fn the_pool_computes_what_the_backend_computes() {
    let params = HashParams {
        m_cost: 32,
        t_cost: 3,
        p_cost: 4,
    };
    // 0x01 and 0x03 are valid one-byte UTF-8 characters.
    let password = String::from_utf8(vec![0x01; 32]).unwrap();
    let secret = String::from_utf8(vec![0x03; 8]).unwrap();
    let pool = HashPool::new(params, Secret::new(secret.clone()), &[], 1, 1).unwrap();
    let pooled = pool.hash(&password, &[0x02; 16]).await.unwrap();
    let direct = backend::argon2id(
        params,
        secret.as_bytes(),
        &[],
        password.as_bytes(),
        &[0x02; 16],
    )
    .unwrap();
    assert_eq!(*pooled, direct);
}

/// The crate's own known answer at the default parameters (m=19456, t=2,
/// p=1): computed with RustCrypto's `argon2` 0.5.3; a change here would
/// orphan every stored code.
#[test]
fn default_parameters_give_the_pinned_hash() {
    let tag = backend::argon2id(
        HashParams::default(),
        b"benchmark secret, 32 bytes long!",
        &[],
        b"123456",
        &[7; 16],
    )
    .unwrap();
    assert_eq!(
        hex(&tag),
        "ec38f37033e74467f0e0c5113874ada9c8513beb985ac1e1450c62754079d33a"
    );
}

/// Keyed Argon2id with associated data by RustCrypto's crate, allocating its
/// own memory: the reference both backends must equal.
fn reference(
    params: HashParams,
    secret: &[u8],
    ad: &[u8],
    password: &[u8],
    salt: &[u8],
) -> [u8; 32] {
    let mut builder = ParamsBuilder::new();
    builder
        .m_cost(params.m_cost)
        .t_cost(params.t_cost)
        .p_cost(params.p_cost)
        .output_len(32);
    if !ad.is_empty() {
        builder.data(AssociatedData::new(ad).unwrap());
    }
    let argon = Argon2::new_with_secret(
        secret,
        Algorithm::Argon2id,
        Version::V0x13,
        builder.build().unwrap(),
    )
    .unwrap();
    let mut out = [0u8; 32];
    argon.hash_password_into(password, salt, &mut out).unwrap();
    out
}

#[test]
fn both_backends_equal_the_reference_on_assorted_inputs() {
    let sets = [
        (8, 1, 1),
        (64, 1, 1),
        (100, 2, 1),
        (1000, 1, 3),
        (256, 3, 4),
    ];
    let inputs: [(&[u8], &[u8], &[u8]); 3] = [
        (b"123456", b"", b"k"),
        (
            b"0000000000",
            b"context",
            b"a longer server secret, 32 bytes",
        ),
        (b"", b"ad", b"s"),
    ];
    for (m_cost, t_cost, p_cost) in sets {
        let params = HashParams {
            m_cost,
            t_cost,
            p_cost,
        };
        for (i, (password, ad, secret)) in inputs.iter().enumerate() {
            let salt = [i as u8 + 1; 16];
            let ours = backend::argon2id(params, secret, ad, password, &salt).unwrap();
            assert_eq!(
                ours,
                reference(params, secret, ad, password, &salt),
                "{params:?} input {i}, backend {}",
                backend::NAME
            );
        }
    }
}
