//! Dockerfile -> strata.toml.
use super::parser::Ast;
use crate::error::{Diagnostics, SourceDiagnostic};
use crate::ir::SourceFile;

pub fn convert(
    file: &SourceFile,
    _ast: &Ast,
) -> Result<(String, Vec<SourceDiagnostic>), Diagnostics> {
    Err(Diagnostics::new(&file.name, Vec::new()))
}
