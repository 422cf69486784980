//! `RedisStore` (implemented in the Redis issue).

/// Placeholder until the Redis store lands.
#[derive(Debug)]
pub struct RedisStore;
