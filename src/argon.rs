//! The keyed Argon2id computation one hashing thread runs, with its memory
//! kept from one hash to the next.
//!
//! Two implementations give bit-identical hashes (the differential test in
//! `tests/hash_pool.rs` checks it), so a store written with one is read by
//! the other:
//!
//! - feature `simd-argon2` (default): the `argon2-rust` crate, a port of the
//!   reference C implementation with runtime-selected AVX-512 / AVX2 / SSE2 /
//!   NEON compression, its arena parked between hashes and wiped on release.
//!   About 2× the plain `argon2` crate for one hash on the 2-core benchmark
//!   machine (BENCHMARKS.md);
//! - without it: RustCrypto's `argon2` crate with the thread's memory blocks
//!   reused through `hash_password_into_with_memory`.

use crate::hash::{HASH_LEN, HashParams};

/// One hashing thread's Argon2id instance.
pub(crate) struct ThreadHasher {
    #[cfg(feature = "simd-argon2")]
    hasher: argon2_rust::Hasher,
    #[cfg(not(feature = "simd-argon2"))]
    params: argon2::Params,
    #[cfg(not(feature = "simd-argon2"))]
    memory: Vec<argon2::Block>,
}

impl ThreadHasher {
    /// An instance for `params`, or why the implementation refuses them.
    #[cfg(feature = "simd-argon2")]
    pub(crate) fn new(params: HashParams) -> Result<Self, String> {
        use argon2_rust::{
            Algorithm, Argon2, Params, Version,
            params::{Memory, TagLen},
        };
        let params = Params::builder()
            .memory(Memory::kib(u64::from(params.m_cost)))
            .passes(params.t_cost)
            .lanes(params.p_cost)
            // The lanes run one after the other on this thread: the pool
            // already keeps every core busy with whole hashes.
            .threads(1)
            .tag_len(TagLen::bytes(HASH_LEN as u64))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            hasher: Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hasher(),
        })
    }

    /// An instance for `params`, or why the implementation refuses them.
    #[cfg(not(feature = "simd-argon2"))]
    pub(crate) fn new(params: HashParams) -> Result<Self, String> {
        let params =
            argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, Some(HASH_LEN))
                .map_err(|e| e.to_string())?;
        Ok(Self {
            memory: vec![argon2::Block::default(); params.block_count()],
            params,
        })
    }

    /// Writes the Argon2id hash of `code` with `salt`, keyed with `secret`
    /// (Argon2's secret input), into `out`.
    pub(crate) fn hash_into(
        &mut self,
        secret: &[u8],
        code: &[u8],
        salt: &[u8],
        out: &mut [u8; HASH_LEN],
    ) -> Result<(), String> {
        #[cfg(feature = "simd-argon2")]
        {
            self.hasher
                .hash_into_with_ad(code, salt, secret, &[], out)
                .map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "simd-argon2"))]
        {
            use argon2::{Algorithm, Argon2, Version};
            Argon2::new_with_secret(
                secret,
                Algorithm::Argon2id,
                Version::V0x13,
                self.params.clone(),
            )
            .and_then(|argon| {
                argon.hash_password_into_with_memory(code, salt, out, &mut self.memory)
            })
            .map_err(|e| e.to_string())
        }
    }
}
