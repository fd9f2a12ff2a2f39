//! The seed notebook's pipelines, run from `config/examples/`: Spark's console layout, and
//! results that make sense (where Spark 3.x printed old windows under new labels, weir does not).

use crate::harness::{TestResult, Weir, error_or_warn_lines, repo_root};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;
use std::time::Duration;

const BANNER: &str = "-------------------------------------------";

/// One printed batch: id, header cells, row cells. Panics when the layout is not Spark's.
struct Printed {
    id: u64,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim_end().to_string())
        .collect()
}

fn parse_console(out: &str) -> Vec<Printed> {
    let mut printed = Vec::new();
    let lines: Vec<&str> = out.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        assert_eq!(lines[i], BANNER, "line {i}: expected the banner:\n{out}");
        let id = lines[i + 1]
            .strip_prefix("Batch: ")
            .and_then(|n| n.parse().ok());
        let Some(id) = id else {
            panic!(
                "line {}: expected `Batch: N`, got {:?}",
                i + 1,
                lines[i + 1]
            )
        };
        assert_eq!(lines[i + 2], BANNER);
        let sep = lines[i + 3];
        assert!(sep.starts_with('+') && sep.ends_with('+'), "{sep}");
        let widths: Vec<usize> = sep.trim_matches('+').split('+').map(str::len).collect();
        let header = lines[i + 4];
        assert_eq!(lines[i + 5], sep);
        let mut j = i + 6;
        let mut rows = Vec::new();
        while lines[j] != sep {
            rows.push(cells(lines[j]));
            j += 1;
        }
        // Every line is as wide as the separator, cell by cell.
        for line in std::iter::once(header).chain(lines[i + 6..j].iter().copied()) {
            let got: Vec<usize> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.chars().count())
                .collect();
            assert_eq!(got, widths, "{line}");
        }
        assert_eq!(
            lines.get(j + 1).copied(),
            Some(""),
            "a blank line after the table"
        );
        printed.push(Printed {
            id,
            header: cells(header),
            rows,
        });
        i = j + 2;
    }
    printed
}

fn run_example(name: &str, until: &str, state: &str) -> Vec<Printed> {
    run_example_logged(name, until, state).0
}

/// What weir's debug log says a committed batch read.
#[derive(Debug)]
struct BatchRead {
    id: u64,
    rows: u64,
    /// The source's offsets (datagen: rows released so far), as logged.
    start: serde_json::Value,
    end: serde_json::Value,
}

/// As [`run_example`], with what each batch read according to weir's debug log.
fn run_example_logged(name: &str, until: &str, state: &str) -> (Vec<Printed>, Vec<BatchRead>) {
    let file = repo_root()
        .join("config/examples")
        .join(name)
        .to_string_lossy()
        .into_owned();
    let mut weir = Weir::start(&[
        "run",
        "--log-level",
        "weir=debug",
        "--state-dir",
        state,
        &file,
    ]);
    weir.wait_for_stdout(until, Duration::from_secs(30));
    weir.signal(Signal::SIGINT);
    assert!(
        weir.wait_exit(Duration::from_secs(5)).success(),
        "{}",
        weir.stderr()
    );
    let stderr = weir.stderr();
    assert_eq!(error_or_warn_lines(&stderr), Vec::<&str>::new());
    // `batch committed ... batch=N rows=M start_offset={..} end_offset={..} ...` (weir colours
    // its log only on a terminal).
    let reads = stderr
        .lines()
        .filter(|l| l.contains("batch committed"))
        .filter_map(|l| {
            Some(BatchRead {
                id: field(l, "batch=")?,
                rows: field(l, "rows=")?,
                start: json_field(l, "start_offset=")?,
                end: json_field(l, "end_offset=")?,
            })
        })
        .collect();
    (parse_console(&weir.stdout()), reads)
}

fn json_field(line: &str, key: &str) -> Option<serde_json::Value> {
    let at = line.find(&format!(" {key}"))? + 1 + key.len();
    serde_json::from_str(line[at..].split_whitespace().next()?).ok()
}

fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}"))? + 1 + key.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

#[test]
fn word_count_counts_every_released_row_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (batches, reads) = run_example_logged(
        "word-count.toml",
        "Batch: 3\n",
        &dir.path().to_string_lossy(),
    );
    assert_eq!(batches[0].header, vec!["word", "count"]);
    assert!(
        batches[0].rows.is_empty(),
        "batch 0 of a new stream is empty, as in Spark"
    );
    // The batches read the released rows back to back: each starts where the previous one
    // ended, and reads exactly the rows between its offsets. So no row is read twice or missed.
    let released = |offset: &serde_json::Value| offset["rows"].as_u64();
    for (i, read) in reads.iter().enumerate() {
        assert_eq!(read.id, i as u64, "{reads:?}");
        let (start, end) = (released(&read.start), released(&read.end));
        let previous_end = i
            .checked_sub(1)
            .map_or(Some(0), |p| released(&reads[p].end));
        assert_eq!(
            start,
            previous_end,
            "batch {i} starts where batch {} ended",
            i.max(1) - 1
        );
        assert_eq!(
            end.zip(start).map(|(e, s)| e - s),
            Some(read.rows),
            "batch {i} reads the rows between its offsets"
        );
    }
    let mut read_so_far = 0;
    for b in &batches {
        read_so_far += reads
            .iter()
            .find(|r| r.id == b.id)
            .map(|r| r.rows)
            .ok_or(format!("no log line for batch {}", b.id))?;
        let words: Vec<&str> = b.rows.iter().map(|r| r[0].as_str()).collect();
        let mut sorted = words.clone();
        sorted.sort();
        assert_eq!(words, sorted, "batch {}: rows sorted by key", b.id);
        assert!(
            words
                .iter()
                .all(|w| ["hello", "world", "ok", "no", "yes"].contains(w))
        );
        let total: u64 = b
            .rows
            .iter()
            .map(|r| r[1].parse::<u64>().unwrap_or(0))
            .sum();
        // Complete mode: the whole table, whose counts add up to every row read so far.
        assert_eq!(total, read_so_far, "batch {}", b.id);
    }
    Ok(())
}

#[test]
fn iot_average_prints_known_sensors_with_averages_between_0_and_10() -> TestResult {
    let dir = tempfile::tempdir()?;
    let batches = run_example("iot-avg.toml", "Batch: 3\n", &dir.path().to_string_lossy());
    assert_eq!(batches[0].header, vec!["sensor", "avg(value)"]);
    for b in &batches[1..] {
        assert!(!b.rows.is_empty());
        for row in &b.rows {
            assert!(
                ["sensor_1", "sensor_2", "sensor_3"].contains(&row[0].as_str()),
                "{row:?}"
            );
            let avg: f64 = row[1].parse()?;
            assert!(
                (0.0..=10.0).contains(&avg) && row[1].contains('.'),
                "{row:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn windowed_average_prints_aligned_10s_windows_once_per_sensor_sorted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let batches = run_example(
        "iot-windowed-avg.toml",
        "Batch: 2\n",
        &dir.path().to_string_lossy(),
    );
    assert_eq!(batches[0].header, vec!["window", "sensor", "avg(value)"]);
    let parse = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S");
    for b in &batches[1..] {
        assert!(!b.rows.is_empty());
        let mut seen = BTreeSet::new();
        let mut last = None;
        for row in &b.rows {
            let label = row[0].trim_start_matches('{').trim_end_matches('}');
            let (start, end) = label.split_once(", ").ok_or("window label")?;
            let (start, end) = (parse(start)?, parse(end)?);
            assert_eq!((end - start).num_seconds(), 10, "{label}");
            assert_eq!(
                start.and_utc().timestamp() % 10,
                0,
                "windows are aligned to 10 s: {label}"
            );
            // Spark 3.x printed one (window, sensor) several times; each pair appears once here.
            assert!(
                seen.insert((label.to_string(), row[1].clone())),
                "batch {}: {label} {} twice",
                b.id,
                row[1]
            );
            assert!(
                last.as_ref()
                    .is_none_or(|l: &(String, String)| l <= &(label.to_string(), row[1].clone())),
                "rows sorted"
            );
            last = Some((label.to_string(), row[1].clone()));
        }
    }
    Ok(())
}
