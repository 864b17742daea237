//! LogStore adapters (under construction).
