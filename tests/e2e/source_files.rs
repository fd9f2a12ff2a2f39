//! Helpers shared by the socket, file and malformed-input tests: reading a file sink's output
//! and finding what weir logged.

use crate::harness::Weir;
use std::path::Path;
use std::time::Duration;

/// Every row of a file sink's JSON output, in batch order, with the part file each came from.
/// Temporary files of a batch that never finished (`.part-…`) are skipped.
pub fn json_rows(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    names.sort();
    let mut rows = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        for line in text.lines() {
            match serde_json::from_str(line) {
                Ok(value) => rows.push((name.clone(), value)),
                Err(err) => panic!("{name}: not JSON ({err}): {line}"),
            }
        }
    }
    rows
}

/// The `value` strings of a file sink's output.
pub fn values(dir: &Path) -> Vec<String> {
    json_rows(dir)
        .into_iter()
        .filter_map(|(_, v)| v["value"].as_str().map(str::to_string))
        .collect()
}

/// The port a `listen` socket source logged ("socket source listening on 127.0.0.1:PORT").
pub fn listening_port(stderr: &str) -> Option<u16> {
    let at = stderr.find("socket source listening on ")?;
    let rest = &stderr[at + "socket source listening on ".len()..];
    let addr = rest.split_whitespace().next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

/// Runs `weir run` on the pipeline `file` (a listening socket source) with its state in
/// `state`, and returns it with the port it listens on, once it does.
pub fn run_listening(state: &Path, file: &Path) -> (Weir, u16) {
    let weir = Weir::start(&[
        "run",
        "--state-dir",
        &state.to_string_lossy(),
        &file.to_string_lossy(),
    ]);
    weir.wait_for("the listening port", Duration::from_secs(30), |_, err| {
        listening_port(err).is_some()
    });
    let port = listening_port(&weir.stderr()).unwrap_or(0);
    (weir, port)
}
