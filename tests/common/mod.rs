//! Shared test helpers. Each test binary uses only some of them.
#![allow(dead_code, unreachable_pub, missing_docs)]

#[cfg(feature = "redis")]
pub mod redis_server;
#[macro_use]
pub mod store_suite;
