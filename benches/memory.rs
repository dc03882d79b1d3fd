//! Memory per meter, measured: a counting global allocator tracks the live heap bytes while
//! 10k distinct meters of one type are registered (and their handles dropped, so what is left
//! is what the registry holds), then divides by the number of meters. Includes everything a
//! meter costs: its id (name and tag strings), its per-statistic ids, the registry's map
//! entry and the meter's shared state.
//!
//! `cargo bench --bench memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 10_000;

/// Live bytes per meter after registering `N` meters with `register` and one poll (tag values
/// prepared beforehand, so their strings do not count).
fn per_meter(register: impl Fn(&spectator::Registry, &str)) -> f64 {
    let values: Vec<String> = (0..N).map(|i| format!("{i:05}")).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let r = spectator::Registry::default();
    for v in &values {
        register(&r, v);
    }
    // The first poll makes the ids each meter reports under: part of a registered meter.
    r.measurements();
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(r.len(), N);
    drop(r);
    (after - before) as f64 / N as f64
}

/// Live bytes per meter after recording into each meter from `threads` threads (a meter used
/// from several threads may hold per-thread state).
fn per_meter_after_use(
    threads: usize,
    register: impl Fn(&spectator::Registry, &str) + Sync,
) -> f64 {
    let values: Vec<String> = (0..N).map(|i| format!("{i:05}")).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let r = spectator::Registry::default();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for v in &values {
                    register(&r, v);
                }
            });
        }
    });
    r.measurements();
    let after = LIVE.load(Ordering::Relaxed);
    drop(r);
    (after - before) as f64 / N as f64
}

fn main() {
    // Registry internals that are created once (the global registry, thread locals) first.
    let warm = spectator::Registry::default();
    warm.counter("warm", &[]).increment();
    warm.percentile_timer("warm", &[("a", "b")])
        .record(std::time::Duration::from_millis(1));
    drop(warm);

    let counter = per_meter(|r, v| {
        r.counter("server.numRequests", &[("id", v)]);
    });
    let timer = per_meter(|r, v| {
        r.timer("server.requestLatency", &[("id", v)]);
    });
    let pct = per_meter(|r, v| {
        r.percentile_timer("server.requestLatency", &[("id", v)]);
    });
    let pct_used_1 = per_meter_after_use(1, |r, v| {
        r.percentile_timer("server.requestLatency", &[("id", v)])
            .record(std::time::Duration::from_millis(20));
    });
    let pct_used_2 = per_meter_after_use(2, |r, v| {
        r.percentile_timer("server.requestLatency", &[("id", v)])
            .record(std::time::Duration::from_millis(20));
    });
    println!(
        "memory per meter ({N} meters, name + 1 tag, live heap bytes incl. id and registry entry):"
    );
    println!("  counter:                              {counter:.0} B");
    println!("  timer:                                {timer:.0} B");
    println!("  percentile timer (registered):        {pct:.0} B");
    println!("  percentile timer (recorded, 1 thread):  {pct_used_1:.0} B");
    println!("  percentile timer (recorded, 2 threads): {pct_used_2:.0} B");
}
