//! Durations written the human way ("10s", "10 seconds", "1m 30s"), parsed by humantime.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration from the pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"10s\", \"10 seconds\" or \"1m 30s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v).map(HumanDuration).map_err(|err| {
                    E::custom(format!(
                        "invalid duration \"{v}\" ({err}); expected e.g. \"10s\", \"10 seconds\" or \"1m 30s\""
                    ))
                })
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}
