//! Property suites every `LogStore` must pass.
//!
//! [`conformance`] is the behavioural contract (ordering, batches, cursors,
//! budgets, limits, typed errors, a model-checked random op sequence), run
//! against each store by one file per store in `tests/conformance_*.rs`.

pub mod conformance;
