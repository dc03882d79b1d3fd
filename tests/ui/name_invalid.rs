// Metric names: 2..=255 characters from `-._A-Za-z0-9~^`.
use spectator::{counted, timed};

#[timed("server request/latency")]
fn bad_chars() {}

#[counted("a")]
fn too_short() {}

#[timed("")]
fn empty() {}

#[counted("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")]
fn too_long() {}

fn main() {}
