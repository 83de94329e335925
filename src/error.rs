//! Errors and user-facing diagnostics.
//!
//! Library code returns [`Error`]. Errors about user input carry a source
//! span ([`SourceDiagnostic`]) and are gathered ([`Diagnostics`]) so that every
//! problem in a file is reported at once. Only the CLI renders them.

use std::io;
use std::path::Path;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::ir::{SourceFile, Span};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem at one place in a source file.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct SourceDiagnostic {
    pub message: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[label("{label}")]
    pub span: SourceSpan,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl SourceDiagnostic {
    pub fn new(
        file: &SourceFile,
        offset: usize,
        len: usize,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        SourceDiagnostic {
            message: message.into(),
            src: NamedSource::new(&file.name, file.text.clone()),
            span: (offset, len).into(),
            label: label.into(),
            help: None,
        }
    }

    /// A diagnostic at an IR span (needs the graph's sources).
    pub fn at(sources: &[SourceFile], span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        match sources.get(span.source) {
            Some(f) => SourceDiagnostic::new(f, span.offset, span.len, message, label),
            None => SourceDiagnostic {
                message: message.into(),
                src: NamedSource::new("<unknown>", String::new()),
                span: (0, 0).into(),
                label: label.into(),
                help: None,
            },
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one input, sorted by position.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{summary}")]
pub struct Diagnostics {
    pub summary: String,
    #[related]
    pub errors: Vec<SourceDiagnostic>,
}

impl Diagnostics {
    /// `name` is the file the errors are in.
    pub fn new(name: &str, mut errors: Vec<SourceDiagnostic>) -> Self {
        errors.sort_by_key(|e| e.span.offset());
        let n = errors.len();
        Diagnostics {
            summary: format!(
                "{name}: {n} error{}",
                if n == 1 { "" } else { "s" }
            ),
            errors,
        }
    }
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error("{what}: {source}")]
    #[diagnostic(code(strata::io))]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Diagnostics(#[from] Diagnostics),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Source(#[from] Box<SourceDiagnostic>),

    /// Stored or received data that is not what it claims to be.
    #[error("corrupt {what}: {detail}")]
    #[diagnostic(code(strata::corrupt))]
    Corrupt { what: String, detail: String },

    /// A feature the input asks for that this version cannot do yet.
    #[error("{0} is not supported yet")]
    #[diagnostic(code(strata::unsupported))]
    Unsupported(String),

    /// A step failed while building.
    #[error("step {step} failed: {message}")]
    #[diagnostic(code(strata::step))]
    Step { step: String, message: String },

    #[error("{0}")]
    Message(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub fn msg(m: impl Into<String>) -> Error {
        Error::Message(m.into())
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

impl From<SourceDiagnostic> for Error {
    fn from(d: SourceDiagnostic) -> Error {
        Error::Source(Box::new(d))
    }
}

/// Adds "what was being done" to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
    /// Shorthand: `"{verb} {path}"`.
    fn at(self, verb: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }

    fn at(self, verb: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(format!("{verb} {}", path.display()), e))
    }
}
