//! Quickstart: a few instrumented functions, published every second, and a live view of what
//! the Atlas aggregator receives.
//!
//! ```sh
//! cargo run --example quickstart                   # 12 seconds against a local receiver
//! cargo run --example quickstart -- --seconds 60
//! SPECTATOR_URI=http://localhost:7101/api/v4/update cargo run --example quickstart
//! ```
//!
//! With no `SPECTATOR_URI`, the program starts a local Atlas-compatible receiver on 127.0.0.1
//! (`spectator::receiver`: the same decoding and validation the test suite uses) and points the
//! global registry at it. Each step it redraws a table of the series that arrived: `Add`
//! values (counts, totals) as a rate per second, `Max` values (gauges, maxima) as they are,
//! with a sparkline of the last steps. With `SPECTATOR_URI` or `SPECTATOR_OUTPUT_LOCATION` set,
//! it publishes there instead (`SPECTATOR_OUTPUT_LOCATION=udp` writes to a local spectatord, or
//! to `cargo run --example receiver -- --spectatord`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spectator::receiver::{Aggregator, LiveTable};
use spectator::{counted, timed};

// ---------------------------------------------------------------------------------------------
// The instrumented code: this is the part to copy.

spectator::metrics! {
    /// Items in each cart at checkout.
    static CART_SIZE: DistributionSummary = "shop.cartSize";
    /// Orders waiting for the warehouse.
    static BACKLOG: Gauge = "shop.backlog";
    /// The largest order of the step, in cents.
    static BIGGEST_ORDER: MaxGauge = "shop.biggestOrder";
}

/// Counts calls: `shop.pageViews{page=home}`.
#[counted("shop.pageViews", page = "home")]
fn view_home(rng: &mut Rng) {
    sleep_ms(rng.below(2));
}

/// A PercentileTimer `shop.checkout`, tagged `result=success|failure` because it returns a
/// `Result`.
#[timed("shop.checkout", percentiles)]
fn checkout(rng: &mut Rng, backlog: &mut u32) -> Result<u64, PaymentDeclined> {
    let items = 1 + rng.below(6);
    CART_SIZE.record(items as f64);
    // `time!` times a block and evaluates to its value.
    let cents = spectator::time!("shop.payment", provider = "demo", { pay(rng, items) })?;
    BIGGEST_ORDER.set(cents as f64);
    *backlog += 1;
    BACKLOG.set(f64::from(*backlog));
    Ok(cents)
}

/// The argument-less form: `method.timed{module=...,method=restock}`.
#[timed]
fn restock(backlog: &mut u32) {
    sleep_ms(3);
    *backlog = backlog.saturating_sub(4);
    BACKLOG.set(f64::from(*backlog));
}

#[derive(Debug)]
struct PaymentDeclined;

fn pay(rng: &mut Rng, items: u64) -> Result<u64, PaymentDeclined> {
    sleep_ms(4 + rng.below(25));
    if rng.below(10) == 0 {
        return Err(PaymentDeclined);
    }
    Ok(items * (199 + rng.below(2_000)))
}

/// One second of a shop's life, repeated until `stop`.
fn workload(stop: &AtomicBool) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut backlog = 0u32;
    for tick in 1u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        view_home(&mut rng);
        if rng.below(3) == 0 {
            let _ = checkout(&mut rng, &mut backlog);
        }
        if tick % 40 == 1 {
            restock(&mut backlog);
        }
        sleep_ms(5);
    }
}

// ---------------------------------------------------------------------------------------------
// Plumbing: where to publish, how long to run, and the live table.

fn main() {
    let seconds = match parse_args(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}\nusage: cargo run --example quickstart [-- --seconds N]");
            std::process::exit(2);
        }
    };
    let summary = run(Duration::from_secs_f64(seconds));
    if summary.rejected > 0 || (summary.local && summary.names.is_empty()) {
        eprintln!("quickstart: the local receiver rejected measurements or got none");
        std::process::exit(1);
    }
}

/// `--seconds N` (default 12).
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<f64, String> {
    let mut seconds = 12.0;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--seconds" => args.next(),
            a if a.starts_with("--seconds=") => Some(a["--seconds=".len()..].to_string()),
            "-h" | "--help" => return Err("Runs an instrumented demo for N seconds.".into()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        seconds = value
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
            .ok_or("--seconds needs a number of seconds, e.g. --seconds 30")?;
    }
    Ok(seconds)
}

/// What a run saw (checked by `tests/quickstart.rs`).
#[derive(Debug, Default)]
pub struct Summary {
    /// Whether it published to a local receiver (no `SPECTATOR_URI`).
    pub local: bool,
    /// Names of the series the local receiver accepted.
    pub names: BTreeSet<String>,
    /// Measurements the local receiver rejected.
    pub rejected: u64,
}

/// Runs the workload for `duration`, publishing to `SPECTATOR_URI` or to a local receiver.
pub fn run(duration: Duration) -> Summary {
    // 1. Where to publish. Without SPECTATOR_URI, bind a local receiver's port and point the
    //    global registry at it, as if the variable had been exported. The environment is set
    //    before any thread starts.
    let set = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let listener = match set("SPECTATOR_URI").or_else(|| set("SPECTATOR_OUTPUT_LOCATION")) {
        Some(location) => {
            println!("publishing to {location} (no local receiver).");
            None
        }
        _ => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .expect("cannot bind a local port for the receiver");
            let addr = listener.local_addr().expect("local address");
            std::env::set_var("SPECTATOR_URI", format!("http://{addr}/api/v4/update"));
            Some(listener)
        }
    };
    if std::env::var_os("SPECTATOR_FREQUENCY").is_none() {
        std::env::set_var("SPECTATOR_FREQUENCY", "1");
    }
    // Process and tokio runtime metrics (rust.*, tokio.*), polled at each step.
    if std::env::var_os("SPECTATOR_RUNTIME_METRICS").is_none() {
        std::env::set_var("SPECTATOR_RUNTIME_METRICS", "process,tokio");
    }

    // 2. The first use of the global registry reads the environment and starts publishing.
    //    (If SPECTATOR_DISABLE_AUTO_START_GLOBAL is set, start it here; otherwise this start()
    //    is refused because the registry already publishes.)
    let registry = spectator::global();
    let own_publisher = registry.start().ok();
    let receiver = listener.map(|l| Aggregator::from_listener(l).expect("cannot start receiver"));

    // 3. The instrumented code runs on a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || workload(&stop))
    };

    // 4. Show what arrives each step until the time is up.
    let step = registry.config().frequency;
    let config = registry.config();
    let uri = config
        .output_location
        .clone()
        .or_else(|| config.uri.clone())
        .unwrap_or_default();
    let mut table = LiveTable::new(step).with_title(&format!("quickstart → {uri}"));
    let deadline = Instant::now() + duration;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match &receiver {
            Some(receiver) => {
                let requests = receiver.next_requests(left.min(step * 2));
                if requests.is_empty() && Instant::now() >= deadline {
                    break;
                }
                table.push_step(&requests);
                table.print();
            }
            None => std::thread::sleep(left.min(Duration::from_secs(1))),
        }
    }

    // 5. Stop the workload, then the publisher: its final publish sends the last partial step.
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("workload thread panicked");
    let report = match own_publisher {
        Some(p) => Some(p.stop()),
        None => spectator::stop_global(),
    };

    let Some(receiver) = receiver else {
        match report {
            Some(r) => println!(
                "quickstart: done; the final publish sent {} measurements ({} dropped).",
                r.sent, r.dropped
            ),
            None => println!("quickstart: done; publishing was not running (see the log)."),
        }
        return Summary::default();
    };
    table.push_step(&receiver.next_requests(Duration::from_secs(2)));
    table.print();
    println!("quickstart summary: {}", table.summary());
    println!(
        "Next: `cargo run --example receiver` runs this receiver on its own; set SPECTATOR_URI \
         to publish to an Atlas aggregator instead."
    );
    Summary {
        local: true,
        names: table.names().clone(),
        rejected: table.rejected(),
    }
}

/// A small deterministic random number generator (xorshift64*), to keep the demo dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
