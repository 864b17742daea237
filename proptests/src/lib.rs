//! walrus-proptests (under construction).
