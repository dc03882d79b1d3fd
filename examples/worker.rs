//! Pre-forked workers: the parent sets up, forks, and each child starts publishing.
//!
//! ```sh
//! cargo run --example worker                     # 3 workers for 4 seconds, local receiver
//! cargo run --example worker -- --workers 4 --seconds 10
//! ```
//!
//! A process must not fork while other threads run (the child gets a copy of their memory, not
//! the threads). `spectator::global()` starts a publishing thread on first use when
//! `SPECTATOR_URI` is set, unless `SPECTATOR_DISABLE_AUTO_START_GLOBAL` is set: then the parent
//! can touch the global registry safely, and each child calls `spectator::global().start()`
//! after the fork to publish on a thread of its own.
//!
//! Two more things to keep in mind, shown below:
//! * Record nothing in the parent before forking: every child inherits a copy of what the
//!   registry holds and would publish it again.
//! * Several processes on one host can publish the same series; Atlas adds their counts up.
//!   Tag the series (here `worker=N`) when the per-process split matters.

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("worker: fork is only available on unix");
}

#[cfg(unix)]
mod unix {
    use std::time::{Duration, Instant};

    use spectator::receiver::{Aggregator, LiveTable};
    use spectator::timed;

    /// One job: a PercentileTimer shared by all workers (their counts add up in Atlas).
    #[timed("worker.jobLatency", percentiles)]
    fn job(n: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(10 + n % 40));
        n * 2
    }

    /// A child's life: start publishing, work, publish the rest, exit.
    fn child(worker: usize, seconds: f64) -> ! {
        let registry = spectator::global();
        let publisher = match registry.start() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("worker {worker}: cannot start publishing: {e}");
                std::process::exit(1);
            }
        };
        let id = worker.to_string();
        let jobs = registry.counter("worker.jobs", &[("worker", &id)]);
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let mut n = worker as u64;
        while Instant::now() < end {
            job(n);
            jobs.increment();
            n += 7;
        }
        // The final publish sends what the last step recorded.
        let report = publisher.stop();
        println!(
            "worker {worker} (pid {}): done, last publish sent {}",
            std::process::id(),
            report.sent
        );
        std::process::exit(0);
    }

    pub fn main() {
        let (workers, seconds) = match parse_args(std::env::args().skip(1)) {
            Ok(o) => o,
            Err(msg) => {
                eprintln!(
                    "{msg}\nusage: cargo run --example worker [-- --workers N] [--seconds N]"
                );
                std::process::exit(2);
            }
        };

        // Set up before any thread exists: no auto-start, and (without SPECTATOR_URI) a local
        // receiver's port, bound now and served by the parent after the fork.
        std::env::set_var("SPECTATOR_DISABLE_AUTO_START_GLOBAL", "1");
        if std::env::var_os("SPECTATOR_FREQUENCY").is_none() {
            std::env::set_var("SPECTATOR_FREQUENCY", "1");
        }
        let listener = if std::env::var("SPECTATOR_URI").is_ok_and(|u| !u.trim().is_empty()) {
            println!("SPECTATOR_URI is set: the workers publish there (no local receiver).");
            None
        } else {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver's port");
            let addr = l.local_addr().expect("local address");
            std::env::set_var("SPECTATOR_URI", format!("http://{addr}/api/v4/update"));
            Some(l)
        };

        // The parent may use the global registry: with auto-start off, no thread starts.
        let registry = spectator::global();
        let step = registry.config().frequency;

        let mut children = Vec::new();
        for worker in 0..workers {
            // SAFETY: the process is single-threaded here (nothing above starts a thread), so
            // the child is a complete copy of it.
            match unsafe { libc::fork() } {
                -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
                0 => child(worker, seconds),
                pid => children.push(pid),
            }
        }
        println!(
            "parent (pid {}): forked workers {children:?}",
            std::process::id()
        );

        // Only now start threads in the parent: the receiver, and the table.
        let receiver = listener.map(|l| Aggregator::from_listener(l).expect("start the receiver"));
        let mut table = LiveTable::new(step).with_title("worker → local receiver");
        while !children.is_empty() {
            if let Some(receiver) = &receiver {
                table.push_step(&receiver.next_requests(step.mul_f64(1.5)));
                table.print();
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
            children.retain(|&pid| {
                let mut status = 0;
                // SAFETY: waits for our own child without blocking.
                unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 }
            });
        }
        if let Some(receiver) = receiver {
            let last = receiver.next_requests(Duration::from_millis(300));
            if !last.is_empty() {
                table.push_step(&last);
                table.print();
            }
            println!("worker summary: {}", table.summary());
        }
    }

    fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(usize, f64), String> {
        let (mut workers, mut seconds) = (3usize, 4.0f64);
        while let Some(arg) = args.next() {
            let value = args.next();
            match arg.as_str() {
                "--workers" => {
                    workers = value
                        .and_then(|v| v.parse().ok())
                        .filter(|n| (1..=64).contains(n))
                        .ok_or("--workers needs a number from 1 to 64")?
                }
                "--seconds" => {
                    seconds = value
                        .and_then(|v| v.parse().ok())
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                        .ok_or("--seconds needs a number of seconds")?
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        Ok((workers, seconds))
    }
}
