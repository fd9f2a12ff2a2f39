//! Config errors rendered as `file:line:column: message`, with the offending line underneath.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a pipeline file, resolved from a byte span when the error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The text of that line, for the snippet.
    pub line_text: String,
    /// How many characters of the line to underline (at least 1).
    pub width: usize,
}

impl Location {
    /// Resolves a byte span of `text` into line, column and the line's text.
    pub fn from_span(text: &str, span: Range<usize>) -> Location {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let line_text = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let underline_end = end.min(line_end);
        let width = text[start..underline_end].chars().count().max(1);
        Location {
            line,
            column,
            line_text,
            width,
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// One error in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The pipeline file.
    pub file: PathBuf,
    /// Where in the file; `None` when the whole file is at fault (unreadable, say).
    pub location: Option<Location>,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it, when there is something more to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at a byte span of `text`.
    pub fn at(file: &Path, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self::located(file, Location::from_span(text, span), message)
    }

    /// An error at an already resolved location.
    pub fn located(file: &Path, location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            location: Some(location),
            message: message.into(),
            hint: None,
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            location: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:column` (or just `file`).
    pub fn position(&self) -> String {
        match &self.location {
            Some(loc) => format!("{}:{}:{}", self.file.display(), loc.line, loc.column),
            None => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: error: {}", self.position(), self.message)?;
        if let Some(loc) = &self.location {
            let gutter = loc.line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{} | {}", loc.line, loc.line_text)?;
            let pad: String = loc
                .line_text
                .chars()
                .take(loc.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{:gutter$} | {}{}", "", pad, "^".repeat(loc.width))?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// All errors found while loading one or more files (validation never stops at the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Adds all of another list.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over them.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(value: Diagnostic) -> Self {
        Diagnostics(vec![value])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_line_and_column_in_characters() {
        let text = "a = 1\nnäme = \"x\"\n";
        let span = text.find("\"x\"").unwrap_or(0)..text.find("\"x\"").unwrap_or(0) + 3;
        let loc = Location::from_span(text, span);
        assert_eq!((loc.line, loc.column, loc.width), (2, 8, 3));
        assert_eq!(loc.line_text, "näme = \"x\"");
    }

    #[test]
    fn renders_position_snippet_and_hint() {
        let text = "name = 3\n";
        let d = Diagnostic::at(Path::new("p.toml"), text, 7..8, "expected a string")
            .with_hint("quote it");
        assert_eq!(
            d.to_string(),
            "p.toml:1:8: error: expected a string\n  |\n1 | name = 3\n  |        ^\n  = hint: quote it\n"
        );
    }
}
