//! A local Atlas-compatible receiver on its own: point any spectator client (this one, the
//! Python or Java ones) at it and watch what arrives, step by step. With `--spectatord` it
//! stands in for the spectatord sidecar instead: it takes protocol lines over UDP and a unix
//! datagram socket, aggregates them per step as spectatord would, and shows what spectatord
//! would forward to Atlas.
//!
//! ```sh
//! cargo run --example receiver                     # HTTP on 127.0.0.1:7101 until Ctrl-C
//! # in another terminal:
//! SPECTATOR_URI=http://127.0.0.1:7101/api/v4/update SPECTATOR_FREQUENCY=5 \
//!     cargo run --example quickstart -- --seconds 60
//!
//! cargo run --example receiver -- --spectatord --unix /tmp/spectatord.unix
//! # in another terminal, any spectatord client:
//! echo "c:server.numRequests,status=200:1" | nc -u -w0 127.0.0.1 1234
//! SPECTATOR_OUTPUT_LOCATION=udp python3 app.py     # spectator-py 1.x
//! ```
//!
//! Options: `--port N` (HTTP port, default 7101; 0 picks a free one), `--step S` (the step in
//! seconds: for HTTP the publishers' frequency, used to turn counts into rates, default
//! `SPECTATOR_FREQUENCY` or 5; for spectatord the aggregation step, default 1), `--seconds N`
//! (stop after N seconds instead of at Ctrl-C), `--strict` (also reject names, keys and values
//! that break Atlas's length rules, as a real aggregator does).
//!
//! spectatord options: `--spectatord` (listen for spectatord lines instead of HTTP),
//! `--udp ADDR` (default `127.0.0.1:1234`), `--unix PATH` (default
//! `/run/spectatord/spectatord.unix`, as spectatord; skipped with a warning when it cannot be
//! bound), `--no-unix`, `--http` (keep the HTTP receiver running beside it, in a table of its
//! own).
//!
//! It decodes and validates every POST exactly as the test suite's loopback server does (they
//! are one implementation: `spectator::receiver`), and answers 200, 202 or 400 like Atlas.

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use spectator::receiver::spectatord::SpectatordListener;
use spectator::receiver::{Aggregator, LiveTable};

struct Options {
    port: u16,
    step: Option<Duration>,
    seconds: Option<f64>,
    strict: bool,
    spectatord: bool,
    udp: String,
    unix: Option<String>,
    http: bool,
}

const USAGE: &str = "usage: cargo run --example receiver [-- --port N] [--step S] [--seconds N] \
                     [--strict] [--spectatord [--udp ADDR] [--unix PATH | --no-unix] [--http]]";

fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let deadline = options
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    if options.spectatord {
        run_spectatord(&options, deadline);
    } else {
        run_http(&options, deadline);
    }
}

fn default_http_step() -> Duration {
    std::env::var("SPECTATOR_FREQUENCY")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(seconds)
        .unwrap_or(Duration::from_secs(5))
}

fn start_http(options: &Options) -> Aggregator {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let receiver = match Aggregator::bind(addr) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("receiver: cannot listen on {addr}: {e} (try --port 0)");
            std::process::exit(1);
        }
    };
    receiver.set_strict_lengths(options.strict);
    receiver
}

fn run_http(options: &Options, deadline: Option<Instant>) {
    let step = options.step.unwrap_or_else(default_http_step);
    let receiver = start_http(options);
    let uri = receiver.uri();
    println!("receiver: listening; publish with SPECTATOR_URI={uri}");

    let mut table = LiveTable::new(step).with_title(&format!("receiver · SPECTATOR_URI={uri}"));
    table.print();
    // A step ends with the next publish, or after one and a half steps without any.
    let wait = step.mul_f64(1.5);
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
    println!("receiver: {}", table.summary());
}

fn run_spectatord(options: &Options, deadline: Option<Instant>) {
    let step = options.step.unwrap_or(Duration::from_secs(1));
    let mut listeners = Vec::new();
    match SpectatordListener::bind_udp(&options.udp) {
        Ok(l) => listeners.push(l),
        Err(e) => {
            eprintln!(
                "receiver: cannot listen on udp {}: {e} (try --udp 127.0.0.1:0)",
                options.udp
            );
            std::process::exit(1);
        }
    }
    if let Some(path) = &options.unix {
        match SpectatordListener::bind_unix(path) {
            Ok(l) => listeners.push(l),
            Err(e) => eprintln!(
                "receiver: not listening on unix {path}: {e} (choose one with --unix PATH)"
            ),
        }
    }
    let locations: Vec<String> = listeners.iter().map(SpectatordListener::location).collect();
    println!(
        "receiver: spectatord stand-in on {}; point a client at it with \
         SPECTATOR_OUTPUT_LOCATION={}",
        locations.join(" and "),
        locations[0]
    );
    let http = options.http.then(|| start_http(options));
    let http_step = options.step.unwrap_or_else(default_http_step);
    let mut http_table = http.as_ref().map(|r| {
        LiveTable::new(http_step).with_title(&format!("receiver · SPECTATOR_URI={}", r.uri()))
    });

    let mut table = LiveTable::new(step)
        .with_title(&format!("spectatord stand-in · {}", locations.join(" · ")));
    let mut next = Instant::now() + step;
    let (mut lines, mut errors) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let until = deadline.map_or(next, |d| d.min(next));
        std::thread::sleep(until.saturating_duration_since(now));
        if Instant::now() < next {
            continue;
        }
        next += step;
        let mut measurements = Vec::new();
        for l in &listeners {
            measurements.extend(l.take_step());
            // The lines themselves are not kept: memory stays flat however long it runs.
            lines += l.take_lines().len() as u64;
        }
        errors = listeners.iter().map(SpectatordListener::parse_errors).sum();
        table.push_measurements(&measurements);
        let mut screen = table.render();
        screen.push_str(&format!(
            "lines: {lines} received, {errors} skipped as malformed\n"
        ));
        if let (Some(receiver), Some(t)) = (&http, &mut http_table) {
            let requests = receiver.take_requests();
            if !requests.is_empty() {
                t.push_step(&requests);
            }
            screen.push('\n');
            screen.push_str(&t.render());
        }
        print_screen(&screen);
    }
    println!(
        "receiver: spectatord lines={lines} malformed={errors} {}",
        table.summary()
    );
    if let Some(t) = &http_table {
        println!("receiver: http {}", t.summary());
    }
}

/// Like `LiveTable::print`, for a screen of more than one table.
fn print_screen(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if stdout.is_terminal() {
        let _ = write!(stdout, "\x1b[H\x1b[2J{text}");
    } else {
        let _ = writeln!(stdout, "{text}");
    }
    let _ = stdout.flush();
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 7101,
        step: None,
        seconds: None,
        strict: false,
        spectatord: false,
        udp: "127.0.0.1:1234".to_string(),
        unix: Some("/run/spectatord/spectatord.unix".to_string()),
        http: false,
    };
    if std::env::var("SPECTATOR_FREQUENCY").is_ok_and(|v| v.trim().parse::<f64>().is_err()) {
        return Err("SPECTATOR_FREQUENCY is not a number of seconds".into());
    }
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).unwrap_or_default();
        match flag.as_str() {
            "--port" => options.port = value().parse().map_err(|_| "--port needs a port number")?,
            "--step" => {
                options.step = Some(
                    value()
                        .parse()
                        .ok()
                        .and_then(seconds)
                        .ok_or("--step needs a number of seconds")?,
                )
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
            "--spectatord" => options.spectatord = true,
            "--udp" => options.udp = value(),
            "--unix" => options.unix = Some(value()),
            "--no-unix" => options.unix = None,
            "--http" => options.http = true,
            "-h" | "--help" => {
                return Err("A local Atlas-compatible receiver and spectatord stand-in.".into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s > 0.0 && s <= 86_400.0).then(|| Duration::from_secs_f64(s))
}
