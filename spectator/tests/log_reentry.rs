//! A log subscriber may record metrics into the registry whose warning it is handling: a
//! registration that warns (an id outside the Atlas character set) must not hold the
//! registry's write lock while it logs. Its own process: the warning is rate-limited per
//! process, and this test needs it to fire.

use spectator::Registry;
use std::sync::mpsc;
use std::time::Duration;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Counts each event into `registry`, as a metrics layer for logs would.
struct CountingSubscriber {
    registry: Registry,
}

impl Subscriber for CountingSubscriber {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let level = event.metadata().level().as_str();
        // A new id: it takes the registration path (and its lock) from inside the warning.
        self.registry
            .counter("log.events", &[("level", level)])
            .increment();
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_subscriber_recording_metrics_while_a_registration_warns_does_not_deadlock() {
    let registry = Registry::default();
    let (done, finished) = mpsc::channel();
    let r = registry.clone();
    std::thread::spawn(move || {
        let subscriber = CountingSubscriber {
            registry: r.clone(),
        };
        tracing::subscriber::with_default(subscriber, || {
            r.counter("bad name!", &[("k", "v w")]).increment();
        });
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the registration deadlocked with the subscriber's own registration");
    let ms = registry.measurements();
    let warned = ms
        .iter()
        .find(|m| m.id.name() == "log.events" && m.id.tag("level") == Some("WARN"));
    assert_eq!(warned.map(|m| m.value), Some(1.0), "{ms:?}");
    assert!(ms.iter().any(|m| m.id.name() == "bad name!"));
}
