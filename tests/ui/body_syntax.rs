// A body syn cannot parse is still expanded, as tokens: rustc reports its own syntax error at
// the user's tokens, and nothing about the attribute.
use spectator::{counted, timed};

#[timed]
fn broken() -> u32 {
    let x = ;
    5
}

#[counted("server.calls")]
fn broken_result() -> Result<u32, String> {
    Ok(1 +)
}

fn main() {
    let _ = broken();
    let _ = broken_result();
}
