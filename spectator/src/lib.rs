//! # spectator
//!
//! The Rust member of the Netflix Spectator family: meters that record with a few atomic
//! operations, and a publisher that reports them to the Atlas aggregator.

#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod id;
pub mod measurement;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use id::Id;
pub use measurement::{Measurement, Op};
pub mod publish;
#[cfg(feature = "testing")]
pub mod testing;
