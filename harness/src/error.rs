//! The harness's one error type.

use std::io;

use walrus_wal::LogStore;

use crate::config::ConfigError;
use crate::payload::VerifyError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A store call failed.
    #[error("{store}: {source}")]
    Store {
        store: String,
        #[source]
        source: walrus_wal::Error,
    },
    /// A store returned data other than what was appended.
    #[error("{store}: {source}")]
    Verify {
        store: String,
        #[source]
        source: VerifyError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A cold read was asked for but the page cache cannot be dropped here
    /// (not root, or `/proc/sys` read-only): the cell is skipped rather
    /// than measured hot.
    #[error("skipped: cold reads need a droppable page cache ({0})")]
    ColdReadUnavailable(String),
    #[error("{0}")]
    Other(String),
}

impl BenchError {
    pub(crate) fn store(store: &dyn LogStore, source: walrus_wal::Error) -> BenchError {
        BenchError::Store {
            store: store.name().to_string(),
            source,
        }
    }

    pub(crate) fn verify(store: &dyn LogStore, source: VerifyError) -> BenchError {
        BenchError::Verify {
            store: store.name().to_string(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> BenchError {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}
