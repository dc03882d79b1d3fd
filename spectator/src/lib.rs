//! # spectator
//!
//! The Rust member of the Netflix Spectator family: meters that record with a few atomic
//! operations, and a publisher that reports them to the Atlas aggregator.

#![warn(missing_docs)]

pub mod clock;
pub mod config;
mod global;
pub mod id;
mod log;
pub mod measurement;
pub mod meter;
mod publish;
mod registry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use global::global;
pub use id::Id;
pub use measurement::{Measurement, Op};
pub use meter::{
    Counter, DistributionSummary, Gauge, MaxGauge, PercentileDistributionSummary, PercentileTimer,
    Stopwatch, Timer,
};
pub use registry::{Registry, RegistryBuilder};
