//! A local Atlas-compatible receiver on its own: point any spectator client (this one, the
//! Python or Java ones) at it and watch what arrives, step by step.
//!
//! ```sh
//! cargo run --example receiver                     # 127.0.0.1:7101 until Ctrl-C
//! # in another terminal:
//! SPECTATOR_URI=http://127.0.0.1:7101/api/v4/update SPECTATOR_FREQUENCY=5 \
//!     cargo run --example quickstart -- --seconds 60
//! ```
//!
//! Options: `--port N` (default 7101; 0 picks a free one), `--step S` (the publishers'
//! frequency in seconds, used to turn counts into rates; default `SPECTATOR_FREQUENCY` or 5),
//! `--seconds N` (stop after N seconds instead of at Ctrl-C), `--strict` (also reject names,
//! keys and values that break Atlas's length rules, as a real aggregator does).
//!
//! It decodes and validates every POST exactly as the test suite's loopback server does (they
//! are one implementation: `spectator::receiver`), and answers 200, 202 or 400 like Atlas.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use spectator::receiver::{Aggregator, LiveTable};

struct Options {
    port: u16,
    step: Duration,
    seconds: Option<f64>,
    strict: bool,
}

fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!(
                "{msg}\nusage: cargo run --example receiver [-- --port N] [--step S] \
                 [--seconds N] [--strict]"
            );
            std::process::exit(2);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let receiver = match Aggregator::bind(addr) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("receiver: cannot listen on {addr}: {e} (try --port 0)");
            std::process::exit(1);
        }
    };
    receiver.set_strict_lengths(options.strict);
    let uri = receiver.uri();
    println!("receiver: listening; publish with SPECTATOR_URI={uri}");

    let mut table =
        LiveTable::new(options.step).with_title(&format!("receiver · SPECTATOR_URI={uri}"));
    table.print();
    let deadline = options
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    // A step ends with the next publish, or after one and a half steps without any.
    let wait = options.step.mul_f64(1.5);
    loop {
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(wait)
            }
            None => wait,
        };
        let requests = receiver.next_requests(wait);
        table.push_step(&requests);
        table.print();
    }
    println!(
        "receiver: {} requests, {} measurements, {} rejected over {} steps",
        table.requests(),
        table.measurements(),
        table.rejected(),
        table.steps()
    );
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let default_step = std::env::var("SPECTATOR_FREQUENCY")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(5.0);
    let mut options = Options {
        port: 7101,
        step: seconds(default_step).ok_or("SPECTATOR_FREQUENCY is not a number of seconds")?,
        seconds: None,
        strict: false,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).unwrap_or_default();
        match flag.as_str() {
            "--port" => options.port = value().parse().map_err(|_| "--port needs a port number")?,
            "--step" => {
                options.step = value()
                    .parse()
                    .ok()
                    .and_then(seconds)
                    .ok_or("--step needs a number of seconds")?
            }
            "--seconds" => {
                options.seconds = Some(
                    value()
                        .parse()
                        .ok()
                        .and_then(seconds)
                        .ok_or("--seconds needs a number of seconds")?
                        .as_secs_f64(),
                )
            }
            "--strict" => options.strict = true,
            "-h" | "--help" => return Err("A local Atlas-compatible receiver.".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s > 0.0 && s <= 86_400.0).then(|| Duration::from_secs_f64(s))
}
