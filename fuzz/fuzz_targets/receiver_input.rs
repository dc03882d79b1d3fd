//! What the local receiver parses from the network: Atlas publish bodies and spectatord
//! datagrams. The checks live in `../checks/receiver_input.rs`.
#![no_main]

#[path = "../checks/receiver_input.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|input: check::Input| check::check(&input));
