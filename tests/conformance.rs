//! Every recorded conformance scenario, replayed in memory through `Registry::measurements`.
//! (The same scenarios over real HTTP are in tests/conformance_http.rs.)

mod support;

use support::conformance::{as_sent, assert_same, load_all};

#[test]
fn every_vector_matches_the_reference_client_in_memory() {
    let scenarios = load_all();
    for scenario in &scenarios {
        let (clock, builder) = scenario.setup();
        let registry = builder.build();
        let polls = scenario.replay(&registry, &clock, |r| r.measurements());
        assert_eq!(
            polls.len(),
            scenario.expected.len(),
            "{}: publish count",
            scenario.name
        );
        for (i, (poll, expected)) in polls.iter().zip(&scenario.expected).enumerate() {
            let sent = as_sent(&scenario.common_tags, poll);
            assert_same(&format!("{} publish #{i}", scenario.name), &sent, expected);
        }
    }
}

#[test]
fn vectors_are_an_identical_copy_of_the_shared_ones() {
    // Inside the workplace the originals sit beside the project; a fresh clone elsewhere
    // has only the copy, and then there is nothing to compare.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        let copy = support::conformance::dir().join(p.file_name().unwrap());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(&copy).unwrap_or_default(),
            "{} differs from its copy",
            p.display()
        );
    }
}
