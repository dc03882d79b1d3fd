//! Test support, behind the cargo feature `testing` (which turns on `receiver`).

/// The local Atlas-compatible receiver under the name the tests have always used; see
/// [`crate::receiver`] for the one implementation.
pub mod aggregator {
    pub use crate::receiver::{
        check_measurement, decode_payload, Aggregator, AggregatorBuilder, ReceivedMeasurement,
        ReceivedRequest, Reply, Verdict,
    };
}
