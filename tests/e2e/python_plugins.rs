//! Plugins in Python, end to end: `weir plugin new` and `weir plugin build` (componentize-py,
//! installed by `scripts/setup`), then the real daemon binary running them beside the Rust
//! versions of the same plugins.

use crate::daemon_harness::{Daemon, SOON, built_plugins, counting_pipeline, find, values_written};
use crate::harness::{TestResult, Weir, pipeline_file, repo_root, weir_bin};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Building a Python component and compiling it the first time takes tens of seconds each.
pub const BUILD: Duration = Duration::from_secs(600);

pub fn weir(args: &[&str]) -> Result<String, String> {
    let out = Command::new(weir_bin())
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("weir {args:?} failed:\n{text}"))
    }
}

pub fn build(dir: &Path, out: &Path) -> Result<String, String> {
    weir(&[
        "plugin",
        "build",
        &dir.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
    ])
}

/// Every plugin under `plugins/python/` (the fixtures aside), built by `weir plugin build` (each
/// plugin's own tests included) once per test run, into `python-plugins/` in the test target
/// folder. Tests that only load them share the one build.
pub fn python_plugins_built() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-plugins");
            let _ = std::fs::remove_dir_all(&out);
            let sources = repo_root().join("plugins/python");
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&sources)
                .map_err(|e| format!("{}: {e}", sources.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|dir| dir.join("plugin.py").is_file())
                .collect();
            dirs.sort();
            for dir in dirs {
                build(&dir, &out)?;
            }
            Ok(out)
        })
        .clone()
}

/// Every row of the committed JSON files under `dir`, in file order then line order.
pub fn rows_in(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // Committed files only: a file being written has a hidden name.
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "json")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<Value>>()
        })
        .collect()
}

const CELSIUS: &str = r#"from weir_plugin import Transform, Batch, export


@export(name="celsius", version="0.1.0")
class Celsius(Transform):
    """Fahrenheit to Celsius."""

    def process(self, batch: Batch) -> Batch:
        return batch.with_column("celsius", [(f - 32) * 5 / 9 if f is not None else None
                                             for f in batch["fahrenheit"]])
"#;

#[test]
fn a_python_plugin_made_by_weir_plugin_new_builds_lists_and_converts_every_row_nulls_included()
-> TestResult {
    scaffold_then_celsius("python", "Python", ("plugin.py", CELSIUS), "test_plugin.py")
}

/// `weir plugin new celsius --lang LANG` makes a plugin that builds as it is (its own test
/// included); replaced by `code` (a Fahrenheit-to-Celsius transform) and without its test, it
/// builds, is listed, and converts every one of 1000 generated rows, nulls staying null.
pub fn scaffold_then_celsius(
    lang: &str,
    language: &str,
    (source, code): (&str, &str),
    test_file: &str,
) -> TestResult {
    let root = tempfile::tempdir()?;
    let made = weir(&[
        "plugin",
        "new",
        "celsius",
        "--lang",
        lang,
        "--dir",
        &root.path().to_string_lossy(),
    ])?;
    assert!(made.contains(&format!("{language} transform")), "{made}");
    let folder = root.path().join("celsius");
    let plugins = root.path().join("plugins");
    let built = build(&folder, &plugins)?;
    assert!(
        built.contains(&format!("({language} transform)")),
        "{built}"
    );
    std::fs::write(folder.join(source), code)?;
    std::fs::remove_file(folder.join(test_file))?;
    build(&folder, &plugins)?;
    let listed = weir(&["plugins", &plugins.to_string_lossy()])?;
    let line = listed.lines().find(|l| l.starts_with("celsius"));
    assert!(
        line.is_some_and(|l| l.contains("transform") && l.contains("Fahrenheit to Celsius.")),
        "{listed}"
    );

    let pipeline = pipeline_file(
        root.path(),
        "celsius.toml",
        r#"name = "celsius"
trigger = "available_now"

[source]
type = "datagen"
rows = 1000
rows_per_second = 1000
max_rows_per_batch = 300

[[source.column]]
name = "fahrenheit"
type = "double"
min = -40.0
max = 212.0
random = true
percent_nulls = 0.1

[[transform]]
plugin = "celsius"

[[sink]]
type = "file"
path = "out"
format = "json"
"#,
    );
    let mut run = Weir::start(&[
        "run",
        "--plugins-dir",
        &plugins.to_string_lossy(),
        "--state-dir",
        &root.path().join("state").to_string_lossy(),
        &pipeline.to_string_lossy(),
    ]);
    assert!(run.wait_exit(BUILD).success(), "{}", run.stderr());
    let rows = rows_in(&root.path().join("out"));
    assert_eq!(rows.len(), 1000);
    let mut nulls = 0;
    for row in &rows {
        match row["fahrenheit"].as_f64() {
            Some(f) => {
                // serde_json's default number parser can be one unit in the last place off, so
                // `f` may differ from the value the plugin saw by that much.
                let c = row["celsius"].as_f64().unwrap_or(f64::NAN);
                let expected = (f - 32.0) * 5.0 / 9.0;
                assert!(
                    (c - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                    "{row}"
                );
            }
            None => {
                nulls += 1;
                assert!(row["celsius"].is_null(), "{row}");
            }
        }
    }
    assert!(nulls > 50 && nulls < 150, "{nulls} nulls");
    Ok(())
}

/// The same pipeline over generated rows (nulls in every column), once with the Rust plugins
/// and once with their Python versions: `compute` (integer remainder, double product),
/// `filter`, and `weighted_avg` with the built-in `sum` beside it.
pub fn comparison_pipeline(name: &str, rows: u64) -> String {
    format!(
        r#"name = "{name}"
output_mode = "complete"
trigger = "available_now"

[source]
type = "datagen"
rows = {rows}
rows_per_second = 1000
max_rows_per_batch = 100000
seed = 7

[[source.column]]
name = "key"
type = "long"
min = 0
max = 9
random = true

[[source.column]]
name = "value"
type = "double"
min = -100.0
max = 100.0
random = true
percent_nulls = 0.1

[[source.column]]
name = "weight"
type = "double"
min = 0.0
max = 10.0
random = true
percent_nulls = 0.05

[[source.column]]
name = "n"
type = "long"
min = -1000
max = 1000
random = true
percent_nulls = 0.1

[[transform]]
plugin = "compute"
config = {{ output = "n_rem", left = "n", op = "%", right = 7 }}

[[transform]]
plugin = "compute"
config = {{ output = "vw", left = "value", op = "*", right = "weight" }}

[[transform]]
plugin = "filter"
config = {{ column = "value", op = ">=", value = -50 }}

[aggregate]
group_by = ["key"]
functions = [
  {{ plugin = "weighted_avg", columns = ["value", "weight"], as = "wavg" }},
  {{ fn = "sum", column = "n_rem" }},
  {{ fn = "sum", column = "vw" }},
  {{ fn = "count" }},
]

[[sink]]
type = "file"
path = "out/{name}"
format = "json"
"#
    )
}

#[test]
fn python_compute_filter_and_weighted_avg_give_the_rust_plugins_results_over_a_million_generated_rows()
-> TestResult {
    same_results_as_the_rust_plugins(&python_plugins_built()?, "python")
}

/// Runs the comparison pipeline over a million generated rows on the Rust plugins and on the
/// plugins in `other` (`compute`, `filter` and `weighted_avg` in another language), and checks
/// both write the same rows.
pub fn same_results_as_the_rust_plugins(other: &Path, language: &str) -> TestResult {
    let root = tempfile::tempdir()?;
    let state = root.path().join("state").to_string_lossy().into_owned();
    let mut outputs = Vec::new();
    for (name, plugins) in [("rust", built_plugins()), (language, other.to_path_buf())] {
        let file = pipeline_file(
            root.path(),
            &format!("{name}.toml"),
            &comparison_pipeline(name, 1_000_000),
        );
        let mut run = Weir::start(&[
            "run",
            "--plugins-dir",
            &plugins.to_string_lossy(),
            "--state-dir",
            &state,
            &file.to_string_lossy(),
        ]);
        assert!(run.wait_exit(BUILD).success(), "{name}: {}", run.stderr());
        outputs.push(rows_in(&root.path().join("out").join(name)));
        // The order of groups within a batch's file is not part of the result.
        let last = outputs.len() - 1;
        outputs[last].sort_by_key(|row| row.to_string());
    }
    // Ten batches, each writing all ten groups (complete mode).
    assert_eq!(outputs[0].len(), 100);
    assert_eq!(outputs[0], outputs[1]);
    // The last batch's rows: the groups' final figures, the largest counts.
    let mut counts: Vec<i64> = outputs[1]
        .iter()
        .filter_map(|r| r["count"].as_i64())
        .collect();
    counts.sort_unstable();
    let counted: i64 = counts[90..].iter().sum();
    // value >= -50 keeps three quarters of the 90 % non-null values.
    assert!(
        counted > 600_000 && counted < 750_000,
        "{counted} rows kept"
    );
    assert!(outputs[1].iter().all(|r| r["wavg"].as_f64().is_some()));
    Ok(())
}

#[test]
fn hostile_python_plugins_fail_only_their_own_pipeline_with_a_message_naming_what_they_did()
-> TestResult {
    let root = tempfile::tempdir()?;
    let plugins = root.path().join("plugins");
    build(
        &repo_root().join("plugins/python/fixtures/py_hostile"),
        &plugins,
    )?;
    // (pipeline, mode, extra keys, what its failure must say)
    let cases = [
        (
            "loops",
            "loop",
            "timeout = \"2s\"",
            "did not return within its deadline of 2s",
        ),
        ("hogs", "hog", "max_memory_mb = 96", "ran out of memory"),
        (
            "raises",
            "raise",
            "",
            "ValueError: refusing a batch of 10 rows (at plugin.py:",
        ),
        ("lies", "lies", "", "returned columns"),
        ("reads", "file", "", "file access denied"),
        ("connects", "network", "", "network access denied"),
        ("snoops", "env", "", "env access denied"),
    ];
    hostile_cases_fail_alone(root.path(), &plugins, "py_hostile", &cases)
}

/// Runs one pipeline per case (pipeline name, `mode` of the hostile plugin `plugin` in
/// `plugins`, extra keys of its stage, what its failure must say) beside a healthy pipeline on
/// the same plugin, all in one `weir run`; each case must fail with its message, alone.
pub fn hostile_cases_fail_alone(
    root: &Path,
    plugins: &Path,
    plugin: &str,
    cases: &[(&str, &str, &str, &str)],
) -> TestResult {
    let source = |rows: u64, rate: u64| {
        format!(
            "[source]\ntype = \"datagen\"\nrows = {rows}\nrows_per_second = {rate}\nmax_rows_per_batch = 10\n\n[[source.column]]\nname = \"id\"\ntype = \"long\"\n"
        )
    };
    let mut files = Vec::new();
    for (name, mode, extra, _) in cases {
        files.push(pipeline_file(
            root,
            &format!("{name}.toml"),
            &format!(
                "name = \"{name}\"\ntrigger = \"available_now\"\n{}\n[[transform]]\nplugin = \"{plugin}\"\nconfig = {{ mode = \"{mode}\" }}\n{extra}\n\n[[sink]]\ntype = \"file\"\npath = \"out/{name}\"\nformat = \"json\"\n",
                source(100, 1_000_000)
            ),
        ));
    }
    // A healthy pipeline on the same plugin that runs on: it must keep committing throughout.
    files.push(pipeline_file(
        root,
        "healthy.toml",
        &format!(
            "name = \"healthy\"\n{}\n[[transform]]\nplugin = \"{plugin}\"\n\n[[sink]]\ntype = \"file\"\npath = \"out/healthy\"\nformat = \"json\"\n",
            source(1_000_000_000, 200)
        ),
    ));
    let state = root.join("state").to_string_lossy().into_owned();
    let plugins_arg = plugins.to_string_lossy().into_owned();
    let mut args = vec!["run", "--state-dir", &state, "--plugins-dir", &plugins_arg];
    let names: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    args.extend(names.iter().map(String::as_str));
    let run = Weir::start_in(&args, Some(root));
    for (name, _, _, says) in cases {
        let needle = format!("pipeline `{name}`): plugin `{plugin}` ");
        run.wait_for(&format!("pipeline `{name}` to fail"), BUILD, |_, err| {
            err.lines()
                .any(|l| l.contains("pipeline failed") && l.contains(&needle) && l.contains(says))
        });
    }
    assert!(!run.stderr().contains("access ALLOWED"), "{}", run.stderr());
    let healthy = root.join("out/healthy");
    let before = rows_in(&healthy).len();
    run.wait_for(
        "the healthy pipeline to go on",
        Duration::from_secs(60),
        |_, _| rows_in(&healthy).len() >= before + 20,
    );
    assert!(
        !run.stderr().contains("pipeline `healthy` failed"),
        "{}",
        run.stderr()
    );
    Ok(())
}

/// A windowed weighted average through the Python `weighted_avg`, in append mode, to `out`.
fn windowed_python_average(name: &str, out: &str) -> String {
    format!(
        r#"name = "{name}"
output_mode = "append"
trigger = "available_now"

[source]
type = "datagen"
rows_per_second = 1000
rows = 300000
max_rows_per_batch = 10000
start_timestamp = 1700000000000
seed = 5

[[source.column]]
name = "time"
type = "timestamp"
expr = "now"
jitter = "20s"

[[source.column]]
name = "sensor"
type = "string"
values = ["sensor_1", "sensor_2", "sensor_3"]
random = true

[[source.column]]
name = "value"
type = "double"
min = 0.0
max = 100.0
random = true
percent_nulls = 0.05

[[source.column]]
name = "weight"
type = "double"
min = 0.0
max = 5.0
random = true

[aggregate]
group_by = ["sensor"]
window = {{ column = "time", size = "10s" }}
watermark = "5s"
functions = [{{ plugin = "weighted_avg", columns = ["value", "weight"], as = "wavg" }}, {{ fn = "count" }}]

[[sink]]
type = "file"
path = "{out}"
format = "json"
"#
    )
}

#[test]
fn a_python_aggregates_state_survives_kill_9_and_every_window_is_written_once_with_its_uninterrupted_value()
-> TestResult {
    let root = tempfile::tempdir()?;
    let plugins = root.path().join("plugins");
    build(&repo_root().join("plugins/python/weighted_avg"), &plugins)?;
    // One state folder for both pipelines: the compiled plugin is cached there once.
    let state = root.path().join("state").to_string_lossy().into_owned();
    let plugins_arg = plugins.to_string_lossy().into_owned();
    let clean = pipeline_file(
        root.path(),
        "clean.toml",
        &windowed_python_average("clean", "out/clean"),
    )
    .to_string_lossy()
    .into_owned();
    let mut run = Weir::start(&[
        "run",
        "--state-dir",
        &state,
        "--plugins-dir",
        &plugins_arg,
        &clean,
    ]);
    assert!(run.wait_exit(BUILD).success(), "{}", run.stderr());

    let crashed = pipeline_file(
        root.path(),
        "crashed.toml",
        &windowed_python_average("crashed", "out/crashed"),
    )
    .to_string_lossy()
    .into_owned();
    let crashed_out = root.path().join("out/crashed");
    let files_in = |d: &Path| std::fs::read_dir(d).map_or(0, |e| e.count());
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut kills = 0;
    loop {
        let before = files_in(&crashed_out);
        let mut run = Weir::start(&[
            "run",
            "--state-dir",
            &state,
            "--plugins-dir",
            &plugins_arg,
            &crashed,
        ]);
        if kills == 5 {
            assert!(run.wait_exit(BUILD).success(), "{}", run.stderr());
            break;
        }
        // Progress (one more output file, or the end), then a crash a few milliseconds later:
        // between batches or inside one.
        let out = crashed_out.clone();
        run.wait_for("progress", BUILD, move |_, _| files_in(&out) > before);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 40));
        if !run.is_running() {
            assert!(run.wait_exit(BUILD).success(), "{}", run.stderr());
            break;
        }
        run.kill9();
        kills += 1;
    }
    assert!(
        kills >= 3,
        "the run ended before it could be interrupted ({kills} kills)"
    );
    let key = |row: &Value| row.to_string();
    let mut clean_rows = rows_in(&root.path().join("out/clean"));
    let mut crashed_rows = rows_in(&crashed_out);
    clean_rows.sort_by_key(key);
    crashed_rows.sort_by_key(key);
    // 300 s of event time in 10 s windows, three sensors: every window once, none twice.
    assert!(clean_rows.len() >= 80, "{} windows", clean_rows.len());
    assert_eq!(crashed_rows, clean_rows);
    Ok(())
}

/// The `rejected_files` entry (a file with no running pipeline) of pipeline `name`.
fn unapplied<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["rejected_files"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
}

#[test]
fn a_python_plugins_first_compile_in_the_daemon_holds_up_only_its_own_pipeline_and_the_status_says_it_is_compiling()
-> TestResult {
    let built = python_plugins_built()?;
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline(
        "plain.toml",
        &counting_pipeline("plain", "plain", "20ms", ""),
    );
    daemon.wait_batches("plain", 1);

    // An 18 MB component the daemon has never compiled, and a pipeline that uses it.
    daemon.install_plugin(&built.join("filter.wasm"), "pyfilter");
    daemon.write_pipeline(
        "filtered.toml",
        &counting_pipeline(
            "filtered",
            "filtered",
            "20ms",
            "\n[[transform]]\nplugin = \"pyfilter\"\nconfig = { column = \"value\", op = \">=\", value = 0 }\n",
        ),
    );
    let waiting = daemon.wait_status("`filtered` waiting for pyfilter", SOON, |s| {
        unapplied(s, "filtered").is_some_and(|r| r["pending"]["kind"] == "waiting_for_plugins")
    });
    let pending = &unapplied(&waiting, "filtered").ok_or("no entry")?["pending"]["message"];
    assert!(
        pending
            .as_str()
            .is_some_and(|m| m.contains("pyfilter") && m.contains("compiling")),
        "{pending}"
    );
    assert_eq!(waiting["counts"]["waiting"], 1, "{waiting:#}");
    assert_eq!(waiting["counts"]["rejected"], 0, "{waiting:#}");
    let plugin = waiting["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "pyfilter"))
        .ok_or("pyfilter not listed")?;
    assert!(plugin["compiling_since_ms"].as_i64().is_some(), "{plugin}");
    assert!(plugin["error"].is_null(), "{plugin}");

    // Meanwhile the other pipeline goes on committing batches.
    let before = find(&waiting, "plain").ok_or("no plain")?["batches"]
        .as_u64()
        .unwrap_or(0);
    let later = daemon.wait_batches("plain", before + 5);
    assert!(
        unapplied(&later, "filtered").is_some(),
        "pyfilter compiled within a hundred milliseconds:\n{later:#}"
    );
    let text = daemon.client(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("waiting for its plugins to compile")
            && text.contains("plugins compiling: pyfilter")
            && text.contains("1 waiting for plugins to compile"),
        "{text}"
    );

    // When the compile ends the daemon plans again by itself, and the pipeline starts.
    let running = daemon.wait_status("`filtered` running", BUILD, |s| {
        find(s, "filtered").is_some_and(|p| p["batches"].as_u64().unwrap_or(0) >= 2)
    });
    assert!(unapplied(&running, "filtered").is_none(), "{running:#}");
    assert_eq!(running["counts"]["waiting"], 0, "{running:#}");
    assert_eq!(
        daemon.log_lines("compiled in").len(),
        1,
        "{}",
        daemon.log_lines("compiled in").join("\n")
    );
    // Every row it wrote passed the Python filter.
    let values = values_written(&[daemon.path("out/filtered")]);
    assert!(!values.is_empty() && values.iter().all(|v| *v >= 0));
    Ok(())
}
