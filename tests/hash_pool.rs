//! The hashing pool: its hashes are the standard keyed Argon2id (the same
//! bytes as RustCrypto's `argon2` crate, whichever implementation the
//! `simd-argon2` feature picks), pinned by a known answer so that stored
//! codes keep verifying across upgrades; and its threads run at the
//! configured OS priority.

use argon2::{Algorithm, Argon2, Params, Version};
use tower_otp::{
    Otp, Secret,
    hash::{HashParams, HashPool, HashThreadPriority},
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

/// Nice value (field 19 of `/proc/self/task/<tid>/stat`) of every hashing
/// thread of this process.
#[cfg(target_os = "linux")]
fn hashing_thread_nice_values() -> Vec<i32> {
    let mut values = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        // "tower-otp-hash-N", cut to the kernel's 15 characters.
        if !comm.starts_with("tower-otp-hash") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        // after_name starts at field 3 (state); nice is field 19.
        let nice = after_name.split(' ').nth(19 - 3).unwrap();
        values.push(nice.parse().unwrap());
    }
    values
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn hashing_threads_run_at_nice_19_by_default_and_normal_on_request() {
    // One test owns both pools: tests in this file run on parallel threads,
    // and the scan sees every hashing thread of the process.
    let low = Otp::builder()
        .secret(SECRET)
        .hash_params(HashParams::insecure_fast())
        .hash_pool_size(2, 4)
        .build()
        .unwrap();
    // The threads have set their priority by the time `build` returns.
    let normal = HashPool::new_with_priority(
        HashParams::insecure_fast(),
        Secret::new(SECRET),
        &[],
        1,
        4,
        HashThreadPriority::Normal,
    )
    .unwrap();
    let nice = hashing_thread_nice_values();
    // Other tests of this binary may have pools of their own (all default).
    let process_nice = std::fs::read_to_string("/proc/self/stat").unwrap();
    let process_nice: i32 = process_nice[process_nice.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(19 - 3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(nice.contains(&process_nice), "{nice:?}");
    assert!(nice.iter().filter(|n| **n == 19).count() >= 2, "{nice:?}");
    // The pools still hash at either priority.
    low.hash_pool().hash("1", &[0; 16]).await.unwrap();
    normal.hash("2", &[0; 16]).await.unwrap();
}
