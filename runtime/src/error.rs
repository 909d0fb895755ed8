//! Error type of the runtime: every bad bundle, graph or input maps to one of these.

use thiserror::Error;

/// Result alias used throughout the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to name the culprit.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading, mapping or writing a file failed. The OS error is part of the message (not
    /// a separate `source()`), so every printer shows it once.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// The bundle bytes are malformed, truncated, corrupted or inconsistent.
    #[error("invalid bundle: {0}")]
    Bundle(String),
    /// The graph is inconsistent (bad tensor index, shape mismatch, bad attribute…).
    #[error("invalid graph: node {node:?}: {msg}")]
    Graph {
        /// The node (or tensor) at fault.
        node: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A caller-supplied input does not fit the model.
    #[error("bad input: {0}")]
    Input(String),
    /// The model needs something this runtime does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An image could not be decoded (the message names it and says why).
    #[error("{0}")]
    Image(String),
    /// The model needs more memory than the limit allows (see [`crate::limits`]), or the
    /// limit itself is malformed: refused before allocating.
    #[error("{0}")]
    Limit(String),
}

impl Error {
    /// Shorthand for a graph error on a named node.
    pub fn graph(node: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Graph {
            node: node.into(),
            msg: msg.into(),
        }
    }
}
