//! The process-wide registry used by the macros.

use crate::registry::Registry;
use std::sync::OnceLock;

/// The process-wide registry, created on first use.
///
/// ```
/// spectator::global().counter("app.started", &[]).increment();
/// ```
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}
