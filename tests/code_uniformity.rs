//! The codes the layer issues have uniform digits: a chi-square test that a
//! uniform source passes and that sees modulo bias. The same test computes
//! the statistic for a deliberately biased generator (`random byte % 10`,
//! which favours 0–5 by 26/25) over as many digits, and asserts that it
//! fails: the bound is one that this sample size can use to tell them apart.

mod common;

use common::builder_with;
use serde_json::json;
use tower_otp::delivery::MemoryOutbox;

/// Codes drawn through the layer (10 digits each).
const CODES: usize = 30_000;
/// Chi-square bound for 9 degrees of freedom at p = 0.0001: a uniform
/// source exceeds it once in 10,000 runs. Over 300,000 digits, `byte % 10`
/// gives a statistic of about 119 (noncentrality 110 + 9), four standard
/// deviations above it.
const BOUND: f64 = 33.72;

fn chi_square(counts: &[u64; 10]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / 10.0;
    counts
        .iter()
        .map(|&n| (n as f64 - expected).powi(2) / expected)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_digits_pass_a_chi_square_test_that_byte_mod_10_fails() {
    let outbox = MemoryOutbox::new();
    let otp = builder_with(&outbox)
        .code_length(10)
        .ip_limits(1_000_000, 1_000_000)
        .build()
        .unwrap();
    let mut ours = [0u64; 10];
    for i in 0..CODES {
        let email = format!("u{i}@example.com");
        let (status, body) = common::post(&otp, "/send-otp/", json!({ "email": email })).await;
        assert_eq!(status, 200, "{body}");
        let code = outbox.last_code_for(&email).expect("a code");
        outbox.clear();
        assert_eq!(code.len(), 10);
        for b in code.bytes() {
            ours[usize::from(b - b'0')] += 1;
        }
    }

    let mut biased = [0u64; 10];
    for _ in 0..CODES * 10 {
        biased[usize::from(rand::random::<u8>() % 10)] += 1;
    }

    let (ours, biased) = (chi_square(&ours), chi_square(&biased));
    assert!(
        biased > BOUND,
        "the test cannot see modulo bias: byte % 10 scored {biased:.1} <= {BOUND}"
    );
    assert!(
        ours <= BOUND,
        "the issued digits are not uniform: chi-square {ours:.1} > {BOUND} (byte % 10: {biased:.1})"
    );
}
