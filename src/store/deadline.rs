//! One time budget for all the store calls of one request.
//!
//! A store with a per-operation timeout (the Redis store) bounds each call
//! by it; a request that makes three calls against a Redis that has stopped
//! answering would then wait three timeouts. The engine runs each send and
//! each verify in a [`scope`]: inside it, the store calls **together** get
//! the store's timeout. Each call may take what the earlier calls of the
//! request left ([`remaining`]), and what it took is charged when it ends
//! ([`Charge`]). Time spent outside the store (hashing, delivery, a
//! provider's check) is not charged, so a slow hash never turns a healthy
//! store's answer into `store_unavailable`.
//!
//! Outside a scope (an operator's call, a spawned delivery's clean-up) each
//! call has the whole timeout, as before.

#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::{cell::Cell, future::Future, time::Duration};

use tokio::time::Instant;

tokio::task_local! {
    /// Store time already spent by the current request.
    static SPENT: Cell<Duration>;
}

/// Runs `future` (one request's flow) with one store budget.
pub(crate) async fn scope<F: Future>(future: F) -> F::Output {
    SPENT.scope(Cell::new(Duration::ZERO), future).await
}

/// What is left of `timeout` for the next store call of the current
/// request (all of it outside a [`scope`]).
pub(crate) fn remaining(timeout: Duration) -> Duration {
    SPENT
        .try_with(|spent| timeout.saturating_sub(spent.get()))
        .unwrap_or(timeout)
}

/// Charges the time from its creation to its drop to the current
/// request's budget (on every path out of a store call: success, error,
/// timeout, or the request being dropped).
#[derive(Debug)]
pub(crate) struct Charge {
    started: Instant,
}

impl Charge {
    /// Starts charging now.
    pub(crate) fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        let _ = SPENT.try_with(|spent| spent.set(spent.get() + took));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_in_a_scope_share_one_budget() {
        let timeout = Duration::from_millis(100);
        assert_eq!(remaining(timeout), timeout, "outside a scope: all of it");
        scope(async {
            assert_eq!(remaining(timeout), timeout);
            {
                let _charge = Charge::start();
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            let left = remaining(timeout);
            assert!(left <= Duration::from_millis(40), "{left:?}");
            {
                let _charge = Charge::start();
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            assert_eq!(remaining(timeout), Duration::ZERO);
            // Time outside store calls is not charged.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(remaining(timeout), Duration::ZERO);
        })
        .await;
        assert_eq!(remaining(timeout), timeout, "each scope starts afresh");
    }
}
