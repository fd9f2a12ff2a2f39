//! A real full disk (a small tmpfs), under a file sink and under the state store. The pipeline
//! that hits it fails with the file system's own words, another pipeline in the same daemon
//! carries on, what was committed stays whole, and once there is room again a restart picks up
//! the failed batch and loses or repeats nothing.

use crate::harness::{TestResult, Weir, pipeline_file};
use crate::recovery::{files_in, read_output};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "weir-test",
            path(dir),
        ])?;
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Gives the file system room again, keeping what is on it.
    fn resize(&self, size: &str) -> Result<(), String> {
        mount(&["-o", &format!("remount,size={size}"), path(&self.dir)])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn path(dir: &Path) -> &str {
    dir.to_str().unwrap_or_default()
}

fn mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?} failed (this test needs root or CAP_SYS_ADMIN for a tmpfs): {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn rate_to_files(name: &str, rows_per_second: u32, out: &Path) -> String {
    format!(
        r#"name = "{name}"
trigger = {{ processing_time = "200ms" }}
[source]
type = "rate"
rows_per_second = {rows_per_second}

[[sink]]
type = "file"
path = "{}"
format = "json"
"#,
        out.display()
    )
}

fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_full_disk_fails_only_its_pipeline_and_a_restart_with_room_loses_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    // ~55 bytes a row; rate releases a second's rows at once, so 1000 rows/s write a ~55 KB file
    // a second and fill 256 KiB after four or so.
    let small = Tmpfs::mount(&dir.path().join("small"), "256k")?;
    let healthy_out = dir.path().join("healthy");
    let full = pipeline_file(
        dir.path(),
        "full.toml",
        &rate_to_files("to-a-full-disk", 1000, &small.dir),
    );
    let healthy = pipeline_file(
        dir.path(),
        "healthy.toml",
        &rate_to_files("healthy", 100, &healthy_out),
    );
    let state = dir.path().join("state");
    let (full, healthy, state) = (path(&full), path(&healthy), path(&state));

    let mut weir = Weir::start(&["run", "--state-dir", state, full, healthy]);
    weir.wait_for("the full pipeline to fail", DEADLINE, |_, err| {
        err.contains("pipeline failed")
    });
    let stderr = weir.stderr();
    let failure = stderr
        .lines()
        .find(|l| l.contains("pipeline failed"))
        .ok_or("no failure line")?;
    assert!(
        failure.contains("ERROR")
            && failure.contains("to-a-full-disk")
            && failure.contains("No space left on device")
            && failure.contains(path(&small.dir)),
        "the failure should name the pipeline, the file and the cause: {failure}"
    );
    assert!(
        files_in(&small.dir) >= 2,
        "batches committed before the disk filled up"
    );
    assert_eq!(temporary_files(&small.dir), Vec::<String>::new());

    // The other pipeline goes on writing.
    let seen = files_in(&healthy_out);
    let out = healthy_out.clone();
    weir.wait_for(
        "the healthy pipeline's next files",
        DEADLINE,
        move |_, _| files_in(&out) >= seen + 3,
    );
    assert!(weir.is_running());
    weir.signal(Signal::SIGTERM);
    let status = weir.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(1),
        "a failed pipeline makes the exit code 1"
    );
    assert!(
        weir.stderr()
            .contains("weir: pipeline `to-a-full-disk` failed"),
        "{}",
        weir.stderr()
    );
    let committed_before = read_output(&small.dir)?;

    // Room again: the restart writes the batch that failed, then carries on.
    small.resize("64m")?;
    let before = files_in(&small.dir);
    let mut weir = Weir::start(&["run", "--state-dir", state, full]);
    let out = small.dir.clone();
    weir.wait_for("new files after the restart", DEADLINE, move |_, _| {
        files_in(&out) >= before + 3
    });
    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());

    let rows = read_output(&small.dir)?;
    let last = *rows.keys().last().ok_or("no rows")?;
    assert_eq!(
        rows.len() as i64,
        last + 1,
        "values 0..={last} are not all there exactly once"
    );
    for (value, ts) in &committed_before {
        assert_eq!(rows.get(value), Some(ts), "committed value {value} changed");
    }
    assert!(last as usize > committed_before.len());
    Ok(())
}

/// Update-mode counts per key, replayed from every output file in batch order: key → count.
/// Panics if a batch emits a key twice or a count goes down.
fn final_counts(dir: &Path) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.retain(|n| !n.starts_with('.'));
    names.sort(); // part-<zero-padded batch id>.json
    let mut counts = vec![0u64; KEYS];
    for name in names {
        let mut emitted = std::collections::HashSet::new();
        for line in std::fs::read_to_string(dir.join(&name))?.lines() {
            let row: serde_json::Value = serde_json::from_str(line)?;
            let id = row["id"].as_u64().ok_or("id")? as usize;
            let count = row["count"].as_u64().ok_or("count")?;
            assert!(emitted.insert(id), "{name} emits key {id} twice");
            assert!(count >= counts[id], "{name}: the count of {id} went down");
            counts[id] = count;
        }
    }
    Ok(counts)
}

const KEYS: usize = 500_000;
const ROWS_PER_KEY: u64 = 3;

#[test]
fn a_full_state_store_fails_the_pipeline_and_a_restart_with_room_counts_every_row_once()
-> TestResult {
    let dir = tempfile::tempdir()?;
    // Half a million keys outgrow 16 MiB of RocksDB (its write-ahead log and first flush) within
    // a few batches.
    let state = Tmpfs::mount(&dir.path().join("state"), "16m")?;
    let out = dir.path().join("out");
    let text = format!(
        r#"name = "many-keys"
output_mode = "update"
trigger = "available_now"
[source]
type = "datagen"
rows = {rows}
max_rows_per_batch = 100000
[[source.column]]
name = "id"
type = "long"
min = 0
max = {max_id}

[aggregate]
group_by = ["id"]
functions = [ {{ fn = "count" }} ]

[[sink]]
type = "file"
path = "{out}"
format = "json"
"#,
        rows = KEYS as u64 * ROWS_PER_KEY,
        max_id = KEYS - 1,
        out = out.display()
    );
    let file = pipeline_file(dir.path(), "p.toml", &text);
    let args = ["run", "--state-dir", path(&state.dir), path(&file)];

    let mut weir = Weir::start(&args);
    let status = weir.wait_exit(DEADLINE);
    let stderr = weir.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let failure = stderr
        .lines()
        .find(|l| l.contains("pipeline failed"))
        .ok_or_else(|| format!("no failure line in\n{stderr}"))?;
    assert!(
        failure.contains("many-keys")
            && failure.contains("state store")
            && failure.contains("No space left on device"),
        "the failure should name the pipeline, the store and the cause: {failure}"
    );

    // Room again: the restart resumes from the last commit and finishes the table.
    state.resize("256m")?;
    let mut weir = Weir::start(&args);
    assert!(weir.wait_exit(DEADLINE).success(), "{}", weir.stderr());
    assert!(
        weir.stderr().contains("replaying batch"),
        "the restart should replay the batch that failed:\n{}",
        weir.stderr()
    );

    let counts = final_counts(&out)?;
    let wrong: Vec<(usize, u64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != ROWS_PER_KEY)
        .map(|(id, c)| (id, *c))
        .take(5)
        .collect();
    assert_eq!(
        wrong,
        Vec::new(),
        "keys whose final count is not {ROWS_PER_KEY}"
    );
    Ok(())
}
