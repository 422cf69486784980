//! The memory store under pressure (issue 13, item 9): a full store evicts
//! rather than refusing new contacts; records of sends that never happened
//! are evicted before those of real sends; failure-budget locks outlive
//! other failure records; and what the capacity costs in memory.
#![allow(unsafe_code)] // a global allocator (to measure the cost) is unsafe by nature

mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::Arc,
    time::Duration,
};

use common::{
    app::{TestApp, wrong_code},
    builder_with,
};
use tower_otp::{
    OtpBuilder,
    delivery::MemoryOutbox,
    store::{CodeRecord, MemoryStore, OtpStore, SendLimits, StoreKey},
};

/// Counts the bytes allocated and not yet freed by the current thread.
struct Counting;

thread_local! {
    static NET: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = NET.try_with(|n| n.set(n.get() + delta));
}

// SAFETY: every call is forwarded to `System` unchanged; the counter is a
// const-initialized thread local that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CAP: usize = 64;

/// A small store shared with the test, and an app on it that sends as often
/// as the test likes.
fn app_on(
    store: &Arc<MemoryStore>,
    outbox: &MemoryOutbox,
    configure: fn(OtpBuilder) -> OtpBuilder,
) -> TestApp {
    let builder = builder_with(outbox)
        .shared_store(Arc::clone(store) as Arc<dyn OtpStore>)
        .send_quota(1000, Duration::from_secs(600))
        .ip_limits(0, 0);
    TestApp::with(configure(builder), outbox.clone())
}

fn contact(group: &str, i: usize) -> String {
    format!("{group}{i}@example.com")
}

#[tokio::test]
async fn a_full_store_still_serves_new_contacts() {
    let store = Arc::new(MemoryStore::with_max_entries(CAP));
    let outbox = MemoryOutbox::new();
    let app = app_on(&store, &outbox, |b| b);
    // Fill the code and send tables with pending codes.
    for i in 0..CAP {
        app.send_email(&contact("filler", i)).await.assert_success();
    }
    assert_eq!(store.live_codes(), CAP);
    // New contacts, many more than the cap, are still served, and their
    // codes verify.
    for i in 0..3 * CAP {
        let email = contact("newcomer", i);
        app.send_email(&email).await.assert_success();
        let code = app.code_for(&email);
        app.verify_email(&email, &code).await.assert_success();
    }
    assert!(store.live_codes() <= CAP);
}

#[tokio::test]
async fn records_of_sends_that_never_happened_are_evicted_first() {
    let store = Arc::new(MemoryStore::with_max_entries(CAP));
    let outbox = MemoryOutbox::new();
    let app = app_on(&store, &outbox, |b| b);
    let half = CAP / 2;
    // Half the send table: real sends, now in their cooldown.
    for i in 0..half {
        app.send_email(&contact("early", i)).await.assert_success();
    }
    // The other half: sends whose delivery failed (they never happened),
    // made after the real ones.
    outbox.set_failing(true);
    for i in 0..half {
        app.send_email(&contact("failed", i))
            .await
            .assert_error(502, "delivery_failed");
    }
    outbox.set_failing(false);
    // The table is full; more real sends push out the failed ones, not the
    // older real ones...
    for i in 0..half {
        app.send_email(&contact("late", i)).await.assert_success();
    }
    // ...so every real send still holds its cooldown.
    for group in ["early", "late"] {
        for i in 0..half {
            app.send_email(&contact(group, i))
                .await
                .assert_error(429, "rate_limited");
        }
    }
}

#[tokio::test]
async fn a_lock_outlives_other_failure_records() {
    let store = Arc::new(MemoryStore::with_max_entries(CAP));
    let outbox = MemoryOutbox::new();
    let app = app_on(&store, &outbox, |b| {
        b.failure_budget(2).resend_cooldown(Duration::ZERO)
    });
    let victim = "victim@example.com";
    app.send_email(victim).await.assert_success();
    let code = app.code_for(victim);
    for _ in 0..2 {
        app.verify_email(victim, &wrong_code(&code))
            .await
            .assert_error(400, "otp_invalid");
    }
    // Four times the table's worth of contacts with one wrong code each.
    for i in 0..4 * CAP {
        let email = contact("guesser", i);
        app.send_email(&email).await.assert_success();
        let code = app.code_for(&email);
        app.verify_email(&email, &wrong_code(&code))
            .await
            .assert_error(400, "otp_invalid");
    }
    app.send_email(victim).await.assert_success();
    let code = app.code_for(victim);
    app.verify_email(victim, &code)
        .await
        .assert_error(429, "rate_limited");
}

/// What a pending code costs: the code record and its send record, with
/// keys and records shaped as the engine makes them (32 hex digits, a
/// 32-byte hash), counted by the allocator at 100 000 contacts. The module
/// docs of `store::memory` quote this figure.
#[test]
fn a_pending_code_costs_at_most_256_bytes() {
    const N: usize = 100_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let keys: Vec<StoreKey> = (0..N).map(|i| StoreKey::new(format!("{i:032x}"))).collect();
    let record = CodeRecord::new([7; 16], vec![9; 32], 1);
    let limits = SendLimits::new(Duration::from_secs(30), 5, Duration::from_secs(600));
    let before = NET.with(Cell::get);
    let store = MemoryStore::with_max_entries(N);
    rt.block_on(async {
        for key in &keys {
            store
                .put_code(key, &record, Duration::from_secs(300))
                .await
                .unwrap();
            store.reserve_send(key, &limits).await.unwrap();
        }
    });
    let per_contact = (NET.with(Cell::get) - before) / N as isize;
    eprintln!("{per_contact} bytes per pending code with its send record");
    assert!(per_contact <= 256, "{per_contact} bytes per pending code");
    drop(store);
}
