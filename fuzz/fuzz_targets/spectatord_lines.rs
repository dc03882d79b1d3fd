//! The spectatord line writer with arbitrary ids, common tags and values: lines that parse
//! back to sanitised names and tags, no panic. The checks live in
//! `../checks/spectatord_lines.rs`.
#![no_main]

#[path = "../checks/spectatord_lines.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|input: check::Input| {
    check::check(&input);
});
