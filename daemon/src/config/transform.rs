//! `[[transform]]`: wasm plugin stages between source and aggregation/sinks.
//!
//! ```toml
//! [[transform]]
//! plugin = "word_split"                       # plugins/word_split.wasm
//! config = { column = "line", output = "word" }
//! max_memory_mb = 128                         # optional: memory limit of the instance
//! timeout = "5s"                              # optional: deadline of one call
//! ```

use super::checker::Checker;
use super::diagnostic::Location;
use super::duration::HumanDuration;
use super::tagged;
use serde::Deserialize;
use std::time::Duration;
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
    /// `max_memory_mb`, in bytes: the instance's memory limit (default: the host's, 128 MiB).
    pub memory_limit: Option<u64>,
    /// `timeout`: how long one call may run (default: the host's, 5 s).
    pub timeout: Option<Duration>,
}

/// Largest `max_memory_mb`: a 32-bit wasm memory cannot grow past 4 GiB.
const MAX_MEMORY_MB: u64 = 4096;
/// Longest `timeout`: a call that runs longer than this is stuck, whatever it does.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// `[[transform]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    /// Plugin name.
    plugin: Spanned<String>,
    /// Free-form table for the plugin.
    #[serde(default)]
    config: Option<toml::Table>,
    /// Memory limit, MiB.
    #[serde(default)]
    max_memory_mb: Option<Spanned<u64>>,
    /// Deadline per call.
    #[serde(default)]
    timeout: Option<Spanned<HumanDuration>>,
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
        let memory_limit = match raw.max_memory_mb {
            Some(mb) if !(1..=MAX_MEMORY_MB).contains(mb.get_ref()) => {
                c.error_hint(
                    mb.span(),
                    format!("max_memory_mb = {} is out of range", mb.get_ref()),
                    "a plugin's memory limit is 1 to 4096 MiB (default 128)",
                );
                ok = false;
                continue;
            }
            Some(mb) => Some(mb.into_inner() * 1024 * 1024),
            None => None,
        };
        let timeout = match raw.timeout {
            Some(t) if t.get_ref().0.is_zero() || t.get_ref().0 > MAX_TIMEOUT => {
                c.error_hint(
                    t.span(),
                    "timeout must be longer than zero and at most 1 hour",
                    "the deadline of one call into the plugin (default 5s)",
                );
                ok = false;
                continue;
            }
            Some(t) => Some(t.into_inner().0),
            None => None,
        };
        out.push(TransformSpec {
            plugin,
            plugin_location: Location::from_span(c.text, span),
            config,
            memory_limit,
            timeout,
        });
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use crate::config::parse_pipeline;
    use std::path::Path;
    use std::time::Duration;

    fn pipeline(transform: &str) -> String {
        format!(
            "name = \"p\"\n[source]\ntype = \"rate\"\n[[transform]]\n{transform}\n[[sink]]\ntype = \"null\"\n"
        )
    }

    #[test]
    fn reads_plugin_config_and_limits() {
        let text = pipeline(
            "plugin = \"word_split\"\nconfig = { column = \"line\", n = 2 }\nmax_memory_mb = 64\ntimeout = \"250ms\"",
        );
        let plan = parse_pipeline(Path::new("p.toml"), &text).map_err(|d| d.to_string());
        let t = plan.map(|p| p.transforms[0].clone());
        let t = t.as_ref().map_err(String::as_str);
        assert_eq!(t.map(|t| t.plugin.as_str()), Ok("word_split"));
        assert_eq!(
            t.map(|t| t.config.to_string()),
            Ok(r#"{"column":"line","n":2}"#.into())
        );
        assert_eq!(t.map(|t| t.memory_limit), Ok(Some(64 << 20)));
        assert_eq!(t.map(|t| t.timeout), Ok(Some(Duration::from_millis(250))));
    }

    #[test]
    fn a_plugin_name_is_a_file_name_not_a_path() {
        let err = parse_pipeline(Path::new("p.toml"), &pipeline("plugin = \"../x\""))
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("p.toml:5:10: error: invalid plugin name"),
            "{err}"
        );
    }

    #[test]
    fn limits_out_of_range_are_errors_at_their_place() {
        for (line, expected) in [
            (
                "max_memory_mb = 0",
                "p.toml:6:17: error: max_memory_mb = 0 is out of range",
            ),
            (
                "max_memory_mb = 5000",
                "p.toml:6:17: error: max_memory_mb = 5000 is out of range",
            ),
            (
                "timeout = \"0s\"",
                "p.toml:6:11: error: timeout must be longer than zero",
            ),
            (
                "timeout = \"2h\"",
                "p.toml:6:11: error: timeout must be longer than zero",
            ),
        ] {
            let text = pipeline(&format!("plugin = \"x\"\n{line}"));
            let err = parse_pipeline(Path::new("p.toml"), &text)
                .err()
                .map(|d| d.to_string())
                .unwrap_or_default();
            assert!(err.starts_with(expected), "{line}: {err}");
        }
    }
}
