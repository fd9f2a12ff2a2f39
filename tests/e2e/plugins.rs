//! WebAssembly plugins end to end: the real `weir` binary with real plugin components built by
//! `scripts/build-plugins` — the word-split pipeline checked against its own input, every
//! hostile or broken fixture failing only its pipeline with a message naming plugin and
//! pipeline, and `weir plugins` listing a folder.

use crate::harness::{TestResult, Weir, pipeline_file};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `$CARGO_TARGET_DIR/plugins`, where `scripts/build-plugins` puts the components.
fn plugins_dir() -> PathBuf {
    crate::daemon_harness::built_plugins()
}

fn fixtures_dir() -> PathBuf {
    plugins_dir().join("fixtures")
}

/// A datagen source of `rows` rows: `id` (the row index) and `line` (random words, some null).
fn lines_source(rows: u64) -> String {
    format!(
        r#"[source]
type = "datagen"
rows = {rows}
rows_per_second = 1000000
max_rows_per_batch = 700
seed = 7

[[source.column]]
name = "id"
type = "long"

[[source.column]]
name = "line"
type = "string"
template = "\\w \\w \\w"
percent_nulls = 0.05
"#
    )
}

fn file_sink(out: &Path) -> String {
    format!(
        "[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"json\"\n",
        out.display()
    )
}

/// Every JSON row written to the committed files of a file sink.
fn rows_in(dir: &Path) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    if !dir.exists() {
        return Ok(rows);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            rows.push(serde_json::from_str(line)?);
        }
    }
    Ok(rows)
}

fn committed_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .count()
        })
        .unwrap_or(0)
}

/// `words.toml` in `dir`: `rows` generated lines through `word_split` into a file sink at `out`.
fn words_pipeline(dir: &Path, rows: u64, out: &Path) -> PathBuf {
    pipeline_file(
        dir,
        "words.toml",
        &format!(
            "name = \"words\"\ntrigger = \"available_now\"\n{}\n[[transform]]\nplugin = \"word_split\"\nconfig = {{ column = \"line\", output = \"word\" }}\n\n{}",
            lines_source(rows),
            file_sink(out)
        ),
    )
}

/// `weir run` of `files` with the state in `state` and the plugins of `plugins`.
fn weir_run(state: &Path, plugins: &Path, files: &[&Path]) -> Weir {
    let (state, plugins) = (state.to_string_lossy(), plugins.to_string_lossy());
    let files: Vec<_> = files.iter().map(|f| f.to_string_lossy()).collect();
    let mut args = vec!["run", "--state-dir", &state, "--plugins-dir", &plugins];
    args.extend(files.iter().map(|f| f.as_ref()));
    Weir::start(&args)
}

#[test]
fn word_split_produces_the_words_of_its_input() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (lines_out, words_out) = (dir.path().join("lines"), dir.path().join("words"));
    // The same generated input twice: once as is, once through the plugin.
    let lines = pipeline_file(
        dir.path(),
        "lines.toml",
        &format!(
            "name = \"lines\"\ntrigger = \"available_now\"\n{}{}",
            lines_source(5000),
            file_sink(&lines_out)
        ),
    );
    let words = words_pipeline(dir.path(), 5000, &words_out);
    let mut weir = weir_run(&dir.path().join("state"), &plugins_dir(), &[&lines, &words]);
    let status = weir.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "weir failed:\n{}", weir.stderr());

    let mut expected: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let input = rows_in(&lines_out)?;
    assert_eq!(input.len(), 5000);
    for row in &input {
        let id = row["id"].as_i64().ok_or("id")?;
        let words = row["line"]
            .as_str()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        expected.insert(id, words);
    }
    let mut got: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in rows_in(&words_out)? {
        let id = row["id"].as_i64().ok_or("id")?;
        let word = row["word"].as_str().ok_or("word")?.to_string();
        got.entry(id).or_default().push(word);
    }
    // Rows with no words (null lines) produce no output rows.
    expected.retain(|_, words| !words.is_empty());
    assert!(expected.len() > 4000, "too few lines with words");
    assert_eq!(got, expected);
    Ok(())
}

#[test]
fn weir_run_loads_and_reports_only_the_plugins_its_files_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A folder with the plugin the pipeline names, one it does not name, and a broken file.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    for name in ["word_split", "compute"] {
        std::fs::copy(
            plugins_dir().join(format!("{name}.wasm")),
            plugins.join(format!("{name}.wasm")),
        )?;
    }
    std::fs::write(plugins.join("broken.wasm"), b"not a component")?;
    let out = dir.path().join("words");
    let words = words_pipeline(dir.path(), 100, &out);
    let mut weir = weir_run(&dir.path().join("state"), &plugins, &[&words]);
    let status = weir.wait_exit(Duration::from_secs(60));
    let stderr = weir.stderr();
    assert!(status.success(), "weir failed:\n{stderr}");
    assert!(stderr.contains("plugin word_split.wasm loaded"), "{stderr}");
    assert!(!stderr.contains("compute.wasm"), "{stderr}");
    assert!(!stderr.contains("broken.wasm"), "{stderr}");
    assert!(!rows_in(&out)?.is_empty());
    Ok(())
}

/// A pipeline `name` running fixture `plugin` (with extra `[[transform]]` keys) to `out`.
fn hostile(dir: &Path, name: &str, plugin: &str, extra: &str) -> PathBuf {
    let out = dir.join(format!("out-{name}"));
    pipeline_file(
        dir,
        &format!("{name}.toml"),
        &format!(
            "name = \"{name}\"\ntrigger = \"available_now\"\n{}\n[[transform]]\nplugin = \"{plugin}\"\n{extra}\n\n{}",
            lines_source(100),
            file_sink(&out)
        ),
    )
}

#[test]
fn hostile_plugins_fail_only_their_own_pipeline_with_a_clear_message() -> TestResult {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    for entry in std::fs::read_dir(fixtures_dir())? {
        let path = entry?.path();
        std::fs::copy(&path, plugins.join(path.file_name().ok_or("name")?))?;
    }
    std::fs::copy(
        plugins_dir().join("word_split.wasm"),
        plugins.join("word_split.wasm"),
    )?;
    // (pipeline, fixture, extra keys, what its failure must say)
    let cases = [
        (
            "loops",
            "endless_loop",
            "timeout = \"300ms\"",
            "did not return within its deadline of 300ms",
        ),
        (
            "hogs",
            "memory_hog",
            "max_memory_mb = 32",
            "ran out of memory",
        ),
        (
            "traps",
            "trap",
            "",
            "crashed: wasm trap: wasm `unreachable` instruction executed",
        ),
        (
            "refuses",
            "plugin_error",
            "",
            "failed: refusing a batch of 100 rows",
        ),
        (
            "lies",
            "wrong_schema",
            "",
            "returned a batch that does not match its declared output schema",
        ),
        (
            "reads",
            "sandbox_probe",
            "config = { target = \"file\" }",
            "file access denied",
        ),
        (
            "connects",
            "sandbox_probe",
            "config = { target = \"network\" }",
            "network access denied",
        ),
        (
            "snoops",
            "sandbox_probe",
            "config = { target = \"env\" }",
            "env access denied",
        ),
    ];
    let mut files = Vec::new();
    for (name, plugin, extra, _) in &cases {
        files.push(hostile(dir.path(), name, plugin, extra));
    }
    // A healthy pipeline that never ends: it must keep committing batches throughout.
    let healthy_out = dir.path().join("healthy");
    files.push(pipeline_file(
        dir.path(),
        "healthy.toml",
        &format!(
            "name = \"healthy\"\n{}\n[[transform]]\nplugin = \"word_split\"\n\n{}",
            lines_source(1_000_000_000)
                .replace("rows_per_second = 1000000", "rows_per_second = 2000"),
            file_sink(&healthy_out)
        ),
    ));
    let state = dir.path().join("state");
    let mut args = vec![
        "run".to_string(),
        "--state-dir".into(),
        state.to_string_lossy().into_owned(),
        "--plugins-dir".into(),
        plugins.to_string_lossy().into_owned(),
    ];
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut weir = Weir::start_in(&args, Some(dir.path()));

    for (name, plugin, _, says) in &cases {
        // The engine logs the final failure with the pipeline's name; its message names the
        // plugin, the stage and the pipeline again.
        let needle =
            format!("transform #1 (plugin `{plugin}`, pipeline `{name}`): plugin `{plugin}` ");
        weir.wait_for(
            &format!("pipeline `{name}` to fail"),
            Duration::from_secs(60),
            |_, err| {
                err.lines().any(|l| {
                    l.contains("pipeline failed") && l.contains(&needle) && l.contains(says)
                })
            },
        );
    }
    assert!(
        !weir.stderr().contains("access ALLOWED"),
        "the sandbox let a plugin out:\n{}",
        weir.stderr()
    );
    // Retried on fresh instances before giving up.
    assert!(
        weir.stderr().contains("batch failed, retrying"),
        "{}",
        weir.stderr()
    );
    // Plugin output reaches the log, tagged.
    assert!(
        weir.stderr()
            .contains("trap fixture: about to execute unreachable"),
        "{}",
        weir.stderr()
    );

    // After all of that the healthy pipeline is still committing batches.
    let before = committed_files(&healthy_out);
    let out = healthy_out.clone();
    weir.wait_for(
        "the healthy pipeline to commit more batches",
        Duration::from_secs(30),
        move |_, _| committed_files(&out) >= before + 2,
    );
    weir.signal(Signal::SIGTERM);
    let status = weir.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(1),
        "failed pipelines make the exit status 1"
    );

    // Failed batches committed nothing; the healthy output is whole.
    for (name, ..) in &cases {
        assert_eq!(
            committed_files(&dir.path().join(format!("out-{name}"))),
            0,
            "{name}"
        );
    }
    let healthy = rows_in(&healthy_out)?;
    assert!(!healthy.is_empty());
    assert!(
        healthy
            .iter()
            .all(|r| r["word"].as_str().is_some_and(|w| !w.is_empty()))
    );
    assert!(
        !weir.stderr().contains("pipeline `healthy` failed"),
        "{}",
        weir.stderr()
    );
    Ok(())
}

/// Runs `weir check` on one pipeline naming `plugin`, with `plugins` as the plugins folder.
fn check_with(plugins: &Path, plugin: &str) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            "name = \"broken-{}\"\n{}\n[[transform]]\nplugin = \"{plugin}\"\n\n[[sink]]\ntype = \"null\"\n",
            plugin.replace('_', "-"),
            lines_source(10)
        ),
    );
    let output = Command::new(crate::harness::weir_bin())
        .args(["check", "--plugins-dir"])
        .arg(plugins)
        .arg(&file)
        .env("WEIR_STATE_DIR", dir.path().join("state"))
        .env_remove("WEIR_LOG")
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn broken_plugins_are_refused_at_load_naming_plugin_and_pipeline() -> TestResult {
    let fixtures = fixtures_dir();
    let cases = [
        (
            "corrupt",
            "corrupt.wasm is not a valid WebAssembly component",
        ),
        (
            "core_module",
            "core_module.wasm is a core WebAssembly module, not a component",
        ),
        (
            "wrong_contract",
            "wrong_contract.wasm was built for plugin contract 2.0.0, but this weir speaks contract 1.2.0",
        ),
        ("no_such_plugin", "plugin `no_such_plugin` not found"),
    ];
    for (plugin, says) in cases {
        let (ok, stderr) = check_with(&fixtures, plugin)?;
        assert!(!ok, "{plugin}: check passed");
        let pipeline = format!("pipeline `broken-{}`", plugin.replace('_', "-"));
        assert!(
            stderr.contains(&pipeline) && stderr.contains(says) && stderr.contains("p.toml:"),
            "{plugin}: expected {pipeline} and {says:?} in:\n{stderr}"
        );
    }
    // An aggregate named as a transform, and a plugin that rejects its input schema.
    let (ok, stderr) = check_with(&plugins_dir(), "top_k")?;
    assert!(
        !ok && stderr.contains("plugin `top_k` is a aggregate plugin"),
        "{stderr}"
    );
    let (ok, stderr) = check_with(&plugins_dir(), "filter")?;
    assert!(
        !ok && stderr.contains("plugin `filter` rejected its config"),
        "{stderr}"
    );
    let (ok, stderr) = check_with(&plugins_dir(), "word_split")?;
    assert!(ok, "{stderr}");
    Ok(())
}

#[test]
fn weir_plugins_lists_a_folder_with_load_errors() -> TestResult {
    let state = tempfile::tempdir()?;
    let run = |dir: &Path| {
        Command::new(crate::harness::weir_bin())
            .arg("plugins")
            .arg(dir)
            .env("WEIR_STATE_DIR", state.path())
            .env_remove("WEIR_LOG")
            .output()
    };
    let output = run(&plugins_dir())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for (name, kind) in [
        ("word_split", "transform"),
        ("filter", "transform"),
        ("compute", "transform"),
        ("json_parse", "transform"),
        ("weighted_avg", "aggregate"),
        ("percentile", "aggregate"),
        ("top_k", "aggregate"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{stdout}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cols[1..4], &["1.0.0", kind, "1.2.0"], "{line}");
        let size = std::fs::metadata(plugins_dir().join(format!("{name}.wasm")))?.len();
        assert_eq!(cols[4], size.to_string(), "{line}");
    }
    assert!(stdout.contains("Splits a text column into one row per word"));

    let output = run(&fixtures_dir())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("corrupt ") && l.contains("error: "))
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("wrong_contract ") && l.contains("contract 2.0.0"))
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("trap ") && l.contains(" transform "))
    );
    // The compile cache was filled: a second listing does not compile again.
    assert!(std::fs::read_dir(state.path().join("plugin-cache"))?.count() > 0);
    Ok(())
}
