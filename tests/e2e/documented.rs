//! What the README promises and no other test checked end to end: sliding and session windows,
//! compressed input and its size limit, the file source's ordering and selection options, the
//! console banner of several pipelines, the retry policy, `weir state list`, `list_interval`
//! and `watch`.

use crate::daemon_harness::{Daemon, SOON, find};
use crate::harness::{TestResult, Weir, pipeline_file};
use crate::source_files::values;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// 2023-11-14T22:13:20Z, a whole second.
const START_MS: i64 = 1_700_000_000_000;

/// Runs `weir run` on `text` (available_now pipelines end by themselves) and returns the rows
/// of each batch its JSON file sink at `out/` wrote, by batch id, and the log.
fn run(dir: &Path, text: &str, extra: &[&str]) -> (Vec<(u64, Vec<Value>)>, String) {
    let file = pipeline_file(dir, "p.toml", text);
    let state = dir.join("state");
    let mut args = vec![
        "run".to_string(),
        "--state-dir".into(),
        state.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(file.to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut weir = Weir::start(&args);
    let status = weir.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{}", weir.stderr());
    (
        crate::daemon_harness::parts(&dir.join("out")),
        weir.stderr(),
    )
}

fn sink() -> &'static str {
    "[[sink]]\ntype = \"file\"\npath = \"out\"\nformat = \"json\"\n"
}

/// `(window start, window end, count)` of a batch's rows, as seconds after `START_MS`.
fn windows(rows: &[Value]) -> Vec<(i64, i64, i64)> {
    let secs = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap_or_default())
            .map_or(i64::MIN, |t| (t.timestamp_millis() - START_MS) / 1000)
    };
    let mut out: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                secs(&r["window"]["start"]),
                secs(&r["window"]["end"]),
                r["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn sliding_windows_count_each_row_in_every_window_that_covers_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Ten rows, one a second from START (row i at START + i s), in batches of four.
    let text = format!(
        "name = \"sliding\"\noutput_mode = \"complete\"\ntrigger = \"available_now\"\n[source]\ntype = \"datagen\"\nrows = 10\nrows_per_second = 1\nmax_rows_per_batch = 4\nstart_timestamp = {START_MS}\n[[source.column]]\nname = \"time\"\ntype = \"timestamp\"\nexpr = \"now\"\n\n[aggregate]\nwindow = {{ column = \"time\", size = \"3s\", slide = \"1s\" }}\nfunctions = [{{ fn = \"count\" }}]\n\n{}",
        sink()
    );
    let (batches, _) = run(dir.path(), &text, &[]);
    let (_, last) = batches.last().cloned().ok_or("no output")?;
    // Windows [s, s + 3) for s = -2 .. 9 hold the rows at s, s + 1, s + 2 that exist (0..=9).
    let expected: Vec<(i64, i64, i64)> = (-2..=9)
        .map(|s: i64| {
            (
                s,
                s + 3,
                (s..s + 3).filter(|t| (0..10).contains(t)).count() as i64,
            )
        })
        .collect();
    assert_eq!(windows(&last), expected);
    Ok(())
}

#[test]
fn session_windows_close_after_the_gap_for_each_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    // Key a: 0, 1, 2 s (one session), then 10, 11 s (another). Key b: 1 s, then 20 s.
    let mut csv = String::from("time,key\n");
    for (s, key) in [
        (0, "a"),
        (1, "a"),
        (1, "b"),
        (2, "a"),
        (10, "a"),
        (11, "a"),
        (20, "b"),
    ] {
        let t = chrono::DateTime::from_timestamp_millis(START_MS + s * 1000).ok_or("time")?;
        csv.push_str(&format!("{},{key}\n", t.format("%Y-%m-%d %H:%M:%S")));
    }
    std::fs::write(input.join("events.csv"), csv)?;
    let text = format!(
        "name = \"sessions\"\noutput_mode = \"complete\"\ntrigger = \"available_now\"\n[source]\ntype = \"file\"\npath = \"in\"\nformat = \"csv\"\n[[source.column]]\nname = \"time\"\ntype = \"timestamp\"\n[[source.column]]\nname = \"key\"\ntype = \"string\"\n\n[aggregate]\ngroup_by = [\"key\"]\nwindow = {{ column = \"time\", gap = \"2s\" }}\nfunctions = [{{ fn = \"count\" }}]\n\n{}",
        sink()
    );
    let (batches, _) = run(dir.path(), &text, &[]);
    let (_, last) = batches.last().cloned().ok_or("no output")?;
    let mut sessions: Vec<(String, (i64, i64, i64))> = last
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_string(),
                windows(std::slice::from_ref(r))[0],
            )
        })
        .collect();
    sessions.sort();
    // A session is [first event, last event + gap).
    assert_eq!(
        sessions,
        [
            ("a".to_string(), (0, 4, 3)),
            ("a".into(), (10, 13, 2)),
            ("b".into(), (1, 3, 1)),
            ("b".into(), (20, 22, 1)),
        ]
    );
    Ok(())
}

fn text_source(extra: &str) -> String {
    format!(
        "name = \"files\"\ntrigger = \"available_now\"\n[source]\ntype = \"file\"\npath = \"in\"\nformat = \"text\"\ninclude_file_name = true\n{extra}\n\n{}",
        sink()
    )
}

/// A file `name` in `dir` holding `lines`, last modified `age` ago.
fn aged(dir: &Path, name: &str, lines: &str, age: Duration) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, lines)?;
    std::fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(SystemTime::now() - age)?;
    Ok(path)
}

/// The file names each batch read (include_file_name), in batch order.
fn files_by_batch(batches: &[(u64, Vec<Value>)]) -> Vec<Vec<String>> {
    batches
        .iter()
        .map(|(_, rows)| {
            let mut names: Vec<String> = rows
                .iter()
                .filter_map(|r| r["file"].as_str())
                .filter_map(|p| {
                    Path::new(p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .collect();
            names.dedup();
            names
        })
        .collect()
}

#[test]
fn latest_first_reads_the_newest_files_first_and_include_file_name_says_which_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    let minute = Duration::from_secs(60);
    aged(&input, "old.txt", "1\n", minute * 3)?;
    aged(&input, "middle.txt", "2\n", minute * 2)?;
    aged(&input, "new.txt", "3\n", minute)?;
    let (batches, _) = run(
        dir.path(),
        &text_source("latest_first = true\nmax_files_per_trigger = 1"),
        &[],
    );
    assert_eq!(
        files_by_batch(&batches),
        [vec!["new.txt"], vec!["middle.txt"], vec!["old.txt"]]
    );
    let path = batches[0].1[0]["file"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(Path::new(&path), input.join("new.txt"));
    Ok(())
}

#[test]
fn max_file_age_ignores_files_much_older_than_the_newest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    let day = Duration::from_secs(86_400);
    aged(&input, "ancient.txt", "1\n", day * 10)?;
    aged(&input, "recent.txt", "2\n", day)?;
    aged(&input, "today.txt", "3\n", Duration::from_secs(60))?;
    let (batches, _) = run(dir.path(), &text_source("max_file_age = \"7d\""), &[]);
    let mut read: Vec<String> = files_by_batch(&batches).concat();
    read.sort();
    assert_eq!(read, ["recent.txt", "today.txt"]);
    Ok(())
}

#[test]
fn max_bytes_per_trigger_bounds_each_batch_but_a_bigger_file_still_makes_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    let minute = Duration::from_secs(60);
    let line = |n: usize| format!("{}\n", "x".repeat(n - 1));
    aged(&input, "a.txt", &line(100), minute * 4)?;
    aged(&input, "b.txt", &line(100), minute * 3)?;
    aged(&input, "c.txt", &line(400), minute * 2)?;
    aged(&input, "d.txt", &line(100), minute)?;
    let (batches, _) = run(dir.path(), &text_source("max_bytes_per_trigger = 250"), &[]);
    assert_eq!(
        files_by_batch(&batches),
        [vec!["a.txt", "b.txt"], vec!["c.txt"], vec!["d.txt"]]
    );
    Ok(())
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[test]
fn gzip_and_zstd_files_are_read_and_one_over_max_decompressed_size_is_a_malformed_record()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    let minute = Duration::from_secs(60);
    std::fs::write(input.join("a.txt.gz"), gzip(b"gz one\ngz two\n")?)?;
    std::fs::write(
        input.join("b.txt.zst"),
        zstd::encode_all(&b"zst one\n"[..], 3)?,
    )?;
    // 64 KiB of zeros in a few dozen bytes: a small decompression bomb.
    std::fs::write(input.join("c.txt.gz"), gzip(&vec![b'0'; 64 * 1024])?)?;
    for name in ["a.txt.gz", "b.txt.zst", "c.txt.gz"] {
        std::fs::File::options()
            .write(true)
            .open(input.join(name))?
            .set_modified(SystemTime::now() - minute)?;
    }
    let (batches, log) = run(
        dir.path(),
        &text_source("max_decompressed_size = \"1KiB\"\non_error = \"skip\""),
        &["--log-level", "weir=debug"],
    );
    let mut values: Vec<String> = batches
        .iter()
        .flat_map(|(_, rows)| rows)
        .filter_map(|r| r["value"].as_str().map(str::to_string))
        .collect();
    values.sort();
    assert_eq!(values, ["gz one", "gz two", "zst one"]);
    assert!(
        log.contains("malformed_skipped=1"),
        "the bomb counts as one skipped record:\n{log}"
    );
    Ok(())
}

#[test]
fn several_console_pipelines_name_themselves_in_each_banner() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pipeline = |name: &str| {
        format!(
            "name = \"{name}\"\ntrigger = \"once\"\n[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = 1\n[[sink]]\ntype = \"console\"\n"
        )
    };
    let a = pipeline_file(dir.path(), "a.toml", &pipeline("left"));
    let b = pipeline_file(dir.path(), "b.toml", &pipeline("right"));
    let state = dir.path().join("state");
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &state.to_string_lossy(),
        &a.to_string_lossy(),
        &b.to_string_lossy(),
    ]);
    assert!(weir.wait_exit(Duration::from_secs(30)).success());
    let stdout = weir.stdout();
    assert!(stdout.contains("Batch: 0 (left)\n"), "{stdout}");
    assert!(stdout.contains("Batch: 0 (right)\n"), "{stdout}");
    // One pipeline alone prints exactly Spark's banner.
    let alone = tempfile::tempdir()?;
    let file = pipeline_file(alone.path(), "a.toml", &pipeline("left"));
    let state = alone.path().join("state");
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &state.to_string_lossy(),
        &file.to_string_lossy(),
    ]);
    assert!(weir.wait_exit(Duration::from_secs(30)).success());
    assert!(weir.stdout().contains("Batch: 0\n"), "{}", weir.stdout());
    Ok(())
}

#[test]
fn a_failing_batch_is_retried_three_times_with_a_doubling_backoff_warned_once_then_fails_its_pipeline()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let text = format!(
        "name = \"failing\"\ntrigger = \"once\"\n[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = 1\n\n{}",
        sink()
    );
    let file = pipeline_file(dir.path(), "p.toml", &text);
    let state = dir.path().join("state").to_string_lossy().into_owned();
    let args = ["run", "--state-dir", &state, &file.to_string_lossy()];
    // Batch 0 is written; its file's name carries the checkpoint's id.
    let mut first = Weir::start(&args);
    assert!(
        first.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        first.stderr()
    );
    let out = dir.path().join("out");
    let written: Vec<String> = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let id = written
        .iter()
        .find_map(|n| n.strip_prefix("part-0000000000-")?.strip_suffix(".json"))
        .ok_or(format!("no part file for batch 0 in {written:?}"))?;
    // A folder where batch 1's temporary file goes: every attempt to create it fails with an
    // I/O error, the outside world's kind of failure.
    std::fs::create_dir(out.join(format!(".part-0000000001-{id}.json.tmp")))?;
    // At debug level, to see the attempts the log only mentions at info level once.
    let mut weir = Weir::start_with(&args, None, |cmd| {
        cmd.env("WEIR_LOG", "debug");
    });
    let status = weir.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", weir.stderr());
    let log = weir.stderr();
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("batch failed") && l.contains("retrying in"))
        .collect();
    assert_eq!(retries.len(), 3, "{log}");
    for (line, (level, wait)) in
        retries
            .iter()
            .zip([("WARN", "500ms"), ("DEBUG", "1s"), ("DEBUG", "2s")])
    {
        assert!(line.contains(level), "{line}");
        assert!(
            line.contains(&format!("retrying in {wait} (attempt")),
            "{line}"
        );
    }
    assert!(
        log.contains("weir: pipeline `failing` failed: sink #1 (file): cannot write"),
        "{log}"
    );
    Ok(())
}

#[test]
fn state_list_shows_each_pipeline_with_its_last_committed_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let text = |name: &str, rows: u64| {
        format!(
            "name = \"{name}\"\ntrigger = \"available_now\"\n[source]\ntype = \"datagen\"\nrows = {rows}\nmax_rows_per_batch = 10\n[[source.column]]\nname = \"v\"\ntype = \"long\"\n[[sink]]\ntype = \"null\"\n"
        )
    };
    let a = pipeline_file(dir.path(), "a.toml", &text("three", 30));
    let b = pipeline_file(dir.path(), "b.toml", &text("one", 10));
    let state = dir.path().join("state").to_string_lossy().into_owned();
    let mut weir = Weir::start(&[
        "run",
        "--state-dir",
        &state,
        &a.to_string_lossy(),
        &b.to_string_lossy(),
    ]);
    assert!(weir.wait_exit(Duration::from_secs(30)).success());
    let mut list = Weir::start(&["state", "list", "--state-dir", &state]);
    assert!(list.wait_exit(Duration::from_secs(10)).success());
    let mut lines: Vec<String> = list.stdout().lines().map(str::to_string).collect();
    lines.sort();
    // Batches 0..=2 of 10 rows for `three` and batch 0 for `one`.
    assert_eq!(
        lines,
        [
            "one\tlast committed batch 0",
            "three\tlast committed batch 2"
        ]
    );
    Ok(())
}

/// How many inotify watches process `pid` holds on `folder` (the kernel lists each watch in
/// the inotify descriptor's fdinfo, with the watched inode in hex).
fn inotify_watches_on(pid: u32, folder: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let needle = format!(" ino:{:x} ", std::fs::metadata(folder)?.ino());
    let mut watches = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        // A descriptor closed meanwhile is simply gone.
        let info = std::fs::read_to_string(fd?.path()).unwrap_or_default();
        watches += info
            .lines()
            .filter(|l| l.starts_with("inotify wd:") && l.contains(&needle))
            .count();
    }
    Ok(watches)
}

/// A daemon pipeline reading text files from `input` into `out/` under the daemon's folder.
fn folder_pipeline(daemon: &Daemon, input: &Path, options: &str) -> String {
    format!(
        "name = \"folder\"\n[source]\ntype = \"file\"\npath = \"{}\"\nformat = \"text\"\n{options}\n[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"json\"\n",
        input.display(),
        daemon.path("out").display()
    )
}

/// A daemon on a new folder running [`folder_pipeline`] on its `in/` with `options`, once the
/// source is open (batch 0, empty, committed).
fn folder_daemon(options: &str) -> Result<(tempfile::TempDir, Daemon, PathBuf), std::io::Error> {
    let root = tempfile::tempdir()?;
    let input = root.path().join("in");
    std::fs::create_dir(&input)?;
    let daemon = Daemon::start(root.path(), &[]);
    daemon.write_pipeline("folder.toml", &folder_pipeline(&daemon, &input, options));
    daemon.wait_batches("folder", 1);
    Ok((root, daemon, input))
}

#[test]
fn with_watch_off_new_files_are_found_by_listing_without_an_inotify_watch() -> TestResult {
    let (_root, daemon, input) = folder_daemon("watch = false\nlist_interval = \"1s\"")?;
    assert_eq!(inotify_watches_on(daemon.weir.pid(), &input)?, 0);
    // No event tells weir about this file: only a listing finds it.
    std::fs::write(input.join("a.txt"), "listed\n")?;
    daemon.wait_batches("folder", 2);
    assert_eq!(values(&daemon.path("out")), ["listed"]);
    Ok(())
}

#[test]
fn a_folder_removed_and_made_again_is_reported_then_read_and_watched_again() -> TestResult {
    // An hour between listings: new files are found by the folder's events.
    let (_root, daemon, input) = folder_daemon("list_interval = \"1h\"")?;
    assert_eq!(inotify_watches_on(daemon.weir.pid(), &input)?, 1);
    std::fs::remove_dir(&input)?;
    let missing = format!("cannot list {}", input.display());
    daemon.wait_status("the missing folder in the status", SOON, |s| {
        find(s, "folder").is_some_and(|p| {
            p["source_status"]
                .as_str()
                .is_some_and(|t| t.starts_with(&missing))
        })
    });
    std::fs::create_dir(&input)?;
    std::fs::write(input.join("a.txt"), "first\n")?;
    daemon.wait_batches("folder", 2);
    daemon.wait_status("the status cleared", SOON, |s| {
        find(s, "folder").is_some_and(|p| p["source_status"].is_null())
    });
    assert_eq!(inotify_watches_on(daemon.weir.pid(), &input)?, 1);
    std::fs::write(input.join("b.txt"), "second\n")?;
    daemon.wait_batches("folder", 3);
    assert_eq!(values(&daemon.path("out")), ["first", "second"]);
    Ok(())
}
