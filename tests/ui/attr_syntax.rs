// Argument syntax: unknown flags, non-string values, name position.
use spectator::{counted, timed};

#[timed("server.latency", histogram)]
fn unknown_flag() {}

#[counted("server.calls", percentiles)]
fn counted_has_no_flags() {}

#[timed("server.latency", status = 200)]
fn integer_value() {}

#[counted(status = "200", "server.calls")]
fn name_not_first() {}

#[timed("server.latency", "server.other")]
fn two_names() {}

#[timed("server.latency" status = "200")]
fn missing_comma() {}

#[timed(percentiles, percentiles)]
fn flag_twice() {}

fn main() {}
