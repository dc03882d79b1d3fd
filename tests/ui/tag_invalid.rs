// Tag keys: 2..=60 characters; values: 1..=120; both from `-._A-Za-z0-9~^`.
use spectator::{counted, timed};

#[timed("server.latency", k = "v")]
fn key_too_short() {}

#[counted("server.calls", "http method" = "GET")]
fn key_bad_chars() {}

#[counted("server.calls", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk" = "v")]
fn key_too_long() {}

#[timed("server.latency", endpoint = "")]
fn value_empty() {}

#[timed("server.latency", endpoint = "/users/{id}")]
fn value_bad_chars() {}

#[timed("server.latency", endpoint = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv")]
fn value_too_long() {}

fn main() {}
