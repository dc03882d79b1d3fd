//! Compile-time errors of the macros, pinned in `tests/ui/*.stderr`.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test macros_ui` and
//! review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
