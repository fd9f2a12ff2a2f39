//! The seed's first pipeline, `config/examples/rate-console.toml`, printed in Spark's layout.

use crate::harness::{TestResult, Weir, error_or_warn_lines, repo_root};
use nix::sys::signal::Signal;
use std::time::Duration;

/// Parses `|2023-10-22 17:51:28.436|0    |` into (millis since the epoch, value).
fn parse_row(line: &str) -> Option<(i64, i64)> {
    let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
    let [ts, value] = cells.as_slice() else {
        return None;
    };
    let ts = ts.trim_end();
    let parsed = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some((
        parsed.and_utc().timestamp_millis(),
        value.trim_end().parse().ok()?,
    ))
}

#[test]
fn rate_console_example_prints_spark_layout_and_stops_cleanly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let state = dir.path().to_string_lossy().into_owned();
    let example = repo_root().join("config/examples/rate-console.toml");
    let example = example.to_string_lossy().into_owned();
    let mut weir = Weir::start(&["run", "--state-dir", &state, &example]);
    weir.wait_for_stdout("Batch: 3\n", Duration::from_secs(15));
    weir.signal(Signal::SIGINT);
    let status = weir.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", weir.stderr());
    assert_eq!(error_or_warn_lines(&weir.stderr()), Vec::<&str>::new());

    let out = weir.stdout();
    let banner = "-------------------------------------------";
    // Batch 0 is empty, exactly as in the seed.
    let batch0 = format!(
        "{banner}\nBatch: 0\n{banner}\n+---------+-----+\n|timestamp|value|\n+---------+-----+\n+---------+-----+\n\n"
    );
    assert!(out.starts_with(&batch0), "batch 0:\n{out}");

    // Every later batch: banner, header sized to the widest cell, left-aligned rows, blank line.
    let mut rows = Vec::new();
    for block in out.split(&format!("{banner}\nBatch: ")).skip(2) {
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[1], banner);
        let body: Vec<&str> = lines[5..]
            .iter()
            .copied()
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert!(
            !body.is_empty(),
            "a batch after the first second has rows:\n{block}"
        );
        // Column widths are the widest cell or header; the fraction of a timestamp loses its
        // trailing zeros, so they depend on the start time.
        let cells: Vec<Vec<&str>> = body
            .iter()
            .map(|l| l.trim_matches('|').split('|').map(str::trim_end).collect())
            .collect();
        let width = |col: usize, header: &str| {
            cells
                .iter()
                .map(|c| c[col].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        };
        let (wt, wv) = (width(0, "timestamp"), width(1, "value"));
        let sep = format!("+{}+{}+", "-".repeat(wt), "-".repeat(wv));
        assert_eq!(lines[2], sep, "{block}");
        assert_eq!(lines[3], format!("|{:<wt$}|{:<wv$}|", "timestamp", "value"));
        assert_eq!(lines[4], sep);
        assert_eq!(lines[5 + body.len()], sep);
        assert!(
            block.ends_with("+\n\n"),
            "a blank line after each table: {block:?}"
        );
        for (line, c) in body.iter().zip(&cells) {
            // Left-aligned and padded (truncate = false).
            assert_eq!(
                *line,
                format!("|{:<wt$}|{:<wv$}|", c[0], c[1]),
                "row {line:?}"
            );
            rows.push(parse_row(line).ok_or_else(|| format!("unparsable row {line:?}"))?);
        }
    }
    // Values count up from 0 without gaps; timestamps are start + value * 100 ms.
    let start = rows[0].0;
    for (i, (ts, value)) in rows.iter().enumerate() {
        assert_eq!(*value, i as i64);
        assert_eq!(*ts, start + value * 100, "timestamp of value {value}");
    }
    Ok(())
}
