//! Sections chosen by a `type = "..."` key (`[source]`, `[[sink]]`), deserialized so that errors
//! keep the exact span of the offending key or value.
//!
//! serde's internally tagged enums buffer the table first and lose every span inside it, so a
//! typo would be reported at the section header instead of at the typo. Here the tag is read off
//! the spanned table by hand and the rest is deserialized straight into the chosen struct.

use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

/// A spanned error message, turned into a `Diagnostic` by the caller who knows the file.
#[derive(Debug)]
pub(super) struct SpanError {
    pub span: Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl SpanError {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        SpanError {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn from_toml(err: toml::de::Error, fallback: Range<usize>) -> Self {
        SpanError::new(err.span().unwrap_or(fallback), err.message().trim_end())
    }
}

/// A section whose `type` was read; `body` is the table without the `type` key.
pub(super) struct Tagged<'i> {
    pub kind: String,
    pub kind_span: Range<usize>,
    pub body: Spanned<DeValue<'i>>,
}

/// Reads and removes the `type` key of a section.
pub(super) fn split_type<'i>(
    section: &str,
    value: Spanned<DeValue<'i>>,
) -> Result<Tagged<'i>, SpanError> {
    let span = value.span();
    let (mut table, table_span) = match value.into_inner() {
        DeValue::Table(table) => (table, span),
        other => {
            return Err(SpanError::new(
                span,
                format!("`{section}` must be a table, found {}", other.type_str()),
            ));
        }
    };
    let Some(kind) = table.remove("type") else {
        return Err(SpanError::new(
            table_span,
            format!("missing field `type` in `{section}`"),
        ));
    };
    let kind_span = kind.span();
    let Some(kind_str) = kind.get_ref().as_str().map(str::to_string) else {
        return Err(SpanError::new(
            kind_span,
            format!(
                "invalid type: {}, expected a string for `type`",
                kind.get_ref().type_str()
            ),
        ));
    };
    Ok(Tagged {
        kind: kind_str,
        kind_span,
        body: Spanned::new(table_span, DeValue::Table(table)),
    })
}

/// Deserializes a spanned value into `T`, keeping spans in errors.
pub(super) fn deserialize<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
) -> Result<T, SpanError> {
    let span = value.span();
    T::deserialize(ValueDeserializer::from(value)).map_err(|err| SpanError::from_toml(err, span))
}

/// The error for an unknown `type`.
pub(super) fn unknown_type(section: &str, tagged: &Tagged<'_>, known: &[&str]) -> SpanError {
    let list = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    SpanError::new(
        tagged.kind_span.clone(),
        format!(
            "unknown {section} type `{}`, expected one of {list}",
            tagged.kind
        ),
    )
}

/// An array of tables (`[[sink]]`), or a single table accepted as a list of one.
pub(super) fn tables<'i>(
    section: &str,
    value: Spanned<DeValue<'i>>,
) -> Result<Vec<Spanned<DeValue<'i>>>, SpanError> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => Ok(items.into_iter().collect()),
        table @ DeValue::Table(_) => Ok(vec![Spanned::new(span, table)]),
        other => Err(SpanError::new(
            span,
            format!(
                "`{section}` must be a table or an array of tables, found {}",
                other.type_str()
            ),
        )),
    }
}
