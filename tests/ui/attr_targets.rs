// What the attributes cannot be put on.
use spectator::{counted, timed};

#[timed]
const fn constant() -> u32 {
    1
}

#[counted]
extern "C" fn exported() {}

#[timed]
struct NotAFunction;

trait Service {
    #[counted]
    fn no_body(&self);
}

fn main() {}
