//! The meter kinds a call site can hold.

use crate::validate::Meter;

/// The meter types `metrics!` declares, by the type name users write (also the name of the
/// type under `spectator::`).
///
/// This mirrors the runtime's list of kinds a call site can hold (the types implementing
/// `spectator::__private::SiteMeter`). A kind added there is added here by one entry; nothing
/// else in this crate names a kind, except that `#[timed]`/`time!` pick `Timer` or
/// `PercentileTimer` and `#[counted]` picks `Counter`.
pub const METER_TYPES: &[&str] = &[
    "Counter",
    "Timer",
    "DistributionSummary",
    "Gauge",
    "MaxGauge",
    "PercentileTimer",
    "PercentileDistributionSummary",
    "MonotonicCounter",
    "AgeGauge",
    "LongTaskTimer",
];

/// The kind `#[timed]` and `time!` record into: `PercentileTimer` with `percentiles`,
/// `LongTaskTimer` with `long_task`, else `Timer`.
pub fn timer(meter: &Meter) -> &'static str {
    if meter.long_task {
        "LongTaskTimer"
    } else if meter.percentiles {
        "PercentileTimer"
    } else {
        "Timer"
    }
}

/// The kind named `name`, as the `'static` entry of [`METER_TYPES`].
pub fn lookup(name: &str) -> Option<&'static str> {
    METER_TYPES.iter().copied().find(|k| *k == name)
}

/// The kinds as a message lists them: `` `Counter`, `Timer`, ... ``.
pub fn listed() -> String {
    let names: Vec<String> = METER_TYPES.iter().map(|t| format!("`{t}`")).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_the_attributes_pick_are_listed() {
        for kind in ["Counter", "Timer", "PercentileTimer", "LongTaskTimer"] {
            assert_eq!(lookup(kind), Some(kind));
        }
        assert_eq!(lookup("Histogram"), None);
        assert!(listed().ends_with("`LongTaskTimer`"), "{}", listed());
    }
}
