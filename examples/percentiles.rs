//! Percentiles: PercentileTimer and PercentileDistributionSummary, `percentile(p)`, and what
//! they send to Atlas.
//!
//! ```sh
//! cargo run --example percentiles
//! ```
//!
//! A percentile meter counts its records in 276 buckets laid out as Spectator's
//! PercentileBuckets (each about a third wider than the one before). `percentile(p)` reads
//! them locally; Atlas gets the bucket counts (`statistic=percentile`, `percentile=T00xx`) and
//! can compute percentiles across every instance of a service, which averages of local
//! percentiles cannot. The price is the bucket width: an estimate is within a few percent.

use std::time::Duration;

use spectator::{timed, Registry};

/// A search whose latency the macro records in a PercentileTimer (`percentiles` flag).
/// PercentileTimers cover 10 ms to 60 s: shorter records count as 10 ms, longer as 60 s.
#[timed("search.latency", percentiles)]
fn search(rng: &mut Rng) -> usize {
    std::thread::sleep(Duration::from_millis(10 + rng.below(20)));
    42
}

fn main() {
    // A registry of its own, without a URI: it records and never publishes.
    let registry = Registry::default();
    let latency = registry.percentile_timer("server.requestLatency", &[("endpoint", "search")]);
    let sizes = registry.percentile_distribution_summary("server.responseSize", &[]);

    // 20 000 requests: most are fast, some slow, a few very slow.
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let mut exact_latency = Vec::new();
    let mut exact_sizes = Vec::new();
    for _ in 0..20_000 {
        let ms = match rng.below(100) {
            0 => 1_000 + rng.below(2_000), // 1 %: 1-3 s
            1..=9 => 100 + rng.below(300), // 9 %: 100-400 ms
            _ => 20 + rng.below(40),       // 90 %: 20-60 ms
        };
        let d = Duration::from_millis(ms) + Duration::from_micros(rng.below(1_000));
        latency.record(d);
        exact_latency.push(d.as_secs_f64());
        let bytes = (200 + rng.below(800)) * (1 + rng.below(3)).pow(4);
        sizes.record(bytes as f64);
        exact_sizes.push(bytes as f64);
    }
    exact_latency.sort_by(f64::total_cmp);
    exact_sizes.sort_by(f64::total_cmp);

    println!("{} requests recorded\n", latency.count());
    println!(
        "{:>7}  {:>14}  {:>14}  {:>7}    {:>15}  {:>15}  {:>7}",
        "p", "latency (est.)", "exact", "error", "size (est.)", "exact", "error"
    );
    for p in [50.0, 90.0, 95.0, 99.0, 99.9] {
        let est_l = latency.percentile(p).as_secs_f64();
        let ex_l = exact(&exact_latency, p);
        let est_s = sizes.percentile(p);
        let ex_s = exact(&exact_sizes, p);
        println!(
            "{:>7}  {:>12.1}ms  {:>12.1}ms  {:>+6.1}%    {:>9.0} bytes  {:>9.0} bytes  {:>+6.1}%",
            format!("p{p}"),
            est_l * 1e3,
            ex_l * 1e3,
            (est_l / ex_l - 1.0) * 100.0,
            est_s,
            ex_s,
            (est_s / ex_s - 1.0) * 100.0,
        );
    }

    // The attribute form records into the global registry; look the meter up to read it.
    let mut rng = Rng(7);
    for _ in 0..50 {
        search(&mut rng);
    }
    let search_latency = spectator::global().percentile_timer("search.latency", &[]);
    println!(
        "\n#[timed(\"search.latency\", percentiles)]: {} calls, p50 {:?}, p99 {:?}",
        search_latency.count(),
        search_latency.percentile(50.0),
        search_latency.percentile(99.0)
    );

    // What a publish would send for the latency timer: its four statistics and one count per
    // bucket used.
    let ms = registry.measurements();
    let mut buckets: Vec<_> = ms
        .iter()
        .filter(|m| m.id.name() == "server.requestLatency")
        .filter(|m| m.id.tag("statistic") == Some("percentile"))
        .map(|m| (m.id.tag("percentile").unwrap_or("?").to_string(), m.value))
        .collect();
    buckets.sort_by(|a, b| a.0.cmp(&b.0));
    println!(
        "\nA publish sends server.requestLatency as count, totalTime, totalOfSquares, max and \
         {} bucket counts:",
        buckets.len()
    );
    let widest = buckets.iter().map(|b| b.1).fold(0.0, f64::max);
    for (bucket, count) in &buckets {
        let bar = "█".repeat(((count / widest) * 40.0).ceil() as usize);
        println!("  percentile={bucket}  {count:>6}  {bar}");
    }
}

/// The exact p-th percentile of sorted `values` (nearest rank).
fn exact(values: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// A small deterministic random number generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
