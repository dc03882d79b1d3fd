//! Procedural macros for `spectator`; use them through the `spectator` crate's re-exports.
