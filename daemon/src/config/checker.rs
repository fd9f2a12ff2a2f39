//! Collects the errors of one pipeline file, each resolved to file, line and column.

use super::diagnostic::{Diagnostic, Diagnostics};
use super::tagged::SpanError;
use std::ops::Range;
use std::path::Path;

/// Collects errors for one file.
pub(super) struct Checker<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub diagnostics: Diagnostics,
}

impl Checker<'_> {
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = Diagnostic::at(self.file, self.text, span, message);
        self.diagnostics.push(d);
    }

    pub fn error_hint(&mut self, span: Range<usize>, message: impl Into<String>, hint: &str) {
        let d = Diagnostic::at(self.file, self.text, span, message).with_hint(hint);
        self.diagnostics.push(d);
    }

    pub fn span_error(&mut self, err: SpanError) {
        let mut d = Diagnostic::at(self.file, self.text, err.span, err.message);
        d.hint = err.hint;
        self.diagnostics.push(d);
    }

    pub fn ok<T>(&mut self, result: Result<T, SpanError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.span_error(err);
                None
            }
        }
    }
}
