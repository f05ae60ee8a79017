//! Fault injection for crash tests: `CLEARHOUSE_FAULT=<point>` makes the process abort (not
//! unwind: no destructor, no flush runs) when it reaches that point, as `kill -9` would.
//!
//! With the variable unset, which is how every normal run goes, a point costs one cached
//! lookup. Points: `validated`, `netted`, `posting:middle`, `posting:before-commit`,
//! `posted`, `outputs:middle`.

use std::sync::OnceLock;

/// The environment variable that names the point to abort at.
pub const FAULT_ENV: &str = "CLEARHOUSE_FAULT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(FAULT_ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Aborts the process if the fault switch names `name`.
pub fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("clearhouse: fault injected at {name}: aborting");
        std::process::abort();
    }
}
