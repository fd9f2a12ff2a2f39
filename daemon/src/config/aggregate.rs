//! `[aggregate]`: group-by, windows, watermark and aggregate functions.

use super::checker::Checker;
use toml::Spanned;
use toml::de::DeValue;

/// The validated stateful aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {}

pub(super) fn check_aggregate(
    c: &mut Checker<'_>,
    value: Spanned<DeValue<'_>>,
) -> Option<AggregateSpec> {
    c.error(value.span(), "[aggregate] is not supported yet");
    None
}
