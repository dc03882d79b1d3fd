//! The state one layer shares among its services and calls: the bounded endpoint table, the
//! in-flight counts and the cache of call timers.
//!
//! A call on a warm endpoint reads two atomics and compares a few short strings to find its
//! endpoint, loads the timer map through `arc-swap` and probes it with a packed `u64` key:
//! no lock, no allocation, no registry lookup. Only a new endpoint or a new tag combination
//! takes the layer's mutex and asks the registry.

use super::status::{
    method_index, protocol_of, status_index, IpcAttempt, IpcStatus, ATTEMPTS, METHODS, PROTOCOLS,
    PROTO_GRPC,
};
use super::IpcEndpoint;
use crate::clock::Clock;
use crate::meter::{DistributionSummary, PercentileTimer};
use crate::registry::Registry;
use arc_swap::ArcSwap;
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

type CallMap = HashMap<u64, PercentileTimer, FxBuildHasher>;

pub(crate) struct Shared {
    registry: Registry,
    clock: Arc<dyn Clock>,
    side: Side,
    pub(crate) config: Config,
    /// `[unknown, --others--, named...]`; named slots are filled in order under `lock`.
    slots: [OnceLock<Endpoint>; SLOTS],
    named: AtomicUsize,
    calls: ArcSwap<CallMap>,
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
            calls: ArcSwap::from_pointee(CallMap::default()),
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

    /// Starts timing a call: resolves its endpoint, counts it in flight, reads the clock.
    pub(crate) fn start<B>(self: &Arc<Self>, req: http::Request<B>) -> (http::Request<B>, Pending) {
        let proto = protocol_of(&req);
        let (req, slot) = match &self.config.endpoint_fn {
            Some(f) => {
                let (parts, body) = req.into_parts();
                let slot = match f(&parts) {
                    Some(name) => self.endpoint_slot(Some(name)),
                    None => self.default_slot(&parts.extensions, &parts.uri, proto),
                };
                (http::Request::from_parts(parts, body), slot)
            }
            None => {
                let slot = self.default_slot(req.extensions(), req.uri(), proto);
                (req, slot)
            }
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
        let pending = Pending {
            shared: Arc::clone(self),
            start: self.clock.monotonic_time(),
            endpoint: slot,
            method: method_index(req.method()),
            proto,
            attempt,
            is_final,
            http_status: 0,
            armed: true,
        };
        (req, pending)
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

    fn record_call(&self, key: u64, p: &Pending, status: IpcStatus, elapsed: Duration) {
        if let Some(t) = self.calls.load().get(&key) {
            t.record(elapsed);
            return;
        }
        let timer = {
            let _guard = self.lock();
            let current = self.calls.load_full();
            match current.get(&key) {
                Some(t) => t.clone(),
                None => {
                    let timer = self.new_timer(p, status);
                    let mut map = CallMap::clone(&current);
                    map.insert(key, timer.clone());
                    self.calls.store(Arc::new(map));
                    timer
                }
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
