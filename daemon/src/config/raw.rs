//! serde structs that mirror the pipeline TOML one to one. Unknown keys are rejected; values
//! that later checks need to point at keep their spans. Their `///` docs are the option reference
//! (the README's pipeline file reference is written from them).

use super::duration::HumanDuration;
use super::plan::OutputMode;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The top level of a pipeline file, without the tagged sections (`[source]`, `[[sink]]`),
/// which are taken out and read by `tagged` first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHead {
    /// Unique name; identifies the pipeline's checkpoint and state.
    pub name: Spanned<String>,
    /// `append` (default), `update` or `complete`.
    #[serde(default)]
    pub output_mode: Option<Spanned<OutputMode>>,
    /// When batches fire; absent means back to back.
    #[serde(default)]
    pub trigger: Option<Spanned<RawTrigger>>,
    /// Under the daemon: whether a failed pipeline is restarted (`on-failure`, `never`);
    /// absent means the daemon's default.
    #[serde(default)]
    pub restart: Option<super::daemon::RestartPolicy>,
    /// `[parallelism]`: how much of the machine the pipeline may use at once.
    #[serde(default)]
    pub parallelism: Option<RawParallelism>,
    // Listed so that an unknown top-level key's message names every valid key; the real
    // sections are removed from the table before this struct is read.
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    sink: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    transform: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    aggregate: Option<IgnoredAny>,
}

/// `[parallelism]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParallelism {
    /// How many of a batch's chunks this daemon works on at once (each stateless stage runs
    /// that many copies, one per chunk in flight): `"auto"` (the default) is one per core, or
    /// a number from 1.
    pub tasks_per_daemon: Spanned<RawTasks>,
}

/// `tasks_per_daemon = "auto" | 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawTasks {
    Auto,
    Count(i64),
}

impl<'de> Deserialize<'de> for RawTasks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawTasks;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""auto" or a number of tasks, such as 2"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTasks, E> {
                match v {
                    "auto" => Ok(RawTasks::Auto),
                    other => Err(E::custom(format!(
                        r#"unknown tasks_per_daemon "{other}", expected "auto" or a number such as 2"#
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawTasks, E> {
                Ok(RawTasks::Count(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `trigger = "available_now" | "once" | { processing_time = "5s" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawTrigger {
    ProcessingTime(HumanDuration),
    Once,
    AvailableNow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessingTimeTable {
    processing_time: HumanDuration,
}

impl<'de> Deserialize<'de> for RawTrigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawTrigger;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""available_now", "once" or { processing_time = "5s" }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTrigger, E> {
                match v {
                    "available_now" => Ok(RawTrigger::AvailableNow),
                    "once" => Ok(RawTrigger::Once),
                    other => Err(E::custom(format!(
                        r#"unknown trigger "{other}", expected "available_now", "once" or {{ processing_time = "5s" }}"#
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawTrigger, A::Error> {
                let table = ProcessingTimeTable::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(RawTrigger::ProcessingTime(table.processing_time))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
