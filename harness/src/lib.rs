//! walrus-harness (under construction).
