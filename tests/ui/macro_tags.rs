// Tags the attributes set themselves cannot be set by hand.
use spectator::{counted, timed};

#[timed(method = "other")]
fn default_form_sets_method() {}

#[counted(module = "other")]
fn default_form_sets_module() {}

#[timed("server.latency", result = "ok")]
fn result_fn() -> Result<(), ()> {
    Ok(())
}

#[counted("server.calls", result = "ok")]
async fn async_fn() {}

fn main() {}
