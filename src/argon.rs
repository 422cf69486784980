//! The keyed Argon2id computation one hashing thread runs, with its memory
//! kept from one hash to the next and wiped after each hash.
//!
//! Two backends give bit-identical hashes (`tests/hash_backends.rs` pins both
//! to RFC 9106's Argon2id test vector and to the crate's own known answers;
//! `tests/hash_pool.rs` compares the pool with RustCrypto's `argon2`), so a
//! store written with one is read by the other. Exactly one is compiled:
//!
//! - feature `rustcrypto-argon2` (default): RustCrypto's `argon2` crate,
//!   portable Rust, the thread's memory blocks reused through
//!   `hash_password_into_with_memory` and zeroized after every hash (with
//!   `argon2`'s `zeroize` feature, which also wipes its internal buffers);
//! - feature `simd-argon2` (opt-in, and the one used when both are on): the
//!   `argon2-rust` crate, a port of the reference C implementation with
//!   runtime-selected AVX-512 / AVX2 / SSE2 / NEON compression, its arena
//!   parked between hashes and wiped when each hash returns. 2.3× the
//!   RustCrypto pool's hashes per second on the quiet 2-core benchmark
//!   machine, 3.2–4.0× under load (BENCHMARKS.md); but young, with one
//!   maintainer, no independent audit, about 600 lines mentioning `unsafe`
//!   and hand-declared `mmap`/`madvise`.
//!
//! With neither feature the crate does not compile (a `compile_error!` below
//! names the two features).

use crate::hash::{HASH_LEN, HashParams};

#[cfg(not(any(feature = "rustcrypto-argon2", feature = "simd-argon2")))]
compile_error!(
    "tower-otp needs an Argon2 backend: enable the `rustcrypto-argon2` feature (the default) \
     or `simd-argon2`, e.g. `features = [\"rustcrypto-argon2\"]` beside `default-features = false`"
);

/// One hashing thread's Argon2id instance.
pub(crate) struct ThreadHasher {
    #[cfg(feature = "simd-argon2")]
    hasher: argon2_rust::Hasher,
    #[cfg(all(feature = "rustcrypto-argon2", not(feature = "simd-argon2")))]
    params: argon2::Params,
    #[cfg(all(feature = "rustcrypto-argon2", not(feature = "simd-argon2")))]
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
    #[cfg(all(feature = "rustcrypto-argon2", not(feature = "simd-argon2")))]
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
        self.hash_into_with_ad(secret, &[], code, salt, out)
    }

    /// [`hash_into`](Self::hash_into) with Argon2's associated data `ad`
    /// (the crate passes none; RFC 9106's test vector uses some).
    pub(crate) fn hash_into_with_ad(
        &mut self,
        secret: &[u8],
        ad: &[u8],
        code: &[u8],
        salt: &[u8],
        out: &mut [u8; HASH_LEN],
    ) -> Result<(), String> {
        #[cfg(feature = "simd-argon2")]
        {
            // The arena is wiped by `argon2-rust` (feature `zeroize-memory`)
            // before this returns.
            self.hasher
                .hash_into_with_ad(code, salt, secret, ad, out)
                .map_err(|e| e.to_string())
        }
        #[cfg(all(feature = "rustcrypto-argon2", not(feature = "simd-argon2")))]
        {
            use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
            use zeroize::Zeroize;
            let params = if ad.is_empty() {
                Ok(self.params.clone())
            } else {
                AssociatedData::new(ad).and_then(|ad| {
                    ParamsBuilder::new()
                        .m_cost(self.params.m_cost())
                        .t_cost(self.params.t_cost())
                        .p_cost(self.params.p_cost())
                        .output_len(HASH_LEN)
                        .data(ad)
                        .build()
                })
            };
            let hashed = params
                .and_then(|params| {
                    Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params)
                })
                .and_then(|argon| {
                    argon.hash_password_into_with_memory(code, salt, out, &mut self.memory)
                })
                .map_err(|e| e.to_string());
            // Every block now holds material derived from the code and the
            // secret: wipe it now rather than leave it until the next hash.
            self.memory.iter_mut().zeroize();
            hashed
        }
        // No backend: only the compile_error! above is reported.
        #[cfg(not(any(feature = "rustcrypto-argon2", feature = "simd-argon2")))]
        {
            let _ = (secret, ad, code, salt, out);
            Err(String::new())
        }
    }

    /// No backend: only the compile_error! above is reported.
    #[cfg(not(any(feature = "rustcrypto-argon2", feature = "simd-argon2")))]
    pub(crate) fn new(_: HashParams) -> Result<Self, String> {
        Err(String::new())
    }
}

/// Test-only access to one thread's hasher, so that the backend compiled in
/// can be checked against published vectors (`tests/hash_backends.rs`).
#[doc(hidden)]
pub mod backend {
    use super::ThreadHasher;
    use crate::hash::{HASH_LEN, HashParams};

    /// The name of the Argon2 backend compiled in: `"argon2-rust"` or
    /// `"argon2"` (RustCrypto).
    pub const NAME: &str = if cfg!(feature = "simd-argon2") {
        "argon2-rust"
    } else {
        "argon2"
    };

    /// Keyed Argon2id (v0x13) of `password` with `salt`, secret `secret` and
    /// associated data `ad`, as the hashing threads compute it.
    pub fn argon2id(
        params: HashParams,
        secret: &[u8],
        ad: &[u8],
        password: &[u8],
        salt: &[u8],
    ) -> Result<[u8; HASH_LEN], String> {
        let mut hasher = ThreadHasher::new(params)?;
        let mut out = [0u8; HASH_LEN];
        hasher.hash_into_with_ad(secret, ad, password, salt, &mut out)?;
        Ok(out)
    }

    /// One thread's hasher reused across calls, as a hashing thread reuses
    /// it: the "backend called directly" reference of `benches/hashing.rs`.
    pub struct Direct(ThreadHasher);

    impl std::fmt::Debug for Direct {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Direct").finish_non_exhaustive()
        }
    }

    impl Direct {
        /// A hasher for `params`.
        pub fn new(params: HashParams) -> Result<Self, String> {
            ThreadHasher::new(params).map(Self)
        }

        /// Keyed Argon2id of `password` with `salt` and secret `secret`, on
        /// the calling thread.
        pub fn hash(
            &mut self,
            secret: &[u8],
            password: &[u8],
            salt: &[u8],
        ) -> Result<[u8; HASH_LEN], String> {
            let mut out = [0u8; HASH_LEN];
            self.0.hash_into(secret, password, salt, &mut out)?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(feature = "rustcrypto-argon2", not(feature = "simd-argon2")))]
    #[test]
    fn rustcrypto_blocks_are_all_zero_after_each_hash() {
        use super::ThreadHasher;
        use crate::hash::{HASH_LEN, HashParams};

        // Two lanes of 8 blocks each: the smallest memory with p = 2.
        let params = HashParams {
            m_cost: 16,
            t_cost: 1,
            p_cost: 2,
        };
        let mut hasher = ThreadHasher::new(params).unwrap();
        assert_eq!(hasher.memory.len(), 16);

        // The control: the same hash into a buffer nobody wipes leaves the
        // code's and the secret's traces in it, so an all-zero buffer below
        // means it was wiped, not that the hash never wrote there.
        let mut unwiped = vec![argon2::Block::default(); hasher.memory.len()];
        let mut expected = [0u8; HASH_LEN];
        argon2::Argon2::new_with_secret(
            b"server secret",
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            hasher.params.clone(),
        )
        .unwrap()
        .hash_password_into_with_memory(b"123456", b"salt of 16 bytes", &mut expected, &mut unwiped)
        .unwrap();
        let nonzero = |blocks: &[argon2::Block]| {
            blocks
                .iter()
                .filter(|b| b.as_ref().iter().any(|&w| w != 0))
                .count()
        };
        assert_eq!(nonzero(&unwiped), unwiped.len());

        for code in [b"123456", b"654321"] {
            let mut out = [0u8; HASH_LEN];
            hasher
                .hash_into(b"server secret", code, b"salt of 16 bytes", &mut out)
                .unwrap();
            if code == b"123456" {
                assert_eq!(out, expected, "the hasher ran the same hash");
            }
            assert_eq!(
                nonzero(&hasher.memory),
                0,
                "the thread's blocks keep material derived from the code after a hash"
            );
        }
    }
}
