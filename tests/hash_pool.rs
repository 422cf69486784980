//! The hashing pool: its hashes are the standard keyed Argon2id (the same
//! bytes as RustCrypto's `argon2` crate, whichever implementation the
//! `simd-argon2` feature picks), pinned by a known answer so that stored
//! codes keep verifying across upgrades; and the Argon2id it is built on
//! gives RFC 9106's own test vector. (The threads' OS priority is checked in
//! `hash_priority.rs`, a binary of its own.)

use argon2::{Algorithm, Argon2, Params, Version};
use tower_otp::{
    Secret,
    hash::{HashParams, HashPool},
};

const SECRET: &str = "benchmark secret, 32 bytes long!";

/// Keyed Argon2id by RustCrypto's crate, allocating its own memory.
fn reference_hash(params: HashParams, secret: &[u8], code: &[u8], salt: &[u8]) -> [u8; 32] {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32)).unwrap();
    let argon =
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut out = [0u8; 32];
    argon.hash_password_into(code, salt, &mut out).unwrap();
    out
}

#[tokio::test]
async fn pool_hashes_equal_the_reference_argon2id_for_every_parameter_set() {
    let sets = [
        HashParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        },
        HashParams {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        },
        HashParams {
            m_cost: 4096,
            t_cost: 3,
            p_cost: 1,
        },
        HashParams {
            m_cost: 2048,
            t_cost: 2,
            p_cost: 4,
        },
        // Memory not a multiple of 4 × lanes: Argon2 rounds it down.
        HashParams {
            m_cost: 1000,
            t_cost: 1,
            p_cost: 3,
        },
    ];
    for params in sets {
        let pool = HashPool::new(params, Secret::new(SECRET), &[], 2, 8).unwrap();
        // Several hashes per pool: the reused memory must not leak between them.
        for (code, salt) in [
            ("123456", [7u8; 16]),
            ("000000", [1u8; 16]),
            ("123456", [9u8; 16]),
        ] {
            let ours = pool.hash(code, &salt).await.unwrap();
            let reference = reference_hash(params, SECRET.as_bytes(), code.as_bytes(), &salt);
            assert_eq!(*ours, reference, "{params:?} code {code} salt {salt:?}");
        }
    }
}

#[tokio::test]
async fn default_parameters_give_the_pinned_hash() {
    // Computed once with RustCrypto's argon2 0.5.3 (m=19456 t=2 p=1, 32 bytes,
    // the secret as Argon2's key). A change here would orphan stored codes.
    const EXPECTED: [u8; 32] = [
        0xec, 0x38, 0xf3, 0x70, 0x33, 0xe7, 0x44, 0x67, 0xf0, 0xe0, 0xc5, 0x11, 0x38, 0x74, 0xad,
        0xa9, 0xc8, 0x51, 0x3b, 0xeb, 0x98, 0x5a, 0xc1, 0xe1, 0x45, 0x0c, 0x62, 0x75, 0x40, 0x79,
        0xd3, 0x3a,
    ];
    let pool = HashPool::new(HashParams::default(), Secret::new(SECRET), &[], 1, 4).unwrap();
    let hash = pool.hash("123456", &[7u8; 16]).await.unwrap();
    assert_eq!(*hash, EXPECTED);
    let id = pool.current_secret_id();
    assert!(
        pool.verify("123456", &[7u8; 16], id, &EXPECTED)
            .await
            .unwrap()
    );
    assert!(
        !pool
            .verify("123457", &[7u8; 16], id, &EXPECTED)
            .await
            .unwrap()
    );
}

#[test]
fn parameters_the_implementation_refuses_are_a_configuration_error() {
    let too_little_memory = HashParams {
        m_cost: 8,
        t_cost: 1,
        p_cost: 4,
    };
    let error = HashPool::new(too_little_memory, Secret::new(SECRET), &[], 1, 1).unwrap_err();
    assert!(error.to_string().contains("hash_params"), "{error}");
}

// RFC 9106, section 5.3: Argon2id with a secret and associated data.
const RFC_PASSWORD: [u8; 32] = [0x01; 32];
const RFC_SALT: [u8; 16] = [0x02; 16];
const RFC_SECRET: [u8; 8] = [0x03; 8];
const RFC_AD: [u8; 12] = [0x04; 12];
const RFC_TAG: [u8; 32] = [
    0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b, 0x53, 0xc9,
    0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9, 0x6b, 0x01, 0xe6, 0x59,
];
/// m = 32 KiB, t = 3, p = 4, 32-byte tag.
const RFC_PARAMS: HashParams = HashParams {
    m_cost: 32,
    t_cost: 3,
    p_cost: 4,
};

// The pool's public API takes no associated data (the crate never uses
// any), so the vector is checked on the backend calls `src/argon.rs` makes,
// with the RFC's associated data added; the pool itself is then checked to
// equal the same backend at the same parameters with the RFC's password,
// salt and secret.

#[test]
fn rustcrypto_argon2id_as_the_crate_keys_it_gives_the_rfc_9106_vector() {
    // The calls `argon.rs` makes without `simd-argon2`: `new_with_secret`,
    // Argon2id v0x13, the parameters, `hash_password_into_with_memory`.
    let params = argon2::ParamsBuilder::new()
        .m_cost(RFC_PARAMS.m_cost)
        .t_cost(RFC_PARAMS.t_cost)
        .p_cost(RFC_PARAMS.p_cost)
        .output_len(32)
        .data(argon2::AssociatedData::new(&RFC_AD).unwrap())
        .build()
        .unwrap();
    let mut memory = vec![argon2::Block::default(); params.block_count()];
    let argon =
        Argon2::new_with_secret(&RFC_SECRET, Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(&RFC_PASSWORD, &RFC_SALT, &mut out, &mut memory)
        .unwrap();
    assert_eq!(out, RFC_TAG);
}

#[cfg(feature = "simd-argon2")]
#[test]
fn argon2_rust_as_the_crate_configures_it_gives_the_rfc_9106_vector() {
    // The calls `argon.rs` makes with `simd-argon2`: one thread, the lanes
    // one after the other, `hash_into_with_ad` (the crate passes no AD).
    use argon2_rust::{
        Algorithm, Argon2, Params, Version,
        params::{Memory, TagLen},
    };
    let params = Params::builder()
        .memory(Memory::kib(u64::from(RFC_PARAMS.m_cost)))
        .passes(RFC_PARAMS.t_cost)
        .lanes(RFC_PARAMS.p_cost)
        .threads(1)
        .tag_len(TagLen::bytes(32))
        .build()
        .unwrap();
    let mut hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hasher();
    let mut out = [0u8; 32];
    hasher
        .hash_into_with_ad(&RFC_PASSWORD, &RFC_SALT, &RFC_SECRET, &RFC_AD, &mut out)
        .unwrap();
    assert_eq!(out, RFC_TAG);
}

#[tokio::test]
async fn the_pool_at_the_rfc_parameters_equals_the_backend_without_associated_data() {
    // The pool takes its code as a string: the RFC password (32 bytes of
    // 0x01) is a valid one.
    let password = std::str::from_utf8(&RFC_PASSWORD).unwrap();
    let secret = Secret::new(std::str::from_utf8(&RFC_SECRET).unwrap());
    let pool = HashPool::new(RFC_PARAMS, secret, &[], 1, 1).unwrap();
    let ours = pool.hash(password, &RFC_SALT).await.unwrap();
    let reference = reference_hash(RFC_PARAMS, &RFC_SECRET, &RFC_PASSWORD, &RFC_SALT);
    assert_eq!(*ours, reference);
    assert_ne!(
        reference, RFC_TAG,
        "without the associated data the tag differs"
    );
}
