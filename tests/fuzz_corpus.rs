//! Replays each fuzz target's corpus (`fuzz/corpus/<target>/*`, committed) through the
//! target's own checks on the stable toolchain, so that what the fuzzers found stays fixed.
//! The checks are the fuzz targets' bodies, included from `fuzz/checks/`; each corpus file is
//! decoded as libfuzzer-sys decodes it (`Arbitrary::arbitrary_take_rest`), and files that do
//! not decode are skipped, as the fuzzer skips them.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};

#[path = "../fuzz/checks/encode_payload.rs"]
mod encode_payload;
#[path = "../fuzz/checks/id_sanitize.rs"]
mod id_sanitize;
#[path = "../fuzz/checks/receiver_input.rs"]
mod receiver_input;
#[path = "../fuzz/checks/spectatord_lines.rs"]
mod spectatord_lines;

/// The corpus files of `target`, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every input of `target`'s corpus that decodes; returns how many did.
fn replay<T: for<'a> Arbitrary<'a>>(target: &str, check: impl Fn(&T)) -> usize {
    let mut decoded = 0;
    for file in corpus(target) {
        let bytes = std::fs::read(&file).unwrap();
        let Ok(input) = T::arbitrary_take_rest(Unstructured::new(&bytes)) else {
            continue;
        };
        // Printed (and shown by the harness) only when the check below fails.
        println!("replaying {}", file.display());
        check(&input);
        decoded += 1;
    }
    decoded
}

#[test]
fn id_sanitize_corpus() {
    let n = replay("id_sanitize", id_sanitize::check);
    assert!(n >= 10, "only {n} inputs decoded");
}

#[test]
fn encode_payload_corpus() {
    let n = replay("encode_payload", encode_payload::check);
    assert!(n >= 10, "only {n} inputs decoded");
}

#[test]
fn spectatord_lines_corpus() {
    let exact = std::sync::atomic::AtomicUsize::new(0);
    let n = replay("spectatord_lines", |input| {
        let checked = spectatord_lines::check(input);
        exact.fetch_add(checked, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(n >= 10, "only {n} inputs decoded");
    let exact = exact.into_inner();
    println!("{n} inputs, {exact} gauges checked exactly");
    assert!(exact > 0, "no input set a plain gauge");
}

#[test]
fn receiver_input_corpus() {
    let n = replay("receiver_input", receiver_input::check);
    assert!(n >= 10, "only {n} inputs decoded");
}
