//! The publish payload with arbitrary names, tags, common tags and values: the output is valid
//! JSON that the aggregator decodes back to the sanitised tags and exact values, and whose
//! measurements break none of the aggregator's character and op rules.
//! The checks live in `../checks/encode_payload.rs`.
#![no_main]

#[path = "../checks/encode_payload.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|input: check::Input| check::check(&input));
