//! The one error type of the `LogStore` contract, shared by every store.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

/// The result of every store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a store can report. Variants carry what a user needs to act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed; `context` names the operation and the file.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// The operation and the file it was on.
        context: String,
        /// The error the OS reported.
        #[source]
        source: io::Error,
    },

    /// File content that cannot be what this store wrote.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },

    /// A file whose magic bytes are not ours.
    #[error("{file} is not a {expected} file (bad magic)")]
    BadMagic {
        /// The file.
        file: PathBuf,
        /// The kind of file it was expected to be.
        expected: &'static str,
    },

    /// A file written by a newer (or unknown) format version.
    #[error("{file} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version it carries.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },

    /// Another instance (this process or another) holds the data directory.
    #[error("data directory {0} is locked by another open instance")]
    Locked(PathBuf),

    /// The data directory is unusable (a file, unreadable, owned by another store...).
    #[error("cannot use data directory {path}: {reason}")]
    BadDirectory {
        /// The data directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// A topic name the store refuses (empty, too long, ...).
    #[error("invalid topic: {reason}")]
    InvalidTopic {
        /// What is wrong with the name.
        reason: String,
    },

    /// An instance key the store refuses.
    #[error("invalid instance key: {reason}")]
    InvalidKey {
        /// What is wrong with the key.
        reason: String,
    },

    /// An entry larger than the store can hold.
    #[error("entry of {size} bytes exceeds the maximum of {max} bytes")]
    EntryTooLarge {
        /// The entry's size in bytes.
        size: u64,
        /// The largest entry the store accepts.
        max: u64,
    },

    /// A batch the store refuses (too many entries, too many bytes).
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What is wrong with the batch.
        reason: String,
    },

    /// Any other argument a store refuses.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A previous write or fsync failed, so this instance refuses further
    /// writes: data it covered cannot be assumed durable. Reopen to recover.
    #[error("instance refuses writes after an earlier failure: {0}")]
    Failed(String),

    /// An error reported by an external store (RocksDB, sled, ...), or a
    /// state of its data the adapter cannot make sense of.
    #[error("{store} error: {source}")]
    Backend {
        /// The external store's name.
        store: &'static str,
        /// Its error, kept whole so callers can walk the source chain or
        /// downcast it (to `rocksdb::Error`, `sled::Error`, ...). An adapter's
        /// own finding is a plain message.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl Error {
    /// Wraps an `io::Error` with what was being done when it happened.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An error of the external store `store`: its own error type (which is
    /// kept as the source), or a message (`&str` or `String`) for what the
    /// adapter found wrong itself.
    pub fn backend(
        store: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error::Backend {
            store,
            source: source.into(),
        }
    }
}

/// walrus-rust's API returns `std::io::Result`, so an application ported
/// from it uses `?` in functions that return `io::Result`: this conversion
/// keeps those compiling. The kind says what the error was about (an I/O
/// error keeps its own), and the message and source chain are kept.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::Corruption { .. }
            | Error::BadMagic { .. }
            | Error::UnsupportedVersion { .. } => io::ErrorKind::InvalidData,
            Error::Locked(_) => io::ErrorKind::WouldBlock,
            Error::InvalidTopic { .. }
            | Error::InvalidKey { .. }
            | Error::EntryTooLarge { .. }
            | Error::InvalidBatch { .. }
            | Error::InvalidInput(_) => io::ErrorKind::InvalidInput,
            Error::BadDirectory { .. } | Error::Failed(_) | Error::Backend { .. } => {
                io::ErrorKind::Other
            }
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct ForeignError;

    #[test]
    fn a_backend_error_keeps_its_source_and_reads_well() {
        let err = Error::backend("rocksdb", ForeignError);
        assert_eq!(err.to_string(), "rocksdb error: disk on fire");
        let source = err.source().expect("the foreign error is the source");
        assert!(source.downcast_ref::<ForeignError>().is_some());
    }

    #[test]
    fn a_backend_message_needs_no_error_type() {
        let err = Error::backend("sled", format!("topic {:?} is missing seq {}", "t", 4));
        assert_eq!(err.to_string(), r#"sled error: topic "t" is missing seq 4"#);
    }

    #[test]
    fn io_error_conversion_keeps_the_kind_and_the_chain() {
        let err = Error::io("syncing x", io::Error::from(io::ErrorKind::StorageFull));
        let converted = io::Error::from(err);
        assert_eq!(converted.kind(), io::ErrorKind::StorageFull);
        let inner = converted.get_ref().expect("the store error is kept");
        assert!(inner.downcast_ref::<Error>().is_some());
        let locked = io::Error::from(Error::Locked("/d".into()));
        assert_eq!(locked.kind(), io::ErrorKind::WouldBlock);
    }
}
