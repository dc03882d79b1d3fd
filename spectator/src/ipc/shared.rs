//! The state one layer shares among its services and calls: the bounded endpoint table, the
//! in-flight counts and the cache of call timers.
//!
//! A call on a warm endpoint reads two atomics and compares a few short strings to find its
//! endpoint, and finds its timer in a fixed open-addressed table keyed by a packed `u64` (one
//! multiply and, most often, one atomic load): no lock, no allocation, no registry lookup.
//! Only a new endpoint or a new tag combination takes the layer's mutex and asks the
//! registry.

use super::status::{
    method_index, protocol_of, status_index, IpcAttempt, IpcStatus, ATTEMPTS, METHODS, PROTOCOLS,
    PROTO_GRPC,
};
use super::IpcEndpoint;
use crate::clock::Clock;
use crate::meter::{DistributionSummary, PercentileTimer};
use crate::registry::Registry;
use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Most distinct `ipc.endpoint` values one layer reports, besides `unknown` and `--others--`.
pub const MAX_ENDPOINTS: usize = 25;

/// The value reported for endpoints past [`MAX_ENDPOINTS`].
pub const OTHERS: &str = "--others--";

/// The value reported when a request names no endpoint.
pub const UNKNOWN: &str = "unknown";

const UNKNOWN_SLOT: u8 = 0;
const OTHERS_SLOT: u8 = 1;
const FIRST_NAMED: usize = 2;
const SLOTS: usize = FIRST_NAMED + MAX_ENDPOINTS;

/// No `ipc.attempt` tags (server calls).
const NO_ATTEMPT: u8 = 0xff;

/// A user's endpoint extractor.
pub(crate) type EndpointFn = dyn Fn(&http::request::Parts) -> Option<&str> + Send + Sync;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// What a layer was configured with.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) owner: String,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) endpoint_fn: Option<Arc<EndpointFn>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            owner: "spectator-rs".to_string(),
            tags: Vec::new(),
            endpoint_fn: None,
        }
    }
}

/// The tag keys the layer sets itself; extra tags with these keys are ignored.
pub(crate) const OWN_KEYS: [&str; 9] = [
    "owner",
    "ipc.result",
    "ipc.status",
    "ipc.endpoint",
    "http.method",
    "http.status",
    "ipc.protocol",
    "ipc.attempt",
    "ipc.attempt.final",
];

struct Endpoint {
    name: Box<str>,
    inflight: AtomicU64,
    summary: DistributionSummary,
}

/// Slots of the call table (a power of two). Tag combinations are few per layer (endpoint x
/// method x status x protocol x attempt): past this many, or after [`MAX_PROBES`] taken
/// slots, a combination's timer lives in the mutex-guarded overflow map.
const TABLE_SLOTS: usize = 512;
const TABLE_BITS: u32 = TABLE_SLOTS.trailing_zeros();
const MAX_PROBES: usize = 16;
/// Set in every stored key, so that 0 means "empty".
const KEY_PRESENT: u64 = 1 << 41;

/// The call timers by packed key: lock-free reads, inserts under the layer's mutex.
struct CallTable {
    keys: Box<[AtomicU64]>,
    timers: Box<[OnceLock<PercentileTimer>]>,
    /// Combinations that found no free slot (guarded by its own mutex; rare).
    overflow: Mutex<HashMap<u64, PercentileTimer, FxBuildHasher>>,
}

impl CallTable {
    fn new() -> CallTable {
        CallTable {
            keys: (0..TABLE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            timers: (0..TABLE_SLOTS).map(|_| OnceLock::new()).collect(),
            overflow: Mutex::new(HashMap::default()),
        }
    }

    #[inline]
    fn home(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize
    }

    /// The timer of `key` (already `| KEY_PRESENT`), if in the table.
    #[inline]
    fn get(&self, key: u64) -> Option<&PercentileTimer> {
        let mut i = Self::home(key);
        for _ in 0..MAX_PROBES {
            match self.keys[i].load(Ordering::Acquire) {
                k if k == key => return self.timers[i].get(),
                0 => return None,
                _ => i = (i + 1) & (TABLE_SLOTS - 1),
            }
        }
        None
    }

    /// Adds `key`; the caller holds the layer's mutex and checked `get` under it.
    fn insert(&self, key: u64, timer: PercentileTimer) {
        let mut i = Self::home(key);
        for _ in 0..MAX_PROBES {
            if self.keys[i].load(Ordering::Acquire) == 0 {
                let _ = self.timers[i].set(timer);
                // Publishes the timer: a reader that sees the key sees the timer.
                self.keys[i].store(key, Ordering::Release);
                return;
            }
            i = (i + 1) & (TABLE_SLOTS - 1);
        }
        self.overflow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, timer);
    }

    fn overflowed(&self, key: u64) -> Option<PercentileTimer> {
        self.overflow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }
}

pub(crate) struct Shared {
    registry: Registry,
    clock: Arc<dyn Clock>,
    side: Side,
    pub(crate) config: Config,
    /// `[unknown, --others--, named...]`; named slots are filled in order under `lock`.
    slots: [OnceLock<Endpoint>; SLOTS],
    named: AtomicUsize,
    calls: CallTable,
    lock: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(registry: Registry, side: Side, config: Config) -> Shared {
        Shared {
            clock: Arc::clone(registry.clock()),
            registry,
            side,
            config,
            slots: std::array::from_fn(|_| OnceLock::new()),
            named: AtomicUsize::new(0),
            calls: CallTable::new(),
            lock: Mutex::new(()),
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    fn call_name(&self) -> &'static str {
        match self.side {
            Side::Server => "ipc.server.call",
            Side::Client => "ipc.client.call",
        }
    }

    fn inflight_name(&self) -> &'static str {
        match self.side {
            Side::Server => "ipc.server.inflight",
            Side::Client => "ipc.client.inflight",
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_endpoint(&self, name: &str) -> Endpoint {
        let summary = self.registry.distribution_summary(
            self.inflight_name(),
            &[("owner", &self.config.owner), ("ipc.endpoint", name)],
        );
        Endpoint {
            name: name.into(),
            inflight: AtomicU64::new(0),
            summary,
        }
    }

    fn fixed_slot(&self, slot: u8) -> &Endpoint {
        let name = if slot == UNKNOWN_SLOT {
            UNKNOWN
        } else {
            OTHERS
        };
        self.slots[usize::from(slot)].get_or_init(|| self.new_endpoint(name))
    }

    fn slot(&self, slot: u8) -> &Endpoint {
        match self.slots[usize::from(slot)].get() {
            Some(e) => e,
            None => self.fixed_slot(slot),
        }
    }

    /// The slot of endpoint `name`: an existing one, a new one while fewer than
    /// [`MAX_ENDPOINTS`] exist, else `--others--`.
    fn endpoint_slot(&self, name: Option<&str>) -> u8 {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return UNKNOWN_SLOT;
        };
        if let Some(i) = self.find(name, self.named.load(Ordering::Acquire)) {
            return i;
        }
        let n = self.named.load(Ordering::Acquire);
        if n >= MAX_ENDPOINTS {
            return OTHERS_SLOT;
        }
        let _guard = self.lock();
        let n = self.named.load(Ordering::Acquire);
        if let Some(i) = self.find(name, n) {
            return i;
        }
        if n >= MAX_ENDPOINTS {
            return OTHERS_SLOT;
        }
        let _ = self.slots[FIRST_NAMED + n].set(self.new_endpoint(name));
        self.named.store(n + 1, Ordering::Release);
        if n + 1 == MAX_ENDPOINTS {
            tracing::debug!(
                target: "spectator::ipc",
                "{MAX_ENDPOINTS} distinct ipc.endpoint values: later ones are reported as {OTHERS}"
            );
        }
        (FIRST_NAMED + n) as u8
    }

    fn find(&self, name: &str, n: usize) -> Option<u8> {
        self.slots[FIRST_NAMED..FIRST_NAMED + n]
            .iter()
            .position(|s| s.get().is_some_and(|e| *e.name == *name))
            .map(|i| (FIRST_NAMED + i) as u8)
    }

    /// Starts timing a call and hands the request on to `call` (the inner service): the
    /// user's endpoint extractor, when configured, sees the request first.
    #[inline]
    pub(crate) fn start<B, F>(
        self: &Arc<Self>,
        req: http::Request<B>,
        call: impl FnOnce(http::Request<B>) -> F,
    ) -> (F, Pending) {
        if let Some(f) = &self.config.endpoint_fn {
            let (req, pending) = self.start_with_fn(&**f, req);
            return (call(req), pending);
        }
        let pending = self.begin(&req, None);
        (call(req), pending)
    }

    /// Starts timing a call whose endpoint the user's extractor names (see [`Shared::begin`]).
    #[cold]
    fn start_with_fn<B>(
        self: &Arc<Self>,
        f: &EndpointFn,
        req: http::Request<B>,
    ) -> (http::Request<B>, Pending) {
        let (parts, body) = req.into_parts();
        let slot = f(&parts).map(|name| self.endpoint_slot(Some(name)));
        let req = http::Request::from_parts(parts, body);
        let pending = self.begin(&req, slot);
        (req, pending)
    }

    /// Starts timing a call: resolves its endpoint (unless given), counts it in flight, reads
    /// the clock.
    #[inline]
    pub(crate) fn begin<B>(self: &Arc<Self>, req: &http::Request<B>, slot: Option<u8>) -> Pending {
        let proto = protocol_of(req);
        let slot = match slot {
            Some(s) => s,
            None => self.default_slot(req.extensions(), req.uri(), proto),
        };
        let (attempt, is_final) = match self.side {
            Side::Server => (NO_ATTEMPT, true),
            Side::Client => {
                let a = req
                    .extensions()
                    .get::<IpcAttempt>()
                    .copied()
                    .unwrap_or_default();
                (a.index(), a.is_final())
            }
        };
        let endpoint = self.slot(slot);
        let now = endpoint.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        endpoint.summary.record(now as f64);
        Pending {
            shared: Arc::clone(self),
            start: self.clock.monotonic_time(),
            endpoint: slot,
            method: method_index(req.method()),
            proto,
            attempt,
            is_final,
            http_status: 0,
            armed: true,
        }
    }

    fn default_slot(&self, ext: &http::Extensions, uri: &http::Uri, proto: u8) -> u8 {
        if let Some(e) = ext.get::<IpcEndpoint>() {
            return self.endpoint_slot(Some(e.as_str()));
        }
        #[cfg(feature = "axum")]
        if let Some(m) = ext.get::<axum::extract::MatchedPath>() {
            return self.endpoint_slot(Some(m.as_str()));
        }
        if proto == PROTO_GRPC {
            return self.endpoint_slot(Some(uri.path()));
        }
        UNKNOWN_SLOT
    }

    #[inline]
    fn record_call(&self, key: u64, p: &Pending, status: IpcStatus, elapsed: Duration) {
        let key = key | KEY_PRESENT;
        match self.calls.get(key) {
            Some(t) => t.record(elapsed),
            None => self.record_call_slow(key, p, status, elapsed),
        }
    }

    #[cold]
    fn record_call_slow(&self, key: u64, p: &Pending, status: IpcStatus, elapsed: Duration) {
        let timer = {
            let _guard = self.lock();
            if let Some(t) = self.calls.get(key) {
                t.clone()
            } else if let Some(t) = self.calls.overflowed(key) {
                t
            } else {
                let timer = self.new_timer(p, status);
                self.calls.insert(key, timer.clone());
                timer
            }
        };
        timer.record(elapsed);
    }

    fn new_timer(&self, p: &Pending, status: IpcStatus) -> PercentileTimer {
        let code = p.http_status.to_string();
        let mut tags: Vec<(&str, &str)> = self
            .config
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        tags.extend([
            ("owner", self.config.owner.as_str()),
            ("ipc.result", status.result()),
            ("ipc.status", status.as_str()),
            ("ipc.endpoint", &self.slot(p.endpoint).name),
            ("http.method", METHODS[usize::from(p.method)]),
            ("ipc.protocol", PROTOCOLS[usize::from(p.proto)]),
        ]);
        if p.http_status != 0 {
            tags.push(("http.status", &code));
        }
        if p.attempt != NO_ATTEMPT {
            tags.push(("ipc.attempt", ATTEMPTS[usize::from(p.attempt)]));
            tags.push((
                "ipc.attempt.final",
                if p.is_final { "true" } else { "false" },
            ));
        }
        self.registry.percentile_timer(self.call_name(), &tags)
    }
}

/// A call in progress. Finishing it records the call; dropping it unfinished records the
/// call as `cancelled`. Either way it leaves the in-flight count.
pub(crate) struct Pending {
    shared: Arc<Shared>,
    start: u64,
    endpoint: u8,
    method: u8,
    pub(crate) proto: u8,
    attempt: u8,
    is_final: bool,
    /// The response's status code, once known (0 before).
    pub(crate) http_status: u16,
    armed: bool,
}

impl Pending {
    /// Records the call with `status` and the response status `http_status` (0: none).
    pub(crate) fn finish(mut self, status: IpcStatus, http_status: u16) {
        self.http_status = http_status;
        self.record(status);
    }

    pub(crate) fn side(&self) -> Side {
        self.shared.side
    }

    fn record(&mut self, status: IpcStatus) {
        if !self.armed {
            return;
        }
        self.armed = false;
        let shared = &*self.shared;
        let elapsed = shared.clock.monotonic_time().saturating_sub(self.start);
        let key = u64::from(self.endpoint)
            | u64::from(self.method) << 8
            | u64::from(status_index(status)) << 16
            | u64::from(self.proto) << 24
            | u64::from(self.attempt) << 32
            | u64::from(self.is_final) << 40
            | u64::from(self.http_status) << 48;
        shared.record_call(key, self, status, Duration::from_nanos(elapsed));
        shared
            .slot(self.endpoint)
            .inflight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.record(IpcStatus::Cancelled);
    }
}
