//! Malformed CSV and JSON rows under each `on_error` mode, end to end: `fail` stops the
//! pipeline naming file, line and reason; `skip` drops and counts; `dead_letter` writes the raw
//! records with their place and reason under the state directory. Counts are checked in the
//! batch progress that weir logs at debug level.

use crate::harness::{TestResult, Weir, pipeline_file};
use crate::source_files::json_rows;
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

const CSV: &str = "id,name,score\n\
1,alice,1.5\n\
2,bob\n\
3,carol,not-a-number\n\
4,\"dan, the \"\"second\"\"\",4\n\
5,eve,5,extra\n\
6,Zoë,6\n";

const JSON: &str = "{\"id\":1,\"name\":\"alice\",\"score\":1.5}\n\
{\"id\":\"two\",\"name\":\"bob\",\"score\":2}\n\
{\"id\":3,\"name\":\"carol\"\n\
\n\
{\"id\":4,\"name\":\"dan\",\"score\":4}\n\
[5]\n\
{\"id\":6,\"name\":\"Zoë\",\"score\":6}\n";

fn pipeline(name: &str, format: &str, input: &Path, out: &Path, on_error: &str) -> String {
    format!(
        r#"name = "{name}"
trigger = "available_now"

[source]
type = "file"
path = "{}"
format = "{format}"
on_error = "{on_error}"

[[source.column]]
name = "id"
type = "long"

[[source.column]]
name = "name"
type = "string"

[[source.column]]
name = "score"
type = "double"

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        input.display(),
        out.display()
    )
}

struct Run {
    success: bool,
    stderr: String,
    ids: Vec<i64>,
    state: std::path::PathBuf,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn run(format: &str, on_error: &str) -> Result<Run, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (input, out, state) = (
        dir.path().join("in"),
        dir.path().join("out"),
        dir.path().join("state"),
    );
    std::fs::create_dir(&input)?;
    let (name, text) = match format {
        "csv" => ("data.csv", CSV),
        _ => ("data.json", JSON),
    };
    let file = input.join(name);
    std::fs::write(&file, text)?;
    let pipeline_name = format!("bad-{format}-{on_error}").replace('_', "-");
    let toml = pipeline_file(
        dir.path(),
        "p.toml",
        &pipeline(&pipeline_name, format, &input, &out, on_error),
    );
    let mut weir = Weir::start(&[
        "run",
        "--log-level",
        "info,weir=debug",
        "--state-dir",
        &state.to_string_lossy(),
        &toml.to_string_lossy(),
    ]);
    let success = weir.wait_exit(DEADLINE).success();
    Ok(Run {
        success,
        stderr: weir.stderr(),
        ids: json_rows(&out)
            .iter()
            .filter_map(|(_, r)| r["id"].as_i64())
            .collect(),
        state: state.join("dead_letter").join(pipeline_name),
        file,
        _dir: dir,
    })
}

/// Malformed counts summed over the batch progress lines.
fn counts(stderr: &str) -> (u64, u64) {
    let field = |line: &str, key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|rest| {
                let digits: String = rest
                    .trim_start_matches('=')
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
            .unwrap_or(0)
    };
    stderr
        .lines()
        .filter(|l| l.contains("batch committed"))
        .map(|l| {
            (
                field(l, "malformed_skipped"),
                field(l, "malformed_dead_lettered"),
            )
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

#[test]
fn fail_stops_the_pipeline_with_file_line_and_reason() -> TestResult {
    let csv = run("csv", "fail")?;
    assert!(!csv.success, "a malformed row must fail the pipeline");
    let expected = format!("malformed record at {} line 3:", csv.file.display());
    assert!(csv.stderr.contains(&expected), "{}", csv.stderr);
    assert!(
        csv.stderr.contains("incorrect number of fields"),
        "{}",
        csv.stderr
    );
    assert!(csv.ids.is_empty(), "nothing of the failed batch is written");

    let json = run("json", "fail")?;
    assert!(!json.success);
    let expected = format!("malformed record at {} line 2:", json.file.display());
    assert!(json.stderr.contains(&expected), "{}", json.stderr);
    assert!(
        json.stderr.contains("failed to parse \\\"two\\\" as Int64")
            || json.stderr.contains("failed to parse \"two\" as Int64"),
        "{}",
        json.stderr
    );
    Ok(())
}

#[test]
fn skip_drops_malformed_rows_and_counts_them() -> TestResult {
    let csv = run("csv", "skip")?;
    assert!(csv.success, "{}", csv.stderr);
    assert_eq!(csv.ids, vec![1, 4, 6]);
    assert_eq!(counts(&csv.stderr), (3, 0), "{}", csv.stderr);

    let json = run("json", "skip")?;
    assert!(json.success, "{}", json.stderr);
    assert_eq!(json.ids, vec![1, 4, 6]);
    assert_eq!(counts(&json.stderr), (3, 0), "{}", json.stderr);
    Ok(())
}

fn dead_letters(dir: &Path) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let mut letters = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        for line in std::fs::read_to_string(path)?.lines() {
            letters.push(serde_json::from_str(line)?);
        }
    }
    Ok(letters)
}

#[test]
fn dead_letter_writes_raw_records_with_place_and_reason() -> TestResult {
    let csv = run("csv", "dead_letter")?;
    assert!(csv.success, "{}", csv.stderr);
    assert_eq!(csv.ids, vec![1, 4, 6]);
    assert_eq!(counts(&csv.stderr), (0, 3), "{}", csv.stderr);
    let letters = dead_letters(&csv.state)?;
    let summary: Vec<(u64, &str)> = letters
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap_or(0),
                l["raw"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, "2,bob"),
            (4, "3,carol,not-a-number"),
            (6, "5,eve,5,extra")
        ]
    );
    for letter in &letters {
        assert_eq!(letter["source"], "file");
        assert_eq!(letter["file"], csv.file.to_string_lossy().as_ref());
        assert!(letter["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(letter["byte_offset"].as_u64().is_some());
    }
    assert!(
        letters[1]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not-a-number")
    );
    let offset = letters[0]["byte_offset"].as_u64().unwrap_or(0) as usize;
    assert!(
        CSV[offset..].starts_with("2,bob\n"),
        "byte_offset points at the record"
    );

    let json = run("json", "dead_letter")?;
    assert!(json.success, "{}", json.stderr);
    assert_eq!(json.ids, vec![1, 4, 6]);
    assert_eq!(counts(&json.stderr), (0, 3), "{}", json.stderr);
    let letters = dead_letters(&json.state)?;
    let summary: Vec<(u64, &str)> = letters
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap_or(0),
                l["raw"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "{\"id\":\"two\",\"name\":\"bob\",\"score\":2}"),
            (3, "{\"id\":3,\"name\":\"carol\""),
            (6, "[5]"),
        ]
    );
    Ok(())
}
