//! `weir check` and `weir run` on bad pipeline files: one clear message each, with
//! file:line:column, a non-zero exit, and nothing started.

use crate::harness::{TestResult, Weir, pipeline_file, repo_root};
use std::time::Duration;

const GOOD: &str = r#"name = "p"
output_mode = "update"
trigger = { processing_time = "5s" }

[source]
type = "rate"
rows_per_second = 10

[[sink]]
type = "console"
"#;

/// A second sink, appended to [`GOOD`] (its first line is line 11).
const KAFKA_SINK: &str = r#"[[sink]]
type = "kafka"
bootstrap_servers = "127.0.0.1:9"
topic = "out"
"#;

/// (what is wrong, file text, the first line weir must print, after the file name)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "missing key",
            GOOD.replace("name = \"p\"\n", ""),
            ":1:1: error: missing field `name`",
        ),
        (
            "wrong type",
            GOOD.replace("rows_per_second = 10", "rows_per_second = \"ten\""),
            ":7:19: error: invalid type: string \"ten\", expected u64",
        ),
        (
            "unknown key",
            GOOD.replace("rows_per_second = 10", "rows_per_secnd = 10"),
            ":7:1: error: unknown field `rows_per_secnd`, expected one of `rows_per_second`, `ramp_up_time`, `max_rows_per_batch`",
        ),
        (
            "bad duration",
            GOOD.replace("\"5s\"", "\"5 sec0nds\""),
            ":3:31: error: invalid duration \"5 sec0nds\" (unknown time unit \"nds\"",
        ),
        (
            "unknown source type",
            GOOD.replace("type = \"rate\"", "type = \"rat\""),
            ":6:8: error: unknown source type `rat`, expected one of `rate`, `rate_micro_batch`, `datagen`",
        ),
        (
            "complete mode without aggregation",
            GOOD.replace("\"update\"", "\"complete\""),
            ":2:15: error: output_mode \"complete\" needs an aggregation",
        ),
        (
            "kafka sink key column not among the rows",
            format!("{GOOD}{KAFKA_SINK}key_column = \"nope\"\n"),
            ":15:14: error: pipeline `p`, sink #2: key_column \"nope\" is not a column of the rows (they have: timestamp, value)",
        ),
        (
            "kafka sink headers column of the wrong type",
            format!("{GOOD}{KAFKA_SINK}headers_column = \"value\"\n"),
            ":15:18: error: pipeline `p`, sink #2: headers_column \"value\" must be a map or a list of {key, value} structs",
        ),
        (
            "tasks_per_daemon out of range",
            format!("{GOOD}[parallelism]\ntasks_per_daemon = 0\n"),
            ":12:20: error: tasks_per_daemon must be between 1 and 1024, not 0",
        ),
        (
            "tasks_per_daemon neither auto nor a number",
            format!("{GOOD}[parallelism]\ntasks_per_daemon = \"all\"\n"),
            ":12:20: error: unknown tasks_per_daemon \"all\", expected \"auto\" or a number such as 2",
        ),
    ]
}

#[test]
fn check_names_file_line_column_for_each_kind_of_mistake() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (what, text, expected) in cases() {
        let file = pipeline_file(dir.path(), "bad.toml", &text);
        let file_arg = file.to_string_lossy().into_owned();
        let mut weir = Weir::start(&["check", &file_arg]);
        let status = weir.wait_exit(Duration::from_secs(10));
        let stderr = weir.stderr();
        assert_eq!(
            status.code(),
            Some(1),
            "{what}: exit status; stderr:\n{stderr}"
        );
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{file_arg}{expected}")),
            "{what}: full stderr:\n{stderr}"
        );
        let errors = stderr.lines().filter(|l| l.contains(": error: ")).count();
        assert_eq!(errors, 1, "{what}: exactly one error expected:\n{stderr}");
        assert!(stderr.contains("weir check: 1 error"), "{what}: {stderr}");
    }
    Ok(())
}

#[test]
fn check_accepts_every_example_pipeline_with_its_plugins_type_checked() -> TestResult {
    let examples = repo_root().join("config/examples");
    // With the example plugins, Python and Rust, so the plugin stages are loaded and
    // type-checked too (where both languages have a plugin of one name, the Rust one, copied
    // last, is the example's; `weir check` loads only the plugins the files name).
    let folder = tempfile::tempdir()?;
    let plugins = folder.path();
    for built in [
        crate::python_plugins::python_plugins_built()?,
        crate::daemon_harness::built_plugins(),
    ] {
        for entry in std::fs::read_dir(built)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                std::fs::copy(&path, plugins.join(path.file_name().ok_or("no name")?))?;
            }
        }
    }
    let mut args = vec![
        "check".to_string(),
        "--plugins-dir".to_string(),
        plugins.to_string_lossy().into_owned(),
    ];
    // The Kafka examples need a broker to run, not to be checked.
    for folder in [examples.clone(), examples.join("kafka")] {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                args.push(path.to_string_lossy().into_owned());
            }
        }
    }
    assert!(
        args.len() > 1,
        "no examples found in {}",
        examples.display()
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut weir = Weir::start(&args);
    // Two Python components (~18 MB each) compile in about half a minute.
    let status = weir.wait_exit(Duration::from_secs(300));
    assert!(status.success(), "weir check failed:\n{}", weir.stderr());
    // Every file is reported checked, the one with a plugin stage included.
    let stdout = weir.stdout();
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains(": ok (pipeline `"))
            .count(),
        args.len() - 3
    );
    assert!(stdout.contains("socket-word-count.toml: ok"), "{stdout}");
    assert!(stdout.contains("iot-python.toml: ok"), "{stdout}");
    assert!(
        stdout.contains("iot-windowed-avg-kafka.toml: ok"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn run_with_a_bad_file_starts_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let good = pipeline_file(dir.path(), "good.toml", GOOD);
    let bad = pipeline_file(
        dir.path(),
        "bad.toml",
        &GOOD.replace("name = \"p\"", "name = \"q\"\nextra = 1"),
    );
    let state = dir.path().join("state");
    let (good, bad, state_arg) = (
        good.to_string_lossy().into_owned(),
        bad.to_string_lossy().into_owned(),
        state.to_string_lossy().into_owned(),
    );
    let mut weir = Weir::start(&["run", "--state-dir", &state_arg, &good, &bad]);
    let status = weir.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert!(
        weir.stderr()
            .contains(&format!("{bad}:2:1: error: unknown field `extra`")),
        "{}",
        weir.stderr()
    );
    assert!(
        weir.stdout().is_empty(),
        "a pipeline ran: {}",
        weir.stdout()
    );
    assert!(
        !state.exists(),
        "the state directory was created although nothing may start"
    );
    Ok(())
}

#[test]
fn duplicate_pipeline_names_across_files_are_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let a = pipeline_file(dir.path(), "a.toml", GOOD);
    let b = pipeline_file(dir.path(), "b.toml", GOOD);
    let (a, b) = (
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
    );
    let mut weir = Weir::start(&["check", &a, &b]);
    assert_eq!(weir.wait_exit(Duration::from_secs(10)).code(), Some(1));
    let stderr = weir.stderr();
    assert!(
        stderr.contains(&format!(
            "{a}:1:8: error: pipeline name `p` is also claimed by {b}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{b}:1:8: error: pipeline name `p` is also claimed by {a}"
        )),
        "{stderr}"
    );
    Ok(())
}
