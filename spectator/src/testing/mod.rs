//! Test support, behind the cargo feature `testing`: a loopback Atlas aggregator shared by the
//! publisher tests, reliability tests and local receivers.

pub mod aggregator;
