//! walrus-benchmarks (under construction).
