//! Every conformance vector replayed through the spectatord output, over a real UDP socket and
//! a real unix datagram socket, to a listener that parses the lines as spectatord's
//! `parse_line` does and aggregates them per step as its meters do (counter
//! `WithDefaultStat(count)`, gauge `WithDefaultStat(gauge)`, max gauge `WithStat(max)`).
//! What that stand-in would forward to Atlas at each step must be what the reference client
//! posted: the same `expected_publishes` as the HTTP replay (tests/conformance_http.rs).

mod support;

use spectator::receiver::spectatord::SpectatordListener;
use spectator::receiver::ReceivedMeasurement;
use std::time::Duration;
use support::conformance::{assert_same, load_all, Scenario, Sent};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What spectatord would forward, as sent to Atlas: spectatord adds the infrastructure tags of
/// its own host (`nf.app`, `nf.cluster`, ...), which the client leaves to it; the scenario's
/// `nf.*` common tags stand for them here.
fn forwarded(scenario: &Scenario, m: ReceivedMeasurement) -> Sent {
    let mut tags = m.tags;
    for (k, v) in &scenario.common_tags {
        if k.starts_with("nf.") {
            tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Sent {
        tags,
        op: u8::try_from(m.op).unwrap_or(u8::MAX),
        value: m.value,
    }
}

fn replay_through(listener: &SpectatordListener, rt: &tokio::runtime::Runtime) {
    for scenario in load_all() {
        let (clock, builder) = scenario.setup();
        let registry = builder.output_location(&listener.location()).build();
        let mut lines_sent = listener.parsed_lines() as usize;
        let steps = scenario.replay(&registry, &clock, |r| {
            let report = rt.block_on(r.publish());
            assert_eq!(report.dropped, 0, "{}: {report:?}", scenario.name);
            lines_sent += report.sent;
            assert!(
                listener.wait_for_lines(lines_sent, Duration::from_secs(10)),
                "{}: {} lines sent, {} arrived",
                scenario.name,
                lines_sent,
                listener.parsed_lines()
            );
            listener.take_step()
        });
        assert_eq!(listener.parse_errors(), 0, "{}", scenario.name);
        assert_eq!(steps.len(), scenario.expected.len(), "{}", scenario.name);
        for (i, (step, expected)) in steps.into_iter().zip(&scenario.expected).enumerate() {
            let sent: Vec<Sent> = step.into_iter().map(|m| forwarded(&scenario, m)).collect();
            assert_same(&format!("{} step #{i}", scenario.name), &sent, expected);
        }
    }
    assert!(listener.datagram_sizes().iter().all(|&n| n <= 60_000));
}

#[test]
fn conformance_vectors_over_udp() {
    let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
    assert!(listener.location().starts_with("udp://127.0.0.1:"));
    replay_through(&listener, &runtime());
}

#[cfg(unix)]
#[test]
fn conformance_vectors_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("spectator-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = SpectatordListener::bind_unix(dir.join("spectatord.unix")).unwrap();
    assert!(listener.location().starts_with("unix:///"));
    replay_through(&listener, &runtime());
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}
