//! Quickstart: instrument a few functions and look at what a poll reports.
//!
//! `cargo run --example quickstart`

use spectator::Registry;
use std::time::Duration;

fn main() {
    let registry = Registry::default();
    let requests = registry.counter("server.numRequests", &[("statusCode", "200")]);
    let latency = registry.percentile_timer("server.requestLatency", &[]);
    let queue = registry.gauge("server.queueSize", &[]);

    for i in 0..100u64 {
        requests.increment();
        latency.record(Duration::from_millis(5 + i % 50));
        queue.set((i % 7) as f64);
    }
    println!("p99 latency: {:?}", latency.percentile(99.0));
    for m in registry.measurements() {
        println!("{:<70} op={:<3} {}", m.id.to_string(), m.op.code(), m.value);
    }
}
