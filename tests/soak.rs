//! Soak: a million distinct ids churned through expiry on a `ManualClock`. The registry's
//! size stays at one batch, and the process's resident memory stops growing after warm-up
//! (a leak of ~100 bytes per id would show as ~100 MB here).
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use spectator::{Config, ManualClock, Registry};

/// Resident set size of this process in bytes (`/proc/self/statm`, second field, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

const MB: u64 = 1 << 20;

/// Churns `total` ids through the registry in batches of `batch`: each batch is recorded,
/// polled, then left idle past the TTL and polled again, which removes it. Returns the RSS
/// after warm-up and at the end.
fn churn(total: usize, batch: usize) -> (u64, u64) {
    let ttl = Duration::from_secs(60);
    let clock = ManualClock::new(1_000_000, 0);
    let config = Config {
        meter_ttl: ttl,
        max_meters: 2 * batch,
        ..Config::default()
    };
    let registry = Registry::builder()
        .config(config)
        .clock(clock.clone())
        .build();
    let mut now = 1_000_000u64;
    let mut warm = 0;
    let mut reported = 0usize;
    let warm_up = (total / batch / 10).max(2);
    for b in 0..total / batch {
        for i in 0..batch {
            let id = (b * batch + i).to_string();
            registry
                .counter("soak.requests", &[("id", &id)])
                .increment();
        }
        assert_eq!(registry.len(), batch, "batch {b}");
        reported += registry.measurements().len();
        now += ttl.as_millis() as u64 + 1;
        clock.set_wall_time(now);
        registry.measurements();
        assert_eq!(registry.len(), 0, "batch {b}: expired meters stayed");
        if b + 1 == warm_up {
            warm = rss_bytes();
        }
    }
    // Every id was reported once, none was refused (max_meters is never reached).
    assert_eq!(reported, total / batch * batch);
    (warm, rss_bytes())
}

fn check(total: usize, batch: usize) {
    let started = Instant::now();
    let (warm, end) = churn(total, batch);
    println!(
        "{total} ids in batches of {batch}: RSS {} MB after warm-up, {} MB at the end, {:?}",
        warm / MB,
        end / MB,
        started.elapsed()
    );
    // Allocator noise only: far less than what the ids churned through would take.
    assert!(
        end <= warm + 16 * MB,
        "RSS grew from {} MB to {} MB",
        warm / MB,
        end / MB
    );
}

/// A million ids in batches of 10 000: about 40 s of CPU in a debug build; a leak of the
/// ~200 bytes a meter takes would add 200 MB.
#[test]
fn a_million_ids_through_expiry_stay_bounded() {
    check(1_000_000, 10_000);
}
