//! The file source end to end with real files: pickup (by rename, and by a write that then
//! stays still), `max_files_per_trigger`, `clean_source` archiving only after the batch
//! committed, no re-reading after a restart, and every format with nulls and Unicode. When a
//! file counts as complete (a slow writer's file only once it stops changing) is tested with
//! stepped time in `sources/file/discovery.rs`.

use crate::harness::{TestResult, Weir, pipeline_file};
use crate::source_files::json_rows;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// A CSV folder → JSON files pipeline; `extra` goes at the top level, `options` into `[source]`.
fn csv_pipeline(name: &str, input: &Path, out: &Path, extra: &str, options: &str) -> String {
    format!(
        r#"name = "{name}"
{extra}

[source]
type = "file"
path = "{}"
format = "csv"
{options}

[[source.column]]
name = "id"
type = "long"

[[source.column]]
name = "name"
type = "string"

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        input.display(),
        out.display()
    )
}

/// `in/` (created), `out/` and `state/` under `dir`.
fn folders(dir: &Path) -> std::io::Result<(PathBuf, PathBuf, PathBuf)> {
    let input = dir.join("in");
    std::fs::create_dir(&input)?;
    Ok((input, dir.join("out"), dir.join("state")))
}

/// Places a file atomically: written under a hidden name, then renamed.
fn place(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(name))
}

fn ids(out: &Path) -> Vec<i64> {
    json_rows(out)
        .iter()
        .filter_map(|(_, row)| row["id"].as_i64())
        .collect()
}

fn csv_rows(from: i64, to: i64) -> String {
    let mut text = String::from("id,name\n");
    for id in from..to {
        text.push_str(&format!("{id},n{id}\n"));
    }
    text
}

fn run(state: &Path, file: &Path) -> Weir {
    Weir::start(&[
        "run",
        "--state-dir",
        &state.to_string_lossy(),
        &file.to_string_lossy(),
    ])
}

/// How soon a file is complete (at once when renamed, after `stable_for` when written in place)
/// is tested with stepped time in `sources/file/discovery.rs`; here, that both kinds are read.
#[test]
fn new_files_renamed_or_written_in_place_are_read_and_never_twice_across_restarts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    place(&input, "old.csv", &csv_rows(0, 10))?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &csv_pipeline("files", &input, &out, "", ""),
    );
    let mut weir = run(&state, &file);
    let out2 = out.clone();
    weir.wait_for("the file there at start", DEADLINE, move |_, _| {
        ids(&out2).len() == 10
    });

    // Renamed into place.
    place(&input, "renamed.csv", &csv_rows(10, 20))?;
    let out2 = out.clone();
    weir.wait_for("the renamed file", DEADLINE, move |_, _| {
        ids(&out2).len() == 20
    });

    // Written in place and left alone: read once it has been still for stable_for.
    std::fs::write(input.join("copied.csv"), csv_rows(20, 30))?;
    let out2 = out.clone();
    weir.wait_for("the copied file", DEADLINE, move |_, _| {
        ids(&out2).len() == 30
    });

    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());

    // Restart: the old files are still there and must not be read again; a new one is.
    let weir = run(&state, &file);
    place(&input, "after-restart.csv", &csv_rows(30, 35))?;
    let out2 = out.clone();
    weir.wait_for("the new file after the restart", DEADLINE, move |_, _| {
        ids(&out2).len() >= 35
    });
    // One more file proves the source went on past the restart's first batches.
    place(&input, "last.csv", &csv_rows(35, 40))?;
    let out2 = out.clone();
    weir.wait_for("the last file", DEADLINE, move |_, _| {
        ids(&out2).len() >= 40
    });
    weir.kill9();
    let mut all = ids(&out);
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "every row exactly once");
    Ok(())
}

#[test]
fn max_files_per_trigger_bounds_each_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    for f in 0..7 {
        place(
            &input,
            &format!("f{f}.csv"),
            &csv_rows(f * 100, f * 100 + 3),
        )?;
    }
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &csv_pipeline(
            "limited",
            &input,
            &out,
            "trigger = \"available_now\"",
            "max_files_per_trigger = 2\n",
        ),
    );
    let mut weir = run(&state, &file);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    let mut per_batch: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (part, row) in json_rows(&out) {
        per_batch
            .entry(part)
            .or_default()
            .push(row["id"].as_i64().ok_or("id")?);
    }
    let files_per_batch: Vec<usize> = per_batch
        .values()
        .map(|ids| {
            let mut files: Vec<i64> = ids.iter().map(|id| id / 100).collect();
            files.dedup();
            files.len()
        })
        .collect();
    assert_eq!(files_per_batch, vec![2, 2, 2, 1], "{per_batch:?}");
    let all: usize = per_batch.values().map(Vec::len).sum();
    assert_eq!(all, 21);
    Ok(())
}

#[test]
fn clean_source_archives_a_file_only_after_its_batch_committed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    let archive = dir.path().join("done");
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &csv_pipeline(
            "archiving",
            &input,
            &out,
            "",
            &format!(
                "clean_source = \"archive\"\narchive_dir = \"{}\"\n",
                archive.display()
            ),
        ),
    );
    let mut weir = run(&state, &file);
    weir.wait_for("the start", DEADLINE, |_, err| {
        err.contains("starting with a fresh checkpoint")
    });
    // Break the sink (its directory becomes a file): the batch that reads a.csv cannot commit.
    let moved = dir.path().join("out.moved");
    std::fs::rename(&out, &moved)?;
    std::fs::write(&out, "not a directory")?;
    place(&input, "a.csv", &csv_rows(0, 5))?;
    weir.wait_for("the batch failing and being retried", DEADLINE, |_, err| {
        err.contains("retrying")
    });
    assert!(
        input.join("a.csv").exists(),
        "archived before its batch committed"
    );
    assert!(!archive.join("a.csv").exists());
    // Mend the sink: the batch commits, then the file moves.
    std::fs::remove_file(&out)?;
    std::fs::rename(&moved, &out)?;
    let archived = archive.join("a.csv");
    weir.wait_for("the file archived", DEADLINE, move |_, _| archived.exists());
    assert!(!input.join("a.csv").exists());
    assert_eq!(ids(&out), vec![0, 1, 2, 3, 4]);
    // A new file with the same name is new data: read, and archived beside the first.
    place(&input, "a.csv", &csv_rows(5, 7))?;
    let second = archive.join("a.csv.1");
    weir.wait_for("the second a.csv archived", DEADLINE, move |_, _| {
        second.exists()
    });
    assert_eq!(ids(&out), vec![0, 1, 2, 3, 4, 5, 6]);
    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    Ok(())
}

fn format_pipeline(name: &str, format: &str, input: &Path, out: &Path, columns: &str) -> String {
    format!(
        r#"name = "{name}"
trigger = "available_now"

[source]
type = "file"
path = "{}"
format = "{format}"
{columns}

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        input.display(),
        out.display()
    )
}

const COLUMNS: &str = r#"
[[source.column]]
name = "id"
type = "int"

[[source.column]]
name = "city"
type = "string"

[[source.column]]
name = "temp"
type = "double"

[[source.column]]
name = "ok"
type = "boolean"

[[source.column]]
name = "at"
type = "timestamp"
"#;

fn expected_rows() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"id": 1, "city": "Zürich", "temp": 21.5, "ok": true, "at": "2026-11-24T01:09:10Z"}),
        serde_json::json!({"id": 2, "city": "東京 🌸", "ok": false, "at": "2026-11-24T01:09:11.250Z"}),
        serde_json::json!({"id": 3, "temp": -4.0}),
    ]
}

fn read_format(
    format: &str,
    fixture: impl FnOnce(&Path) -> TestResult,
    columns: &str,
) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    fixture(&input)?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format_pipeline(&format!("fmt-{format}"), format, &input, &out, columns),
    );
    let mut weir = run(&state, &file);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    Ok(json_rows(&out).into_iter().map(|(_, v)| v).collect())
}

#[test]
fn each_format_reads_its_fixture_with_nulls_and_unicode() -> TestResult {
    let csv = read_format(
        "csv",
        |dir| {
            std::fs::write(
                dir.join("a.csv"),
                "id,city,temp,ok,at\n1,Zürich,21.5,true,2026-11-24T01:09:10Z\n2,\"東京 🌸\",,false,2026-11-24 01:09:11.25\n3,,-4,,\n",
            )?;
            Ok(())
        },
        COLUMNS,
    )?;
    assert_eq!(csv, expected_rows(), "csv");

    let json = read_format(
        "json",
        |dir| {
            std::fs::write(
                dir.join("a.json"),
                "{\"id\":1,\"city\":\"Zürich\",\"temp\":21.5,\"ok\":true,\"at\":\"2026-11-24T01:09:10Z\"}\n\n{\"id\":2,\"city\":\"東京 🌸\",\"temp\":null,\"ok\":false,\"at\":\"2026-11-24T01:09:11.250Z\",\"extra\":1}\n{\"id\":3,\"temp\":-4}\n",
            )?;
            Ok(())
        },
        COLUMNS,
    )?;
    assert_eq!(json, expected_rows(), "json");

    let parquet = read_format(
        "parquet",
        |dir| {
            use arrow::array::{
                BooleanArray, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
            };
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int32, true),
                arrow::datatypes::Field::new("city", arrow::datatypes::DataType::Utf8, true),
                arrow::datatypes::Field::new("temp", arrow::datatypes::DataType::Float64, true),
                arrow::datatypes::Field::new("ok", arrow::datatypes::DataType::Boolean, true),
                arrow::datatypes::Field::new(
                    "at",
                    arrow::datatypes::DataType::Timestamp(
                        arrow::datatypes::TimeUnit::Microsecond,
                        Some("UTC".into()),
                    ),
                    true,
                ),
            ]));
            let t0 = 1_795_482_550_000_000i64; // 2026-11-24T01:09:10Z
            let batch = arrow::record_batch::RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(3)])),
                    Arc::new(StringArray::from(vec![
                        Some("Zürich"),
                        Some("東京 🌸"),
                        None,
                    ])),
                    Arc::new(Float64Array::from(vec![Some(21.5), None, Some(-4.0)])),
                    Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![Some(t0), Some(t0 + 1_250_000), None])
                            .with_timezone("UTC"),
                    ),
                ],
            )?;
            let file = std::fs::File::create(dir.join("a.parquet"))?;
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
            writer.write(&batch)?;
            writer.close()?;
            Ok(())
        },
        "",
    )?;
    assert_eq!(parquet, expected_rows(), "parquet (schema from the file)");

    let text = read_format(
        "text",
        |dir| {
            std::fs::write(
                dir.join("a.txt"),
                "first line\r\n\nZoë 🌍 ünïcode\nlast without newline",
            )?;
            Ok(())
        },
        "",
    )?;
    let lines: Vec<&str> = text.iter().filter_map(|v| v["value"].as_str()).collect();
    assert_eq!(
        lines,
        ["first line", "", "Zoë 🌍 ünïcode", "last without newline"]
    );
    Ok(())
}

#[test]
fn a_schema_is_inferred_from_the_first_file_and_kept() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    std::fs::write(
        input.join("a.csv"),
        "sensor,value,ok\ns1,1.5,true\ns2,,false\n",
    )?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format_pipeline("inferred", "csv", &input, &out, ""),
    );
    let mut weir = run(&state, &file);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    assert!(
        weir.stderr()
            .contains("sensor Utf8, value Float64, ok Boolean"),
        "{}",
        weir.stderr()
    );
    // A later file whose first rows would infer differently is still read with the kept schema.
    std::fs::write(input.join("b.csv"), "sensor,value,ok\ns3,7,true\n")?;
    let mut weir = run(&state, &file);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    let rows: Vec<_> = json_rows(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"sensor": "s1", "value": 1.5, "ok": true}),
            serde_json::json!({"sensor": "s2", "ok": false}),
            serde_json::json!({"sensor": "s3", "value": 7.0, "ok": true}),
        ]
    );
    Ok(())
}

#[test]
fn kill_9_in_the_middle_of_a_batch_replays_the_same_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &csv_pipeline(
            "files-crash",
            &input,
            &out,
            "",
            "max_files_per_trigger = 2\n",
        ),
    );
    let weir = run(&state, &file);
    place(&input, "a.csv", &csv_rows(0, 10))?;
    let out2 = out.clone();
    weir.wait_for("the first file", DEADLINE, move |_, _| {
        ids(&out2).len() == 10
    });
    // The sink breaks; the next batch (b and c) is planned, read and retried, never committed.
    let moved = dir.path().join("out.moved");
    std::fs::rename(&out, &moved)?;
    std::fs::write(&out, "not a directory")?;
    place(&input, "b.csv", &csv_rows(10, 20))?;
    place(&input, "c.csv", &csv_rows(20, 30))?;
    weir.wait_for("the batch being retried", DEADLINE, |_, err| {
        err.contains("retrying")
    });
    weir.kill9();
    std::fs::remove_file(&out)?;
    std::fs::rename(&moved, &out)?;
    // Files that arrive while weir is down must not slip into the replayed batch.
    place(&input, "d.csv", &csv_rows(30, 40))?;
    let weir = run(&state, &file);
    weir.wait_for("the replay", DEADLINE, |_, err| {
        err.contains("replaying batch")
    });
    let out2 = out.clone();
    weir.wait_for("every file", DEADLINE, move |_, _| ids(&out2).len() >= 40);
    weir.kill9();
    let mut per_batch: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (part, row) in json_rows(&out) {
        per_batch
            .entry(part)
            .or_default()
            .push(row["id"].as_i64().ok_or("id")?);
    }
    let batches: Vec<Vec<i64>> = per_batch
        .into_values()
        .map(|mut ids| {
            ids.sort_unstable();
            ids.dedup_by_key(|id| *id / 10);
            ids.into_iter().map(|id| id / 10).collect()
        })
        .collect();
    // b and c were placed a moment apart, so the planned batch holds b alone or b and c; either
    // way it is replayed as planned, and d, which arrived while weir was down, is not in it.
    assert!(
        batches == vec![vec![0], vec![1, 2], vec![3]]
            || batches == vec![vec![0], vec![1], vec![2, 3]],
        "a; the replayed batch; then the rest: {batches:?}"
    );
    let mut all = ids(&out);
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "every row exactly once");
    Ok(())
}

/// An inferred schema is the checkpoint's: after the file it was inferred from is cleaned away,
/// a restart checks the pipeline against the kept schema, not against whatever file is oldest
/// now (which here would make `value` a string, and `sum(value)` invalid).
#[test]
fn a_restart_checks_against_the_inferred_schema_the_checkpoint_kept() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = folders(dir.path())?;
    let text = format!(
        r#"name = "sums"
output_mode = "complete"
trigger = "available_now"

[source]
type = "file"
path = "{}"
format = "csv"
clean_source = "delete"
on_error = "skip"

[aggregate]
functions = [{{ fn = "sum", column = "value" }}]

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        input.display(),
        out.display()
    );
    let file = pipeline_file(dir.path(), "p.toml", &text);
    place(&input, "a.csv", "id,value\n1,10\n")?;
    let mut weir = run(&state, &file);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    assert!(!input.join("a.csv").exists(), "cleaned after its commit");

    // Alone, this file infers `value` as a string.
    place(&input, "b.csv", "id,value\n2,x\n3,20\n")?;
    let mut weir = run(&state, &file);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    let sums: Vec<i64> = json_rows(&out)
        .iter()
        .filter_map(|(_, row)| row["sum(value)"].as_i64())
        .collect();
    assert_eq!(sums, [10, 30], "the row with `x` is skipped as malformed");
    Ok(())
}
