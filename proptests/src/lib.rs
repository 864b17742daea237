//! Property suites every `LogStore` must pass.
//!
//! [`conformance`] is the behavioural contract (ordering, batches, cursors,
//! budgets, limits, typed errors, a model-checked random op sequence), run
//! against each store by one file per store in `tests/conformance_*.rs`.
//! [`page_cache`] reads what the kernel holds for a store's files
//! (`cachestat(2)`), the evidence the `sync()` checks rest on.

pub mod conformance;
pub mod page_cache;
