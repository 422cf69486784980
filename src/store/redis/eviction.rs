//! Whether Redis may evict the store's keys under memory pressure.
//!
//! Every key the store writes has a TTL, so with a `maxmemory` set, any
//! eviction policy but `noeviction` (`volatile-*` included, the default of
//! several managed services) can drop them before they expire: a spent
//! single-use grant's marker (the grant works again), a failure budget's
//! lock (more guesses), a send cooldown or quota. An attacker who can fill
//! the memory (sends from many addresses) chooses when. The memory store
//! never drops these early; on Redis that takes `noeviction`, under which
//! a full Redis refuses writes (`OOM`), which the store answers as
//! unavailable: it fails closed.
//!
//! The store reads `INFO memory` on its first connection (or, for a pool
//! given by the host, on its first readiness check), again on the next one
//! until a read gets an answer, and logs an error naming the fix if keys
//! can be evicted (a warning if the server refuses `INFO`). It does not refuse to run:
//! that is the operator's call, and a readiness probe that failed on it
//! would take the service down.

use std::sync::atomic::{AtomicBool, Ordering};

use redis::{Value, aio::ConnectionLike};

/// The eviction policy in force on any node that answered `info` (an
/// `INFO memory` answer, or a cluster's map of them), if it can evict:
/// `maxmemory` above zero and a policy other than `noeviction`.
fn evicting_policy(info: &Value) -> Option<String> {
    let mut texts = Vec::new();
    collect_texts(info, &mut texts);
    texts.into_iter().find_map(|text| {
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let limited = field("maxmemory").is_some_and(|bytes| bytes != "0");
        let policy = field("maxmemory_policy")?;
        (limited && policy != "noeviction").then(|| policy.to_owned())
    })
}

fn collect_texts(value: &Value, texts: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => texts.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => texts.push(text.clone()),
        Value::VerbatimString { text, .. } => texts.push(text.clone()),
        Value::Array(values) | Value::Set(values) => {
            values.iter().for_each(|v| collect_texts(v, texts));
        }
        Value::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_texts(v, texts)),
        _ => {}
    }
}

/// An attempt to read `INFO memory`.
enum Read {
    /// The answer.
    Info(Value),
    /// The server refused it (`INFO` renamed, or denied by an ACL).
    Refused(String),
    /// No answer (the connection broke, the call was cut short).
    Failed(String),
}

/// Reads `INFO memory` on `conn` (see [`settle`]).
pub(super) async fn check(conn: &mut (impl ConnectionLike + Send), done: &AtomicBool) {
    let read = match redis::cmd("INFO")
        .arg("memory")
        .query_async::<Value>(conn)
        .await
    {
        Ok(info) => Read::Info(info),
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => Read::Refused(e.to_string()),
        Err(e) => Read::Failed(e.to_string()),
    };
    settle(read, done);
}

/// Unless `done` is set already: logs an error if the store's keys can be
/// evicted (a refused read: a warning), and sets `done`. A failed read
/// leaves `done` unset, so that the next connection reads it.
fn settle(read: Read, done: &AtomicBool) {
    match read {
        Read::Info(info) => {
            if !done.swap(true, Ordering::Relaxed) {
                log(&info);
            }
        }
        Read::Refused(error) => {
            if !done.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %error,
                    "could not read Redis's eviction policy (INFO memory was refused): make \
                     sure maxmemory-policy is noeviction for the store's Redis"
                );
            }
        }
        Read::Failed(error) => {
            tracing::debug!(error = %error, "could not read Redis's eviction policy yet");
        }
    }
}

/// Logs an error if `info` shows an evicting policy.
fn log(info: &Value) {
    if let Some(policy) = evicting_policy(info) {
        tracing::error!(
            policy = %policy,
            "Redis may evict this store's keys under memory pressure (maxmemory is set \
             and maxmemory-policy is not noeviction): spent single-use grants, \
             failure-budget locks and send cooldowns could vanish early, and a client \
             who fills the memory could replay a grant or guess again. Set \
             maxmemory-policy noeviction for the store's Redis"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(maxmemory: &str, policy: &str) -> Value {
        Value::BulkString(
            format!(
                "# Memory\r\nused_memory:1000\r\nmaxmemory:{maxmemory}\r\n\
                 maxmemory_human:0B\r\nmaxmemory_policy:{policy}\r\n"
            )
            .into_bytes(),
        )
    }

    #[test]
    fn only_a_limit_with_an_evicting_policy_counts() {
        assert_eq!(
            evicting_policy(&info("104857600", "allkeys-lru")).as_deref(),
            Some("allkeys-lru")
        );
        assert_eq!(
            evicting_policy(&info("104857600", "volatile-ttl")).as_deref(),
            Some("volatile-ttl")
        );
        assert_eq!(evicting_policy(&info("104857600", "noeviction")), None);
        // No limit: nothing is evicted whatever the policy.
        assert_eq!(evicting_policy(&info("0", "allkeys-lru")), None);
        assert_eq!(evicting_policy(&Value::Nil), None);
    }

    #[test]
    fn only_an_answer_ends_the_checks() {
        let done = AtomicBool::new(false);
        settle(Read::Failed("timed out".into()), &done);
        assert!(!done.load(Ordering::Relaxed), "read again next time");
        settle(Read::Refused("NOPERM".into()), &done);
        assert!(done.load(Ordering::Relaxed));
        let done = AtomicBool::new(false);
        settle(Read::Info(info("0", "noeviction")), &done);
        assert!(done.load(Ordering::Relaxed));
    }

    #[test]
    fn a_cluster_answer_counts_any_node() {
        let map = Value::Map(vec![
            (
                Value::BulkString(b"127.0.0.1:7000".to_vec()),
                info("0", "noeviction"),
            ),
            (
                Value::BulkString(b"127.0.0.1:7001".to_vec()),
                info("1000000", "volatile-lru"),
            ),
        ]);
        assert_eq!(evicting_policy(&map).as_deref(), Some("volatile-lru"));
    }
}
