//! `[[transform]]`: wasm plugin stages between source and aggregation/sinks.
//!
//! ```toml
//! [[transform]]
//! plugin = "word_split"                       # plugins/word_split.wasm
//! config = { column = "line", output = "word" }
//! ```

use super::checker::Checker;
use super::diagnostic::Location;
use super::tagged;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

/// One validated transform stage.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    /// Plugin name: the file `<plugins dir>/<plugin>.wasm`.
    pub plugin: String,
    /// Where `plugin` is written, for load and type errors.
    pub plugin_location: Location,
    /// The plugin's `config` table, handed to its `init` as JSON.
    pub config: serde_json::Value,
}

/// `[[transform]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    /// Plugin name.
    plugin: Spanned<String>,
    /// Free-form table for the plugin.
    #[serde(default)]
    config: Option<toml::Table>,
}

pub(super) fn check_transforms(
    c: &mut Checker<'_>,
    value: Spanned<DeValue<'_>>,
) -> Option<Vec<TransformSpec>> {
    let tables = c.ok(tagged::tables("transform", value))?;
    let mut out = Vec::new();
    let mut ok = true;
    for table in tables {
        let Some(raw) = c.ok(tagged::deserialize::<RawTransform>(table)) else {
            ok = false;
            continue;
        };
        let span = raw.plugin.span();
        let plugin = raw.plugin.into_inner();
        if plugin.is_empty()
            || !plugin
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        {
            c.error_hint(
                span,
                format!("invalid plugin name \"{plugin}\""),
                "a plugin is named by its file in the plugins folder, without `.wasm`",
            );
            ok = false;
            continue;
        }
        let config = match raw.config {
            Some(table) => match serde_json::to_value(table) {
                Ok(value) => value,
                Err(err) => {
                    c.error(
                        span,
                        format!("plugin config cannot be passed on as JSON: {err}"),
                    );
                    ok = false;
                    continue;
                }
            },
            None => serde_json::Value::Object(Default::default()),
        };
        out.push(TransformSpec {
            plugin,
            plugin_location: Location::from_span(c.text, span),
            config,
        });
    }
    ok.then_some(out)
}
