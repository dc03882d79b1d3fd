// `long_task`: a long task timer, taken by #[timed] and time! alone.
use spectator::{counted, timed};

#[timed("job.run", percentiles, long_task)]
fn with_percentiles() {}

#[timed("job.run", long_task, percentiles)]
fn percentiles_after() {}

#[counted("job.run", long_task)]
fn counted_long_task() {}

#[timed("job.run", long_task, long_task)]
fn twice() {}

#[timed(long_task, method = "run")]
fn default_form_sets_method() {}

spectator::metrics! {
    static JOBS: Timer = "job.run", long_task;
}

fn main() {
    let _a = spectator::time!("job.block", long_task, percentiles, { 1 });
    let _b = spectator::time!("job.block", long_task, long_task, { 1 });
}
