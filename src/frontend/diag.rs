//! Gathering diagnostics for one spec file.

use std::ops::Range;

use crate::error::{Diagnostics, SourceDiagnostic};
use crate::ir::SourceFile;

/// A diagnostic at a byte range of `file`, the range clamped to the text
/// (a frontend's span may point one past the end, e.g. at EOF).
pub fn diagnostic(
    file: &SourceFile,
    span: Range<usize>,
    message: impl Into<String>,
    label: impl Into<String>,
) -> SourceDiagnostic {
    let len = file.text.len();
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    SourceDiagnostic::new(file, start, end - start, message, label)
}

/// A file a frontend reads, kept for its diagnostics.
pub fn source_file(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.to_string(),
        text: text.to_string(),
    }
}

/// Collects every problem found in one file.
pub struct Sink<'a> {
    pub file: &'a SourceFile,
    pub errors: Vec<SourceDiagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a SourceFile) -> Self {
        Sink {
            file,
            errors: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) {
        self.errors
            .push(diagnostic(self.file, span, message, label));
    }

    pub fn error_help(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = diagnostic(self.file, span, message, label).with_help(help);
        self.errors.push(d);
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(Diagnostics::new(&self.file.name, self.errors))
        }
    }
}

/// The closest of `candidates` to `word`, when close enough to be a typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let max = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (a swap of neighbours counts as one edit).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, slot) in d.iter_mut().enumerate().take(w) {
        *slot = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("stpes", ["steps", "from"]), Some("steps"));
        assert_eq!(did_you_mean("form", ["steps", "from"]), Some("from"));
        assert_eq!(did_you_mean("zzzzzz", ["steps", "from"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
