//! What differs between two versions of a pipeline, in the user's terms ("sink #1 (file)
//! settings", "transform #2 config"). Positions in the file are not part of a pipeline's
//! meaning: a version that differs only in whitespace, comments or the order of keys has no
//! changes at all.

use super::aggregate::AggregateSpec;
use super::diagnostic::Location;
use super::plan::PipelinePlan;

fn nowhere() -> Location {
    Location {
        line: 0,
        column: 0,
        line_text: String::new(),
        width: 0,
    }
}

/// The aggregation without where it was written.
fn aggregate_meaning(spec: &AggregateSpec) -> AggregateSpec {
    let mut spec = spec.clone();
    spec.location = nowhere();
    spec.idle_timeout_span = None;
    // Where the state is kept besides, not what it is.
    spec.standby = false;
    spec.standby_span = None;
    for column in &mut spec.group_by {
        column.location = nowhere();
    }
    if let Some(window) = &mut spec.window {
        window.column.location = nowhere();
    }
    for function in &mut spec.functions {
        function.location = nowhere();
        for column in &mut function.columns {
            column.location = nowhere();
        }
    }
    spec
}

/// Each difference between `old` and `new` that changes what the pipeline does; empty when
/// they mean the same.
pub fn plan_changes(old: &PipelinePlan, new: &PipelinePlan) -> Vec<String> {
    let mut changes = Vec::new();
    if old.name != new.name {
        changes.push(format!("name (`{}` → `{}`)", old.name, new.name));
    }
    if old.source != new.source {
        changes.push(if old.source.kind() == new.source.kind() {
            format!("source ({}) settings", new.source.kind())
        } else {
            format!("source ({} → {})", old.source.kind(), new.source.kind())
        });
    }
    if old.repartition != new.repartition {
        changes.push(match (&old.repartition, &new.repartition) {
            (None, Some(_)) => "repartition topic added".into(),
            (Some(_), None) => "repartition topic removed".into(),
            _ => "repartition topic".into(),
        });
    }
    if old.trigger != new.trigger {
        changes.push("trigger".into());
    }
    if old.output_mode != new.output_mode {
        changes.push("output mode".into());
    }
    if old.restart != new.restart {
        changes.push("restart policy".into());
    }
    if old.parallelism != new.parallelism {
        changes.push("parallelism".into());
    }
    let stages = old.transforms.len().max(new.transforms.len());
    for i in 0..stages {
        let n = i + 1;
        match (old.transforms.get(i), new.transforms.get(i)) {
            (Some(a), Some(b)) => {
                if a.plugin != b.plugin {
                    changes.push(format!(
                        "transform #{n} plugin (`{}` → `{}`)",
                        a.plugin, b.plugin
                    ));
                }
                if a.config != b.config {
                    changes.push(format!("transform #{n} (`{}`) config", b.plugin));
                }
                if (a.memory_limit, a.timeout) != (b.memory_limit, b.timeout) {
                    changes.push(format!("transform #{n} (`{}`) limits", b.plugin));
                }
            }
            (None, Some(b)) => changes.push(format!("transform #{n} (`{}`) added", b.plugin)),
            (Some(a), None) => changes.push(format!("transform #{n} (`{}`) removed", a.plugin)),
            (None, None) => {}
        }
    }
    match (&old.aggregate, &new.aggregate) {
        (Some(a), Some(b)) if aggregate_meaning(a) != aggregate_meaning(b) => {
            changes.push("aggregation".into());
        }
        (None, Some(_)) => changes.push("aggregation added".into()),
        (Some(_), None) => changes.push("aggregation removed".into()),
        _ => {}
    }
    let sinks = old.sinks.len().max(new.sinks.len());
    for i in 0..sinks {
        let n = i + 1;
        match (old.sinks.get(i), new.sinks.get(i)) {
            (Some(a), Some(b)) if a.kind() != b.kind() => {
                changes.push(format!("sink #{n} ({} → {})", a.kind(), b.kind()));
            }
            (Some(a), Some(b)) if a != b => {
                changes.push(format!("sink #{n} ({}) settings", b.kind()));
            }
            (None, Some(b)) => changes.push(format!("sink #{n} ({}) added", b.kind())),
            (Some(a), None) => changes.push(format!("sink #{n} ({}) removed", a.kind())),
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_pipeline;
    use std::path::Path;

    const BASE: &str = r#"
name = "p"
output_mode = "update"

[source]
type = "datagen"
rows_per_second = 10

[[source.column]]
name = "k"
type = "string"
values = ["a", "b"]

[[transform]]
plugin = "compute"
config = { multiply = 2 }

[aggregate]
group_by = ["k"]
functions = [{ fn = "count" }]

[[sink]]
type = "file"
path = "out"
format = "json"
"#;

    fn changes(new: &str) -> Vec<String> {
        let path = Path::new("/p/p.toml");
        match (parse_pipeline(path, BASE), parse_pipeline(path, new)) {
            (Ok(old), Ok(new)) => plan_changes(&old, &new),
            (old, new) => panic!("{:?} {:?}", old.err(), new.err()),
        }
    }

    #[test]
    fn whitespace_comments_and_key_order_change_nothing() {
        let edited = BASE
            .replace(
                "name = \"p\"\n",
                "# the pipeline\n\n  name   =   \"p\"   # its name\n",
            )
            .replace(
                "group_by = [\"k\"]\nfunctions = [{ fn = \"count\" }]",
                "functions = [ {fn=\"count\"} ]\n\n\ngroup_by = [\n  \"k\",\n]",
            );
        assert_ne!(edited, BASE);
        assert_eq!(changes(&edited), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_change_is_named() {
        assert_eq!(
            changes(&BASE.replace("format = \"json\"", "format = \"csv\"")),
            ["sink #1 (file) settings"]
        );
        assert_eq!(
            changes(&BASE.replace("multiply = 2", "multiply = 3")),
            ["transform #1 (`compute`) config"]
        );
        assert_eq!(
            changes(&BASE.replace(
                "name = \"p\"\n",
                "name = \"p\"\ntrigger = { processing_time = \"1s\" }\n"
            )),
            ["trigger"]
        );
        assert_eq!(
            changes(&BASE.replace("rows_per_second = 10", "rows_per_second = 20")),
            ["source (datagen) settings"]
        );
        assert_eq!(
            changes(&BASE.replace(
                "functions = [{ fn = \"count\" }]",
                "functions = [{ fn = \"count\" }, { fn = \"count\", column = \"k\" }]"
            )),
            ["aggregation"]
        );
        assert_eq!(
            changes(&format!("{BASE}\n[[sink]]\ntype = \"null\"\n")),
            ["sink #2 (null) added"]
        );
    }
}
