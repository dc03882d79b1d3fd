//! Per-benchmark sample tallies, so that each bench can print its baseline beside the measured
//! path (criterion's own report has no ratios). Included by the benches with `#[path]`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{black_box, BenchmarkGroup};

/// ns/op of every sample criterion took, per benchmark.
#[derive(Default)]
pub struct Tally(RefCell<BTreeMap<String, Vec<f64>>>);

impl Tally {
    /// Notes one sample: `ops` operations took `elapsed`.
    pub fn add(&self, name: &str, elapsed: Duration, ops: u64) {
        self.0
            .borrow_mut()
            .entry(name.to_string())
            .or_default()
            .push(elapsed.as_nanos() as f64 / ops.max(1) as f64);
    }

    /// Median ns/op of a benchmark's samples.
    pub fn ns(&self, name: &str) -> f64 {
        let mut v = self.0.borrow().get(name).cloned().unwrap_or_default();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// Benchmarks `f` (one call = one op) by wall time and tallies its samples.
#[allow(dead_code)] // not every bench times by wall time
pub fn bench<R>(g: &mut BenchmarkGroup<'_, WallTime>, t: &Tally, name: &str, f: impl Fn() -> R) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            let elapsed = start.elapsed();
            t.add(name, elapsed, iters);
            elapsed
        })
    });
}
