//! The checksum of every record Walrus writes. It lives in the contract
//! crate (`walrus_store::crc`), shared with the raw-file baseline; this
//! module keeps the engine's `crate::crc::...` paths.

pub use walrus_store::crc::{crc64, Crc64Stream};
