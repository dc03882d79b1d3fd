//! The state one layer shares among its services and calls: the bounded endpoint table, the
//! in-flight counts and the cache of call timers.
//!
//! A call on a warm endpoint compares a few short strings to find its endpoint, takes a
//! counted reference to it (the same `fetch_add` counts it in flight: no separate `Arc` clone),
//! and at its end finds its timer in a fixed open-addressed table keyed by a packed `u64` (one
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
use std::ptr::NonNull;
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

/// One endpoint of a layer, with its in-flight count. Counted by hand rather than in an `Arc`,
/// so that the count of calls in flight is also what keeps it alive: `refs` is 1 for the
/// layer's table plus 1 per call in flight, and a call starting takes its reference and reads
/// the in-flight count in the same `fetch_add` (an `Arc` clone next to an in-flight counter
/// would be two atomic read-modify-writes per start and two per end, of the four that
/// dominate the cost of a call).
///
/// Aligned to 512 bytes so that a call keeps its method, protocol and attempt in the low 9 bits
/// of its pointer to the endpoint: its state is then 16 bytes, and the future wrapping a small
/// inner future (a response of 112 bytes) stays within the 128 bytes that are moved inline
/// rather than by a call to `memcpy`. (At most 27 endpoints per layer: 14 KB.)
#[repr(align(512))]
struct Endpoint {
    refs: AtomicUsize,
    /// Its index in the layer's table (part of the call key).
    slot: u8,
    name: Box<str>,
    summary: DistributionSummary,
    core: Arc<Core>,
}

/// One counted reference to an [`Endpoint`]: the layer's table holds one per endpoint, each
/// call in flight one. The last one dropped frees the endpoint.
struct EndpointRef(NonNull<Endpoint>);

// SAFETY: an `EndpointRef` gives shared access to an `Endpoint` (all of whose fields are `Send`
// and `Sync`) and releases its count atomically, as `Arc<Endpoint>` does.
unsafe impl Send for EndpointRef {}
// SAFETY: as for `Send`: `&EndpointRef` only reads the endpoint and changes its atomic count.
unsafe impl Sync for EndpointRef {}

impl EndpointRef {
    fn new(endpoint: Endpoint) -> EndpointRef {
        debug_assert_eq!(endpoint.refs.load(Ordering::Relaxed), 1);
        EndpointRef(NonNull::from(Box::leak(Box::new(endpoint))))
    }

    #[inline]
    fn get(&self) -> &Endpoint {
        // SAFETY: the endpoint lives while any reference to it does: this one counts.
        unsafe { self.0.as_ref() }
    }

    /// A reference for a call starting now (owned by the caller, released with
    /// [`release`]), and the number of calls of the endpoint in flight with it.
    #[inline]
    fn enter(&self) -> (NonNull<Endpoint>, u64) {
        // As `Arc::clone`: taking a reference from one held needs no ordering. The table's
        // reference is one of `before`, so `before` is the count in flight, this call included.
        let before = self.get().refs.fetch_add(1, Ordering::Relaxed);
        (self.0, before as u64)
    }
}

/// Drops one reference to `endpoint`, freeing it with the last one.
///
/// # Safety
///
/// The caller owns a reference to `endpoint` (from [`EndpointRef::new`] or
/// [`EndpointRef::enter`]) and uses neither it nor the endpoint afterwards.
#[inline]
unsafe fn release(endpoint: NonNull<Endpoint>) {
    // As `Arc`'s drop: release this holder's uses of the endpoint, and have the last one see
    // all of them before freeing it.
    // SAFETY: the caller's reference keeps the endpoint alive until this decrement.
    if unsafe { endpoint.as_ref() }
        .refs
        .fetch_sub(1, Ordering::Release)
        == 1
    {
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: this was the last reference (the count reached 0, and no reference is taken
        // but from a live one), and the pointer came from `Box::leak`.
        drop(unsafe { Box::from_raw(endpoint.as_ptr()) });
    }
}

impl Drop for EndpointRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the table's reference, dropped once, here.
        unsafe { release(self.0) }
    }
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

/// What a call needs until it ends (its endpoint keeps it alive): the clock, the call table
/// and what making a new call timer takes.
pub(crate) struct Core {
    registry: Registry,
    clock: Arc<dyn Clock>,
    side: Side,
    config: Config,
    calls: CallTable,
    /// Taken to add an endpoint or a call timer.
    lock: Mutex<()>,
}

/// The state one layer shares among its services: its endpoints.
pub(crate) struct Shared {
    core: Arc<Core>,
    /// `[unknown, --others--, named...]`; named slots are filled in order under `core.lock`.
    slots: [OnceLock<EndpointRef>; SLOTS],
    named: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(registry: Registry, side: Side, config: Config) -> Shared {
        Shared {
            core: Arc::new(Core {
                clock: Arc::clone(registry.clock()),
                registry,
                side,
                config,
                calls: CallTable::new(),
                lock: Mutex::new(()),
            }),
            slots: std::array::from_fn(|_| OnceLock::new()),
            named: AtomicUsize::new(0),
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.core.registry
    }

    pub(crate) fn config(&self) -> &Config {
        &self.core.config
    }

    fn new_endpoint(&self, slot: usize, name: &str) -> EndpointRef {
        let core = &self.core;
        let summary = core.registry.distribution_summary(
            core.inflight_name(),
            &[("owner", &core.config.owner), ("ipc.endpoint", name)],
        );
        EndpointRef::new(Endpoint {
            refs: AtomicUsize::new(1),
            slot: slot as u8,
            name: name.into(),
            summary,
            core: Arc::clone(core),
        })
    }

    fn fixed_slot(&self, slot: u8) -> &EndpointRef {
        let name = if slot == UNKNOWN_SLOT {
            UNKNOWN
        } else {
            OTHERS
        };
        let slot = usize::from(slot);
        self.slots[slot].get_or_init(|| self.new_endpoint(slot, name))
    }

    #[inline]
    fn slot(&self, slot: u8) -> &EndpointRef {
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
        let _guard = self.core.lock();
        let n = self.named.load(Ordering::Acquire);
        if let Some(i) = self.find(name, n) {
            return i;
        }
        if n >= MAX_ENDPOINTS {
            return OTHERS_SLOT;
        }
        let slot = FIRST_NAMED + n;
        let _ = self.slots[slot].set(self.new_endpoint(slot, name));
        self.named.store(n + 1, Ordering::Release);
        if n + 1 == MAX_ENDPOINTS {
            tracing::debug!(
                target: "spectator::ipc",
                "{MAX_ENDPOINTS} distinct ipc.endpoint values: later ones are reported as {OTHERS}"
            );
        }
        slot as u8
    }

    fn find(&self, name: &str, n: usize) -> Option<u8> {
        self.slots[FIRST_NAMED..FIRST_NAMED + n]
            .iter()
            .position(|s| s.get().is_some_and(|e| *e.get().name == *name))
            .map(|i| (FIRST_NAMED + i) as u8)
    }

    /// The user's endpoint extractor, if configured.
    #[inline]
    pub(crate) fn endpoint_fn(&self) -> Option<&EndpointFn> {
        self.core.config.endpoint_fn.as_deref()
    }

    /// Starts timing a call whose endpoint the user's extractor names (see [`Shared::begin`]).
    #[cold]
    pub(crate) fn start_with_fn<B>(
        &self,
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
    pub(crate) fn begin<B>(&self, req: &http::Request<B>, slot: Option<u8>) -> Pending {
        let proto = protocol_of(req);
        let slot = match slot {
            Some(s) => s,
            None => self.default_slot(req.extensions(), req.uri(), proto),
        };
        let (attempt, is_final) = match self.core.side {
            Side::Server => (0, true),
            Side::Client => {
                let a = req
                    .extensions()
                    .get::<IpcAttempt>()
                    .copied()
                    .unwrap_or_default();
                (a.index(), a.is_final())
            }
        };
        let (endpoint, in_flight) = self.slot(slot).enter();
        // SAFETY: the call's reference, just taken, keeps the endpoint alive.
        unsafe { endpoint.as_ref() }
            .summary
            .record(in_flight as f64);
        let shape = usize::from(method_index(req.method()))
            | usize::from(proto) << 4
            | usize::from(attempt) << 6
            | usize::from(is_final) << 8;
        Pending {
            tagged: endpoint.cast::<u8>().map_addr(|a| a | shape),
            start: self.core.clock.interval_time(),
        }
    }

    #[inline]
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
}

impl Core {
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

    #[inline]
    fn record_call(&self, key: u64, p: &Pending, status: IpcStatus, http: u16, elapsed: Duration) {
        let key = key | KEY_PRESENT;
        match self.calls.get(key) {
            Some(t) => t.record(elapsed),
            None => self.record_call_slow(key, p, status, http, elapsed),
        }
    }

    #[cold]
    fn record_call_slow(
        &self,
        key: u64,
        p: &Pending,
        status: IpcStatus,
        http: u16,
        elapsed: Duration,
    ) {
        let timer = {
            let _guard = self.lock();
            if let Some(t) = self.calls.get(key) {
                t.clone()
            } else if let Some(t) = self.calls.overflowed(key) {
                t
            } else {
                let timer = self.new_timer(p, status, http);
                self.calls.insert(key, timer.clone());
                timer
            }
        };
        timer.record(elapsed);
    }

    fn new_timer(&self, p: &Pending, status: IpcStatus, http: u16) -> PercentileTimer {
        let code = http.to_string();
        let shape = p.shape();
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
            ("ipc.endpoint", &p.endpoint().name),
            ("http.method", METHODS[shape & 0xf]),
            ("ipc.protocol", PROTOCOLS[shape >> 4 & 3]),
        ]);
        if http != 0 {
            tags.push(("http.status", &code));
        }
        if self.side == Side::Client {
            tags.push(("ipc.attempt", ATTEMPTS[shape >> 6 & 3]));
            tags.push((
                "ipc.attempt.final",
                if shape >> 8 & 1 == 1 { "true" } else { "false" },
            ));
        }
        self.registry.percentile_timer(self.call_name(), &tags)
    }
}

/// A call in progress. Finishing it records the call; dropping it unfinished records the
/// call as `cancelled`. Either way it leaves the in-flight count (releasing its reference to
/// the endpoint).
pub(crate) struct Pending {
    /// The call's reference to its endpoint, with the call's shape in the low bits (free as
    /// the endpoint is aligned to 512): method (4 bits), protocol (2), attempt (2), final (1).
    tagged: NonNull<u8>,
    start: u64,
}

/// The low bits of [`Pending::tagged`] that hold the call's shape.
const SHAPE_BITS: usize = 0x1ff;
const _: () = assert!(std::mem::align_of::<Endpoint>() > SHAPE_BITS);

// SAFETY: a `Pending` owns one counted reference to an `Endpoint` (as `EndpointRef`, which is
// `Send` and `Sync`) and a plain integer.
unsafe impl Send for Pending {}
// SAFETY: as for `Send`: `&Pending` only reads the endpoint.
unsafe impl Sync for Pending {}

impl Pending {
    #[inline]
    fn endpoint_ptr(&self) -> NonNull<Endpoint> {
        self.tagged
            .map_addr(|a| {
                // The endpoint's address is not 0: neither is this.
                std::num::NonZeroUsize::new(a.get() & !SHAPE_BITS).unwrap_or(a)
            })
            .cast::<Endpoint>()
    }

    #[inline]
    fn endpoint(&self) -> &Endpoint {
        // SAFETY: the call's reference keeps the endpoint alive while `self` lives.
        unsafe { self.endpoint_ptr().as_ref() }
    }

    #[inline]
    fn shape(&self) -> usize {
        self.tagged.addr().get() & SHAPE_BITS
    }

    /// The request's protocol (`PROTO_*`).
    #[inline]
    pub(crate) fn proto(&self) -> u8 {
        (self.shape() >> 4 & 3) as u8
    }

    /// Records the call with `status` and the response status `http_status` (0: none).
    #[inline]
    pub(crate) fn finish(self, status: IpcStatus, http_status: u16) {
        let this = std::mem::ManuallyDrop::new(self);
        this.record(status, http_status);
        // SAFETY: the call's reference, released once: `this` is not dropped.
        unsafe { release(this.endpoint_ptr()) }
    }

    pub(crate) fn side(&self) -> Side {
        self.endpoint().core.side
    }

    #[inline]
    fn record(&self, status: IpcStatus, http_status: u16) {
        let endpoint = self.endpoint();
        let core = &*endpoint.core;
        let elapsed = core.clock.interval_time().saturating_sub(self.start);
        let shape = self.shape() as u64;
        let key = u64::from(endpoint.slot)
            | (shape & 0xf) << 8
            | u64::from(status_index(status)) << 16
            | (shape >> 4 & 3) << 24
            | (shape >> 6 & 3) << 32
            | (shape >> 8 & 1) << 40
            | u64::from(http_status) << 48;
        core.record_call(
            key,
            self,
            status,
            http_status,
            Duration::from_nanos(elapsed),
        );
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.record(IpcStatus::Cancelled, 0);
        // SAFETY: the call's reference, released once (`finish` does not drop `self`).
        unsafe { release(self.endpoint_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(registry: &Registry) -> Shared {
        Shared::new(registry.clone(), Side::Server, Config::default())
    }

    fn inflight(registry: &Registry) -> DistributionSummary {
        registry.distribution_summary(
            "ipc.server.inflight",
            &[("owner", "spectator-rs"), ("ipc.endpoint", UNKNOWN)],
        )
    }

    #[test]
    fn each_start_records_the_calls_then_in_flight() {
        let registry = Registry::default();
        let shared = shared(&registry);
        let req = http::Request::new(());
        let a = shared.begin(&req, None);
        let b = shared.begin(&req, None);
        let c = shared.begin(&req, None);
        let summary = inflight(&registry);
        assert_eq!((summary.count(), summary.total_amount()), (3, 6.0)); // 1 + 2 + 3
        a.finish(IpcStatus::Success, 200);
        drop(b); // cancelled: leaves the count too
        let d = shared.begin(&req, None);
        assert_eq!((summary.count(), summary.total_amount()), (4, 8.0)); // c and d
        drop((c, d));
        let e = shared.begin(&req, None);
        assert_eq!((summary.count(), summary.total_amount()), (5, 9.0)); // e alone
        e.finish(IpcStatus::Success, 200);
    }

    #[test]
    fn a_call_is_16_bytes() {
        // What keeps the future of a small inner service within the moves done inline.
        assert_eq!(std::mem::size_of::<Option<Pending>>(), 16);
    }

    #[test]
    fn a_call_outliving_its_layer_is_recorded_then_frees_the_endpoint() {
        let registry = Registry::default();
        let shared = shared(&registry);
        let core = Arc::downgrade(&shared.core);
        let req = http::Request::new(());
        let pending = shared.begin(&req, None);
        drop(shared);
        // The endpoint (which holds the core) lives on for the call in flight.
        assert!(core.upgrade().is_some());
        pending.finish(IpcStatus::Success, 200);
        assert!(
            core.upgrade().is_none(),
            "the last reference freed the endpoint"
        );
        let calls = registry.percentile_timer(
            "ipc.server.call",
            &[
                ("owner", "spectator-rs"),
                ("ipc.result", "success"),
                ("ipc.status", "success"),
                ("ipc.endpoint", UNKNOWN),
                ("http.method", "GET"),
                ("http.status", "200"),
                ("ipc.protocol", "http_1"),
            ],
        );
        assert_eq!(calls.count(), 1);
    }
}
