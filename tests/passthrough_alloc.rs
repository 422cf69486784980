//! The passthrough path allocates nothing beyond what the inner service
//! does: a counting global allocator compares a bare axum router with the
//! same router wrapped in `OtpLayer`, request by request.
//!
//! (Mounted with axum's `Router::layer` instead, axum itself boxes each
//! layered route's future and converts the response body: that cost is
//! axum's, printed here for the record, not asserted.)
#![allow(unsafe_code)] // a global allocator is unsafe by nature

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use axum::{Router, body::Body, routing::get};
use http::Request;
use tower::ServiceExt;
use tower_otp::{Otp, hash::HashParams};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: delegates every call to the system allocator unchanged; the
// thread-local counters never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while running `n` requests through
/// `router` (request construction excluded).
fn allocations_per_request<S>(runtime: &tokio::runtime::Runtime, router: &S, n: u64) -> f64
where
    S: tower::Service<Request<Body>> + Clone,
    S::Response: std::fmt::Debug,
    S::Error: std::fmt::Debug,
{
    let mut total = 0;
    for _ in 0..n {
        let request = Request::get("/").body(Body::empty()).unwrap();
        let router = router.clone();
        ALLOCATIONS.with(|c| c.set(0));
        COUNTING.with(|c| c.set(true));
        let response = runtime.block_on(router.oneshot(request)).unwrap();
        COUNTING.with(|c| c.set(false));
        total += ALLOCATIONS.with(Cell::get);
        drop(response);
    }
    total as f64 / n as f64
}

#[test]
fn passthrough_adds_no_allocation() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let otp = Otp::builder()
        .secret("allocation test secret, 32 bytes")
        .hash_params(HashParams::insecure_fast())
        .build()
        .unwrap();
    let bare: Router = Router::new().route("/", get(|| async { "hello" }));
    let layered = bare.clone().layer(otp.layer());
    let wrapped = tower::ServiceBuilder::new()
        .layer(otp.layer())
        .service(bare.clone());
    allocations_per_request(&runtime, &wrapped, 20);
    let wrapped_allocs = allocations_per_request(&runtime, &wrapped, 200);

    // Warm up lazily initialised state on both paths.
    allocations_per_request(&runtime, &bare, 20);
    allocations_per_request(&runtime, &layered, 20);

    let bare_allocs = allocations_per_request(&runtime, &bare, 200);
    let layered_allocs = allocations_per_request(&runtime, &layered, 200);
    eprintln!(
        "allocations per request: bare router {bare_allocs}, wrapped in OtpLayer {wrapped_allocs}, \
         via Router::layer {layered_allocs}"
    );
    assert!(
        bare_allocs > 0.0,
        "the counter must see the router's own allocations"
    );
    assert_eq!(
        wrapped_allocs, bare_allocs,
        "the layer's passthrough path allocated"
    );
}
