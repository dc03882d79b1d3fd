//! # spectator
//!
//! The Rust member of the Netflix Spectator family: meters that record with a few atomic
//! operations, and a publisher that reports them to the Atlas aggregator.

#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod global;
pub mod id;
mod log;
pub mod measurement;
pub mod meter;
pub mod publish;
mod registry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError};
pub use global::{global, stop_global};
pub use id::Id;
pub use measurement::{Measurement, Op};
pub use meter::{
    Counter, DistributionSummary, Gauge, MaxGauge, PercentileDistributionSummary, PercentileTimer,
    Stopwatch, Timer,
};
pub use publish::{PublishReport, Publisher};
pub use registry::{Registry, RegistryBuilder};
#[cfg(feature = "testing")]
pub mod testing;
