// Errors in a measured body point at the user's tokens, as without the attribute.
use spectator::{counted, timed};

#[timed]
fn wrong_type() -> u32 {
    "seven"
}

#[counted("server.calls")]
fn wrong_error() -> Result<u32, std::fmt::Error> {
    let n: u32 = "7".parse()?;
    Ok(n)
}

#[timed("server.latency")]
async fn wrong_async() -> Result<u32, String> {
    Ok("seven")
}

#[timed("server.latency")]
fn wrong_sync_result() -> Result<u32, String> {
    Ok("seven")
}

fn main() {}
