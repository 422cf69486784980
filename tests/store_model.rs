//! A state-machine property test of `OtpStore`: random sequences of
//! operations run on a store and on a plain model of the contract
//! (attempts, single use, cooldown, quota window, expiry), and every answer
//! must match.
//!
//! - `MemoryStore` runs on tokio's paused clock, so time steps are exact:
//!   every transition is checked, time-based ones (code expiry, cooldown
//!   end, quota window rollover) included, and `retry_after` must be exact.
//! - `RedisStore` (the Redis at `REDIS_URL`, random key prefix) runs on
//!   Redis's real clock, which the test cannot move: sequences have no time
//!   steps, TTLs and windows are long enough not to pass during a case, and
//!   `retry_after` is only checked to lie in (0, configured]. Expiry on Redis
//!   is covered by the conformance suite (`store_conformance.rs`) with short
//!   real TTLs.
//!
//! Case counts are modest (memory 256, Redis 48): a few seconds in all.

#[macro_use]
mod common;

use std::{sync::Arc, time::Duration};

use proptest::{prelude::*, test_runner::TestCaseError};
use tower_otp::store::{
    Attempt, CodeRecord, MemoryStore, OtpStore, SendLimits, SendReservation, StoreKey,
};

/// One operation on one contact's key.
#[derive(Debug, Clone)]
enum Op {
    /// `reserve_send` with the case's limits.
    Reserve,
    /// `release_cooldown`.
    Release,
    /// `put_code` of a new record (fresh salt) with the case's TTL.
    Put,
    /// `begin_attempt` with the case's attempt limit.
    Begin,
    /// `remove_code` with the salt of the newest record put (live or not).
    RemoveNewest,
    /// `remove_code` with the salt of an older record, or one never put.
    RemoveOther,
    /// Time passes (memory store only).
    Advance(Duration),
}

/// The settings of one case.
#[derive(Debug, Clone, Copy)]
struct Params {
    limits: SendLimits,
    ttl: Duration,
    max_attempts: u32,
}

/// The contract, spelled out.
#[derive(Debug, Default)]
struct Model {
    now: Duration,
    /// salt, attempts used, expires at.
    code: Option<([u8; 16], u32, Duration)>,
    /// cooldown end, sends in the window, window end.
    sends: Option<(Duration, u32, Duration)>,
}

impl Model {
    fn reserve(&mut self, limits: &SendLimits) -> SendReservation {
        let now = self.now;
        match &mut self.sends {
            Some((cd, n, we)) if (*cd).max(*we) > now => {
                if *cd > now {
                    return SendReservation::Cooldown {
                        retry_after: *cd - now,
                    };
                }
                if *we <= now {
                    *n = 0;
                    *we = now + limits.window;
                }
                if *n >= limits.quota {
                    return SendReservation::QuotaExceeded {
                        retry_after: *we - now,
                    };
                }
                *n += 1;
                *cd = now + limits.cooldown;
                SendReservation::Granted
            }
            _ => {
                self.sends = Some((now + limits.cooldown, 1, now + limits.window));
                SendReservation::Granted
            }
        }
    }

    fn release(&mut self) {
        let now = self.now;
        if let Some((cd, _, we)) = &mut self.sends
            && (*cd).max(*we) > now
        {
            *cd = now;
        }
    }

    fn live_code(&mut self) -> Option<&mut ([u8; 16], u32, Duration)> {
        let now = self.now;
        if self.code.is_some_and(|(_, _, exp)| exp <= now) {
            self.code = None;
        }
        self.code.as_mut()
    }

    fn begin(&mut self, max_attempts: u32, records: &[CodeRecord]) -> Attempt {
        match self.live_code() {
            None => Attempt::NoCode,
            Some((_, used, _)) if *used >= max_attempts => Attempt::Exhausted,
            Some((salt, used, _)) => {
                *used += 1;
                let salt = *salt;
                Attempt::Granted {
                    record: records
                        .iter()
                        .find(|r| r.salt == salt)
                        .expect("a put record")
                        .clone(),
                    attempts_used: *used,
                }
            }
        }
    }

    fn remove(&mut self, salt: &[u8; 16]) -> bool {
        let matches = self.live_code().is_some_and(|(s, _, _)| s == salt);
        if matches {
            self.code = None;
        }
        matches
    }
}

/// How exactly answers must match.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// Paused tokio time: exact.
    Exact,
    /// Redis's own clock: same variant, `retry_after` in (0, configured].
    Real,
}

fn check_reservation(
    clock: Clock,
    limits: &SendLimits,
    got: SendReservation,
    want: SendReservation,
) -> Result<(), TestCaseError> {
    if clock == Clock::Exact {
        prop_assert_eq!(got, want);
        return Ok(());
    }
    match (got, want) {
        (SendReservation::Granted, SendReservation::Granted) => {}
        (SendReservation::Cooldown { retry_after }, SendReservation::Cooldown { .. }) => {
            prop_assert!(
                !retry_after.is_zero() && retry_after <= limits.cooldown,
                "cooldown retry_after {:?}",
                retry_after
            )
        }
        (SendReservation::QuotaExceeded { retry_after }, SendReservation::QuotaExceeded { .. }) => {
            prop_assert!(
                !retry_after.is_zero() && retry_after <= limits.window,
                "quota retry_after {:?}",
                retry_after
            )
        }
        (got, want) => prop_assert!(false, "store {:?}, model {:?}", got, want),
    }
    Ok(())
}

fn new_record(n: usize) -> CodeRecord {
    let mut salt = [0xa5; 16];
    salt[..8].copy_from_slice(&(n as u64).to_be_bytes());
    CodeRecord::new(
        salt,
        vec![u8::try_from(n % 251).unwrap(); 32],
        u32::try_from(n % 65_536).unwrap(),
    )
}

/// Runs `ops` on `store` (a fresh `key`) and on the model; every answer
/// must agree.
async fn run(
    store: &dyn OtpStore,
    key: &StoreKey,
    params: Params,
    ops: &[Op],
    clock: Clock,
) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut records: Vec<CodeRecord> = Vec::new();
    let never_put = new_record(usize::MAX >> 16);
    for (step, op) in ops.iter().enumerate() {
        let fail = |e: tower_otp::store::StoreError| {
            TestCaseError::fail(format!("step {step} {op:?}: store error {e}"))
        };
        match op {
            Op::Reserve => {
                let got = store
                    .reserve_send(key, &params.limits)
                    .await
                    .map_err(fail)?;
                let want = model.reserve(&params.limits);
                check_reservation(clock, &params.limits, got, want)?;
            }
            Op::Release => {
                store.release_cooldown(key).await.map_err(fail)?;
                model.release();
            }
            Op::Put => {
                let record = new_record(records.len());
                store
                    .put_code(key, &record, params.ttl)
                    .await
                    .map_err(fail)?;
                model.code = Some((record.salt, 0, model.now + params.ttl));
                records.push(record);
            }
            Op::Begin => {
                let got = store
                    .begin_attempt(key, params.max_attempts)
                    .await
                    .map_err(fail)?;
                let want = model.begin(params.max_attempts, &records);
                prop_assert_eq!(got, want, "step {} {:?}", step, op);
            }
            Op::RemoveNewest | Op::RemoveOther => {
                let salt = match (op, records.len()) {
                    (Op::RemoveNewest, n) if n > 0 => records[n - 1].salt,
                    (Op::RemoveOther, n) if n > 1 => records[n - 2].salt,
                    _ => never_put.salt,
                };
                let got = store.remove_code(key, &salt).await.map_err(fail)?;
                let want = model.remove(&salt);
                prop_assert_eq!(got, want, "step {} {:?}", step, op);
            }
            Op::Advance(by) => {
                tokio::time::advance(*by).await;
                model.now += *by;
            }
        }
    }
    Ok(())
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn op(with_time: bool) -> BoxedStrategy<Op> {
    let base = prop_oneof![
        3 => Just(Op::Reserve),
        1 => Just(Op::Release),
        3 => Just(Op::Put),
        4 => Just(Op::Begin),
        2 => Just(Op::RemoveNewest),
        1 => Just(Op::RemoveOther),
    ];
    if with_time {
        prop_oneof![
            8 => base,
            // Around the case's TTLs, cooldowns and windows (multiples of
            // 500 ms), so boundaries are hit exactly too.
            2 => (0u64..=12).prop_map(|k| Op::Advance(ms(k * 250))),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

/// Settings for the memory store: short, so time steps cross them.
fn memory_params() -> impl Strategy<Value = Params> {
    (
        prop::sample::select(vec![0u64, 500, 1000, 2500]),
        0u32..4,
        prop::sample::select(vec![500u64, 1000, 2000]),
        prop::sample::select(vec![500u64, 1000, 1500]),
        1u32..4,
    )
        .prop_map(|(cooldown, quota, window, ttl, max_attempts)| Params {
            limits: SendLimits::new(ms(cooldown), quota.max(1), ms(window)),
            ttl: ms(ttl),
            max_attempts,
        })
}

/// Settings for Redis: nothing time-based passes during a case.
fn redis_params() -> impl Strategy<Value = Params> {
    (prop::bool::ANY, 1u32..4, 1u32..4).prop_map(|(cooldown, quota, max_attempts)| Params {
        limits: SendLimits::new(
            if cooldown { ms(60_000) } else { Duration::ZERO },
            quota,
            ms(600_000),
        ),
        ttl: ms(600_000),
        max_attempts,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // A failure prints its minimal case; nothing is written to tests/.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn memory_store_follows_the_model(
        params in memory_params(),
        ops in prop::collection::vec(op(true), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            run(&store, &StoreKey::new("ab12"), params, &ops, Clock::Exact).await
        })?;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    /// One runtime and one store for every case (the pool's connections
    /// live on the runtime); a fresh random key per case.
    fn store() -> Option<(tokio::runtime::Runtime, Arc<dyn OtpStore>)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = rt.block_on(common::redis_server::shared_store(Duration::from_secs(5)))?;
        Some((rt, Arc::new(store)))
    }

    #[test]
    fn redis_store_follows_the_model() {
        let Some((rt, store)) = store() else {
            return;
        };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let strategy = (redis_params(), prop::collection::vec(op(false), 1..40));
        let result = runner.run(&strategy, |(params, ops)| {
            let key = tower_otp::test_util::random_key();
            rt.block_on(run(&*store, &key, params, &ops, Clock::Real))
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
