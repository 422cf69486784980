//! The in-process table of one limit: governor's GCRA state per key, for at
//! most `max` keys. When the table is full, keys it already tracks keep
//! their own state; keys it does not track share one overflow state, so a
//! flood of new keys neither grows memory nor takes anyone's budget away.

use std::{
    hash::Hash,
    sync::atomic::{AtomicBool, Ordering},
};

use governor::{
    nanos::Nanos,
    state::{
        InMemoryState, NotKeyed, StateStore,
        keyed::{DashMapStateStore, ShrinkableKeyedStateStore},
    },
};

/// A governor state store holding at most `max` keys plus one overflow
/// state shared by every key that finds the table full.
pub(super) struct BoundedStore<K: Hash + Eq> {
    map: DashMapStateStore<K>,
    overflow: InMemoryState,
    max: usize,
    /// The limit's name, for the log line.
    name: String,
    /// Set while new keys are sent to the overflow state (logged once per
    /// episode, not per request).
    overflowing: AtomicBool,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// An empty table for at most `max` keys (at least one).
    pub(super) fn new(name: String, max: usize) -> Self {
        Self {
            map: DashMapStateStore::default(),
            overflow: InMemoryState::default(),
            max: max.max(1),
            name,
            overflowing: AtomicBool::new(false),
        }
    }

    /// Whether the table holds as many keys as it may.
    fn is_full(&self) -> bool {
        self.map.len() >= self.max
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // A race between two new keys may overshoot `max` by the number of
        // threads checking at once: still bounded.
        if self.map.contains_key(key) || !self.is_full() {
            return StateStore::measure_and_replace(&self.map, key, f);
        }
        if !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                rule = %self.name,
                max_keys = self.max,
                "rate limit table full: clients already tracked keep their budgets, \
                 new clients share one overflow budget until idle entries expire"
            );
        }
        self.overflow.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
        if !self.is_full() {
            self.overflowing.store(false, Ordering::Relaxed);
        }
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.map);
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
