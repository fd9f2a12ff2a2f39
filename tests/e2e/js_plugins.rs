//! Plugins in JavaScript, end to end: `weir plugin new --lang js` and `weir plugin build`
//! (rolldown and componentize-js, installed by `scripts/setup`), then the real weir binary
//! running them beside the Rust versions of the same plugins.

use crate::daemon_harness::{
    Daemon, SOON, assert_no_gap_no_duplicate, counting_pipeline, find, values_written,
};
use crate::harness::{TestResult, repo_root};
use crate::python_plugins::{
    BUILD, build, hostile_cases_fail_alone, same_results_as_the_rust_plugins, scaffold_then_celsius,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every plugin under `plugins/js/` (the fixtures aside), built by `weir plugin build` (each
/// plugin's own tests included) once per test run, into `js-plugins/` in the test target folder.
fn js_plugins_built() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-plugins");
            let _ = std::fs::remove_dir_all(&out);
            let sources = repo_root().join("plugins/js");
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&sources)
                .map_err(|e| format!("{}: {e}", sources.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|dir| dir.join("plugin.js").is_file())
                .collect();
            dirs.sort();
            for dir in dirs {
                let built = build(&dir, &out)?;
                if !built.contains("(JavaScript ") {
                    return Err(format!("{}: {built}", dir.display()));
                }
            }
            Ok(out)
        })
        .clone()
}

const CELSIUS: &str = r#"import { Transform, exportPlugin } from "weir-plugin";

export class Celsius extends Transform {
  static description = "Fahrenheit to Celsius.";

  process(batch) {
    return batch.withColumn("celsius", batch.column("fahrenheit").map((f) => (f === null ? null : ((f - 32) * 5) / 9)));
  }
}

exportPlugin(Celsius, { name: "celsius", version: "0.1.0" });
"#;

#[test]
fn a_js_plugin_made_by_weir_plugin_new_builds_lists_and_converts_every_row_nulls_included()
-> TestResult {
    scaffold_then_celsius("js", "JavaScript", ("plugin.js", CELSIUS), "plugin.test.js")
}

#[test]
fn js_compute_filter_and_weighted_avg_give_the_rust_plugins_results_over_a_million_generated_rows()
-> TestResult {
    same_results_as_the_rust_plugins(&js_plugins_built()?, "js")
}

#[test]
fn hostile_js_plugins_fail_only_their_own_pipeline_with_a_message_naming_what_they_did()
-> TestResult {
    let root = tempfile::tempdir()?;
    let plugins = root.path().join("plugins");
    build(
        &repo_root().join("plugins/js/fixtures/js_hostile"),
        &plugins,
    )?;
    // (pipeline, mode, extra keys, what its failure must say). A component built by weir has
    // no WASI at all: `fetch` exists in the engine but its first step traps, which ends the
    // call as a crash.
    let cases = [
        (
            "loops",
            "loop",
            "timeout = \"2s\"",
            "did not return within its deadline of 2s",
        ),
        ("hogs", "hog", "max_memory_mb = 96", "ran out of memory"),
        (
            "throws",
            "throw",
            "",
            "RangeError: refusing a batch of 10 rows (at plugin.js:",
        ),
        ("lies", "lies", "", "returned columns"),
        ("reads", "file", "", "file access denied"),
        ("connects", "network", "", "crashed: wasm trap"),
        ("snoops", "env", "", "env access denied"),
    ];
    hostile_cases_fail_alone(root.path(), &plugins, "js_hostile", &cases)
}

/// The content hash of the plugin `name` that pipeline `pipeline` runs on, in a status.
fn running_sha(status: &serde_json::Value, pipeline: &str, name: &str) -> Option<String> {
    find(status, pipeline)?["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["sha256"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn a_python_plugin_replaced_by_a_js_one_keeps_running_while_the_js_one_compiles_then_swaps_in_place_with_no_row_lost_or_repeated()
-> TestResult {
    let python = crate::python_plugins::python_plugins_built()?;
    let js = js_plugins_built()?;
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    // `filter` keeping value >= 0: every row of the counting source, in either language.
    daemon.install_plugin(&python.join("filter.wasm"), "keep");
    daemon.write_pipeline(
        "kept.toml",
        &counting_pipeline(
            "kept",
            "kept",
            "20ms",
            "\n[[transform]]\nplugin = \"keep\"\nconfig = { column = \"value\", op = \">=\", value = 0 }\n",
        ),
    );
    let first = daemon.wait_status("`kept` running on the Python filter", BUILD, |s| {
        find(s, "kept").is_some_and(|p| p["batches"].as_u64().unwrap_or(0) >= 3)
    });
    let python_sha = running_sha(&first, "kept", "keep").ok_or("no plugin version")?;

    daemon.install_plugin(&js.join("filter.wasm"), "keep");
    // While the JavaScript component compiles, the Python version runs on, its new version
    // waiting.
    let waiting = daemon.wait_status("the new version waiting for its compile", SOON, |s| {
        find(s, "kept").is_some_and(|p| p["pending"]["kind"] == "waiting_for_plugins")
    });
    let before = find(&waiting, "kept").ok_or("no kept")?["batches"]
        .as_u64()
        .unwrap_or(0);
    let during = daemon.wait_batches("kept", before + 5);
    assert_eq!(
        running_sha(&during, "kept", "keep"),
        Some(python_sha.clone())
    );

    let swapped = daemon.wait_status("`kept` on the JavaScript filter", BUILD, |s| {
        running_sha(s, "kept", "keep").is_some_and(|sha| sha != python_sha)
            && find(s, "kept").is_some_and(|p| p["pending"].is_null())
    });
    assert_eq!(
        find(&swapped, "kept").ok_or("no kept")?["restarts"],
        0,
        "{swapped:#}"
    );
    let batches = find(&swapped, "kept").ok_or("no kept")?["batches"]
        .as_u64()
        .unwrap_or(0);
    daemon.wait_batches("kept", batches + 5);
    // Every batch entirely through one version or the other: the rows are 0..n, none lost,
    // none twice.
    let stop = daemon.client(&["stop", "kept"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert_no_gap_no_duplicate(&values_written(&[daemon.path("out/kept")]));
    Ok(())
}
