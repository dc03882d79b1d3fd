//! Ids and sanitisation with arbitrary strings: no panic, and the documented results.
//! The checks live in `../checks/id_sanitize.rs`.
#![no_main]

#[path = "../checks/id_sanitize.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|input: check::Input| check::check(&input));
