//! Argon2id hashing of codes, keyed with the server secret, on a bounded pool
//! of dedicated threads.
//!
//! - **Keyed**: the server secret is Argon2's secret input, so a leaked store
//!   cannot be brute-forced offline (a 6-digit code has only a million
//!   values; without the secret, the hashes are useless).
//! - **Off the async runtime**: hashing takes milliseconds of CPU at the
//!   default parameters (on the quiet benchmark machine about 17 ms with
//!   RustCrypto's `argon2`, 7 ms with `argon2-rust`); it runs on
//!   the pool's own threads, never on a tokio worker.
//! - **Bounded**: at most `workers` hashes run at once and at most `queue`
//!   wait; past that, [`HashPool::hash`] answers [`HashError::Overloaded`]
//!   at once (503 `overloaded`) instead of queueing without bound.
//! - **Memory reused**: each worker owns its Argon2 memory blocks and reuses
//!   them for every hash instead of allocating ~19 MiB per hash.
//! - **Two backends, one answer**: RustCrypto's `argon2` by default (feature
//!   `rustcrypto-argon2`), or with the opt-in `simd-argon2` feature
//!   `argon2-rust`, whose compression runs on the widest vector unit the CPU
//!   has (AVX-512, AVX2, SSE2 or NEON, chosen at run time). The hashes are
//!   the same either way; each wipes its memory blocks after every hash.
//! - **Low priority** (Linux, by default): the workers run at nice 19, so a
//!   flood of verifications barely delays the requests that do not hash;
//!   see [`HashThreadPriority`].

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{Receiver, Sender, channel},
    },
    thread,
};

use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};
use zeroize::Zeroizing;

use crate::{argon::ThreadHasher, error::ConfigError, secret::KeyRing};

#[doc(hidden)]
pub use crate::argon::backend;

/// Length of a code hash in bytes.
pub const HASH_LEN: usize = 32;

/// The default Argon2id memory cost in KiB (OWASP minimum: 19 MiB).
pub const DEFAULT_M_COST: u32 = 19_456;
/// The default Argon2id time cost (passes).
pub const DEFAULT_T_COST: u32 = 2;
/// The default Argon2id parallelism (lanes).
pub const DEFAULT_P_COST: u32 = 1;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB (at least 8 × `p_cost`).
    pub m_cost: u32,
    /// Passes over memory (at least 1).
    pub t_cost: u32,
    /// Lanes (at least 1).
    pub p_cost: u32,
}

impl Default for HashParams {
    /// m=19456 KiB, t=2, p=1: the OWASP minimum for Argon2id.
    fn default() -> Self {
        Self {
            m_cost: DEFAULT_M_COST,
            t_cost: DEFAULT_T_COST,
            p_cost: DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    /// Tiny parameters for tests that are not about hashing. **Insecure.**
    pub fn insecure_fast() -> Self {
        Self {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }
}

/// Why a hash could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The pool's queue is full; retry later.
    #[error("the hashing pool is overloaded")]
    Overloaded,
    /// The pool has shut down or a worker died.
    #[error("the hashing pool is unavailable")]
    Unavailable,
    /// The record names a secret that is no longer accepted.
    #[error("unknown secret id")]
    UnknownSecret,
}

struct Job {
    /// Held until the hash is done: bounds running + waiting hashes.
    slot: OwnedSemaphorePermit,
    secret_index: usize,
    code: Zeroizing<Vec<u8>>,
    salt: [u8; 16],
    reply: oneshot::Sender<Zeroizing<[u8; HASH_LEN]>>,
    /// When the job was queued (the queue-wait histogram).
    #[cfg(feature = "metrics")]
    queued_at: std::time::Instant,
}

/// A bounded pool of threads that compute keyed Argon2id hashes.
///
/// ```
/// use tower_otp::hash::{HashParams, HashPool};
/// use tower_otp::Secret;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let pool = HashPool::new(HashParams::insecure_fast(), Secret::new("s3cret"), &[], 1, 8).unwrap();
/// let salt = [7u8; 16];
/// let id = pool.current_secret_id();
/// let hash = pool.hash("123456", &salt).await.unwrap();
/// assert!(pool.verify("123456", &salt, id, &hash[..]).await.unwrap());
/// assert!(!pool.verify("654321", &salt, id, &hash[..]).await.unwrap());
/// # });
/// ```
#[doc(hidden)] // the crate's benches and tests use it; not part of the stable API
pub struct HashPool {
    /// Each worker's own inbox (dropping them stops the workers).
    inboxes: Vec<Sender<Job>>,
    dispatch: Arc<Mutex<Dispatch>>,
    slots: Arc<Semaphore>,
    keys: Arc<KeyRing>,
    params: HashParams,
    workers: usize,
}

impl fmt::Debug for HashPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashPool")
            .field("params", &self.params)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl HashPool {
    /// Starts `workers` threads (at least 1) with room for `queue` waiting
    /// hashes, keyed with `secret` (and accepting `old_secrets` for hashes
    /// made before a rotation). The threads run at the default
    /// [`HashThreadPriority`].
    pub fn new(
        params: HashParams,
        secret: crate::Secret,
        old_secrets: &[crate::Secret],
        workers: usize,
        queue: usize,
    ) -> Result<Self, ConfigError> {
        Self::new_with_priority(
            params,
            secret,
            old_secrets,
            workers,
            queue,
            HashThreadPriority::default(),
        )
    }

    /// [`HashPool::new`] with the threads at `priority`.
    pub fn new_with_priority(
        params: HashParams,
        secret: crate::Secret,
        old_secrets: &[crate::Secret],
        workers: usize,
        queue: usize,
        priority: HashThreadPriority,
    ) -> Result<Self, ConfigError> {
        Self::with_keys(
            params,
            Arc::new(KeyRing::new(&secret, old_secrets)),
            workers,
            queue,
            priority,
        )
    }

    pub(crate) fn with_keys(
        params: HashParams,
        keys: Arc<KeyRing>,
        workers: usize,
        queue: usize,
        priority: HashThreadPriority,
    ) -> Result<Self, ConfigError> {
        let workers = workers.max(1);
        // Every worker is idle from the start (each first waits on its
        // inbox), so no worker joins the stack late, on top of the one a
        // caller has kept warm.
        let dispatch = Arc::new(Mutex::new(Dispatch {
            idle: (0..workers).collect(),
            queue: VecDeque::new(),
        }));
        let mut inboxes = Vec::with_capacity(workers);
        let (started, all_started) = channel::<()>();
        for index in 0..workers {
            // Built here so that parameters the implementation refuses are a
            // configuration error, not a failed hash later.
            let hasher =
                ThreadHasher::new(params).map_err(|e| ConfigError::invalid("hash_params", e))?;
            let (inbox, receiver) = channel::<Job>();
            inboxes.push(inbox);
            let dispatch = Arc::clone(&dispatch);
            let keys = Arc::clone(&keys);
            let started = started.clone();
            thread::Builder::new()
                .name(format!("tower-otp-hash-{index}"))
                .spawn(move || {
                    priority.apply_to_current_thread();
                    let _ = started.send(());
                    drop(started);
                    worker(index, &dispatch, &receiver, &keys, hasher);
                })
                .map_err(|e| ConfigError::Backend {
                    what: "hashing pool thread",
                    source: Box::new(e),
                })?;
        }
        // Every thread runs at its priority before the first hash is sent.
        drop(started);
        while all_started.recv().is_ok() {}
        Ok(Self {
            inboxes,
            dispatch,
            slots: Arc::new(Semaphore::new(workers + queue)),
            keys,
            params,
            workers,
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// The fingerprint of the current secret (stored beside each hash).
    pub fn current_secret_id(&self) -> u32 {
        self.keys.current().id
    }

    /// Reserves a place in the pool for one hash, or answers
    /// [`HashError::Overloaded`] at once when every worker is busy and the
    /// queue is full.
    pub fn reserve(&self) -> Result<HashPermit<'_>, HashError> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => Ok(HashPermit { pool: self, slot }),
            Err(TryAcquireError::NoPermits) => Err(HashError::Overloaded),
            Err(TryAcquireError::Closed) => Err(HashError::Unavailable),
        }
    }

    /// Hashes `code` with `salt` under the current secret.
    pub async fn hash(
        &self,
        code: &str,
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; HASH_LEN]>, HashError> {
        self.reserve()?.hash(code, salt).await
    }

    /// Whether `code` hashes to `expected` under the secret named
    /// `secret_id`, compared in constant time.
    pub async fn verify(
        &self,
        code: &str,
        salt: &[u8; 16],
        secret_id: u32,
        expected: &[u8],
    ) -> Result<bool, HashError> {
        self.reserve()?
            .verify(code, salt, secret_id, expected)
            .await
    }
}

/// A reserved place in the [`HashPool`]: the hash it runs cannot be refused
/// for overload.
#[derive(Debug)]
#[doc(hidden)]
pub struct HashPermit<'a> {
    pool: &'a HashPool,
    slot: OwnedSemaphorePermit,
}

impl HashPermit<'_> {
    /// Hashes `code` with `salt` under the current secret.
    pub async fn hash(
        self,
        code: &str,
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; HASH_LEN]>, HashError> {
        self.run(0, code, salt).await
    }

    /// Whether `code` hashes to `expected` under the secret named
    /// `secret_id`, compared in constant time.
    pub async fn verify(
        self,
        code: &str,
        salt: &[u8; 16],
        secret_id: u32,
        expected: &[u8],
    ) -> Result<bool, HashError> {
        let index = self
            .pool
            .keys
            .all()
            .iter()
            .position(|e| e.id == secret_id)
            .ok_or(HashError::UnknownSecret)?;
        let actual = self.run(index, code, salt).await?;
        Ok(actual.ct_eq(expected).into())
    }

    async fn run(
        self,
        secret_index: usize,
        code: &str,
        salt: &[u8; 16],
    ) -> Result<Zeroizing<[u8; HASH_LEN]>, HashError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            slot: self.slot,
            secret_index,
            code: Zeroizing::new(code.as_bytes().to_vec()),
            salt: *salt,
            reply,
            #[cfg(feature = "metrics")]
            queued_at: std::time::Instant::now(),
        };
        // Counted before the hand-off, so that the worker's decrement never
        // comes first.
        #[cfg(feature = "metrics")]
        let queued = metrics::gauge!(crate::telemetry::HASH_POOL_QUEUED);
        #[cfg(feature = "metrics")]
        queued.increment(1.0);
        let submitted = self.pool.submit(job);
        #[cfg(feature = "metrics")]
        if submitted.is_err() {
            queued.decrement(1.0);
        }
        submitted?;
        answer.await.map_err(|_| HashError::Unavailable)
    }
}

/// Who takes the next job. Idle workers wait on a stack, so a job goes to
/// the worker that finished **last**: its Argon2 memory (19 MiB at the
/// default parameters) is the most likely to still be in the CPU's caches.
/// With one caller, one worker does every hash instead of the workers
/// taking turns on arenas the other has pushed out of the cache
/// (`BENCHMARKS.md`, "Hashing pool"). With no worker idle, jobs wait in
/// order for the first worker to finish.
#[derive(Default)]
struct Dispatch {
    idle: Vec<usize>,
    /// Bounded by the pool's semaphore (workers + queue places).
    queue: VecDeque<Job>,
}

fn lock_dispatch(dispatch: &Mutex<Dispatch>) -> std::sync::MutexGuard<'_, Dispatch> {
    // Both sides leave the state whole between statements: keep going.
    dispatch.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HashPool {
    /// Hands `job` to the most recently idle worker, or queues it.
    fn submit(&self, job: Job) -> Result<(), HashError> {
        let mut dispatch = lock_dispatch(&self.dispatch);
        match dispatch.idle.pop() {
            Some(index) => {
                drop(dispatch);
                // An idle worker waits on its inbox; it is gone only if it
                // died.
                self.inboxes[index]
                    .send(job)
                    .map_err(|_| HashError::Unavailable)
            }
            None => {
                dispatch.queue.push_back(job);
                Ok(())
            }
        }
    }
}

/// The next queued job, or `None` after putting worker `index` on the idle
/// stack (it then waits on its inbox).
fn claim_next(index: usize, dispatch: &Mutex<Dispatch>) -> Option<Job> {
    let mut dispatch = lock_dispatch(dispatch);
    let queued = dispatch.queue.pop_front();
    if queued.is_none() {
        dispatch.idle.push(index);
    }
    queued
}

fn worker(
    index: usize,
    dispatch: &Mutex<Dispatch>,
    inbox: &Receiver<Job>,
    keys: &KeyRing,
    mut hasher: ThreadHasher,
) {
    // On the idle stack already (see `HashPool::with_keys`).
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match inbox.recv() {
                Ok(job) => job,
                Err(_) => return, // the pool was dropped
            },
        };
        #[cfg(feature = "metrics")]
        {
            use crate::telemetry::{HASH_POOL_QUEUED, HASH_QUEUE_WAIT_SECONDS};
            metrics::gauge!(HASH_POOL_QUEUED).decrement(1.0);
            metrics::histogram!(HASH_QUEUE_WAIT_SECONDS).record(job.queued_at.elapsed());
        }
        let answer = hash_job(&job, keys, &mut hasher);
        // Free the place before answering: the caller may reserve the next
        // hash as soon as it has the answer, and this (low-priority) thread
        // may not run again before it does.
        drop(job.slot);
        // For the same reason, back on the idle stack (or onto the next
        // queued job) before answering: a caller's next hash then comes to
        // this worker, whose arena is warm, even when the scheduler
        // preempts this thread right after the answer (the other worker
        // took turns otherwise; BENCHMARKS.md, "Hashing pool").
        next = claim_next(index, dispatch);
        if let Some(out) = answer {
            let _ = job.reply.send(out);
        }
    }
}

/// Runs one job's hash, unless its request went away while it was queued.
fn hash_job(
    job: &Job,
    keys: &KeyRing,
    hasher: &mut ThreadHasher,
) -> Option<Zeroizing<[u8; HASH_LEN]>> {
    if job.reply.is_closed() {
        return None; // the request went away while queued: skip the work
    }
    let entry = keys.all().get(job.secret_index)?;
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    #[cfg(feature = "metrics")]
    let started = {
        metrics::gauge!(crate::telemetry::HASH_POOL_BUSY).increment(1.0);
        std::time::Instant::now()
    };
    let hashed = hasher.hash_into(&entry.secret, &job.code, &job.salt, &mut out);
    #[cfg(feature = "metrics")]
    {
        use crate::telemetry::{HASH_POOL_BUSY, HASH_SECONDS};
        metrics::histogram!(HASH_SECONDS).record(started.elapsed());
        metrics::gauge!(HASH_POOL_BUSY).decrement(1.0);
    }
    match hashed {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::error!(error = %e, "argon2 hashing failed");
            None
        }
    }
}

/// The OS scheduling priority of the hashing threads.
///
/// A verification costs milliseconds of CPU (7–17 ms at the default
/// parameters on the benchmark machine); a flood of them keeps every core
/// busy. At [`Low`](Self::Low) the scheduler favours any other thread that
/// wakes up (the async workers serving the routes that do not hash, the
/// store client, the rest of the machine) over a hash, so a verify flood barely moves the
/// latency of the other routes (measured in BENCHMARKS.md: a passthrough
/// p99 of 1.2–1.6× its idle value in most runs of a flood on 2 cores,
/// against 12–15× at normal priority).
///
/// The other side of the trade: at nice 19 a hashing thread gets about 1.5 %
/// of a core against each busy normal-priority thread. On a machine that
/// other work keeps busy, verifications slow down accordingly (and past the
/// pool's queue get 503 `overloaded`); choose [`Normal`](Self::Normal) when
/// they must keep a fair share of the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashThreadPriority {
    /// Linux and Android: nice 19, the lowest (never below the process's own nice
    /// value); elsewhere the same as [`Normal`](Self::Normal), since a
    /// thread's nice value there is the whole process's. The default.
    #[default]
    Low,
    /// The priority the threads inherit from the process, like any other
    /// thread.
    Normal,
}

/// The nice value of [`HashThreadPriority::Low`] threads.
#[cfg(any(target_os = "linux", target_os = "android"))]
const LOW_NICE: i32 = 19;

impl HashThreadPriority {
    fn apply_to_current_thread(self) {
        if self == Self::Normal {
            return;
        }
        // On Linux a thread has its own nice value, set through
        // setpriority(PRIO_PROCESS, tid).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::process::{getpriority_process, setpriority_process};
            let tid = Some(rustix::thread::gettid());
            let applied = getpriority_process(tid).and_then(|current| {
                if current >= LOW_NICE {
                    Ok(()) // already as low: raising it needs privileges
                } else {
                    setpriority_process(tid, LOW_NICE)
                }
            });
            if let Err(e) = applied {
                tracing::warn!(error = %e, "could not lower the hashing thread's priority");
            }
        }
    }
}
