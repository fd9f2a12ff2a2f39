//! Starting `weir daemon` on folders of its own, talking to it with the real CLI, and reading
//! what its pipelines wrote.

use crate::harness::{Weir, weir_bin};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long a daemon may take to become ready (a cold plugin compile included).
pub const READY: Duration = Duration::from_secs(60);
/// How long a change may take to show (debounce, reload, a batch).
pub const SOON: Duration = Duration::from_secs(20);

/// The built plugins (examples; fixtures in `fixtures/`), by `./scripts/build-plugins`,
/// checked to be newer than their sources.
pub fn built_plugins() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    crate::built_plugins::built_plugins_in(&target)
}

/// A running daemon on a temporary folder holding `pipelines/`, `plugins/`, `state/`, `out/`
/// and the control socket.
pub struct Daemon {
    /// The process.
    pub weir: Weir,
    /// The folder.
    pub root: PathBuf,
    /// The HTTP API's address, when it listens.
    pub http: Option<String>,
}

/// The daemon's folders under `root`, made if missing.
pub fn folders(root: &Path) {
    for dir in ["pipelines", "plugins", "state", "out"] {
        if let Err(err) = std::fs::create_dir_all(root.join(dir)) {
            panic!("cannot create {}: {err}", root.join(dir).display());
        }
    }
}

/// The flags that put a daemon on `root`'s folders (HTTP on a free loopback port).
pub fn daemon_args(root: &Path) -> Vec<String> {
    let path = |name: &str| root.join(name).to_string_lossy().into_owned();
    vec![
        "daemon".into(),
        "--pipelines-dir".into(),
        path("pipelines"),
        "--plugins-dir".into(),
        path("plugins"),
        "--state-dir".into(),
        path("state"),
        "--control-socket".into(),
        path("control.sock"),
        "--http".into(),
        "127.0.0.1:0".into(),
        "--shutdown-timeout".into(),
        "10s".into(),
    ]
}

impl Daemon {
    /// Starts a daemon on `root` with `extra` flags and waits until it is ready.
    pub fn start(root: &Path, extra: &[&str]) -> Daemon {
        Self::start_with(root, extra, |_| {})
    }

    /// As [`Daemon::start`], letting `setup` change the command (environment variables).
    pub fn start_with(root: &Path, extra: &[&str], setup: impl FnOnce(&mut Command)) -> Daemon {
        folders(root);
        let mut args = daemon_args(root);
        // A flag in `extra` replaces the default one.
        for flag in extra.iter().filter(|a| a.starts_with("--")) {
            if let Some(i) = args.iter().position(|a| a == flag) {
                args.drain(i..i + 2);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let weir = Weir::start_with(&args, None, setup);
        weir.wait_for("weir daemon ready", READY, |_, err| {
            err.contains("weir daemon ready")
        });
        let http = weir.stderr().lines().find_map(|line| {
            line.split("HTTP API on http://")
                .nth(1)
                .map(|addr| addr.trim().to_string())
        });
        Daemon {
            weir,
            root: root.to_path_buf(),
            http,
        }
    }

    /// A path under the daemon's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The control socket.
    pub fn socket(&self) -> String {
        self.path("control.sock").to_string_lossy().into_owned()
    }

    /// Runs a client verb (`status`, `reload`, ...) against this daemon.
    pub fn client(&self, args: &[&str]) -> Output {
        client_at(&self.socket(), args)
    }

    /// `weir status --json` (or one pipeline's).
    pub fn status(&self, pipeline: Option<&str>) -> Value {
        let mut args = vec!["status", "--json"];
        args.extend(pipeline);
        let out = self.client(&args);
        assert!(
            out.status.success(),
            "weir status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!(
                "weir status --json printed no JSON ({err}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Polls the whole status until `done` holds; panics with the status and the log after
    /// `deadline`.
    pub fn wait_status(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let status = self.status(None);
            if done(&status) {
                return status;
            }
            if Instant::now() >= end {
                panic!(
                    "waited {deadline:?} for {what}\n--- status ---\n{status:#}\n--- stderr ---\n{}",
                    self.weir.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until pipeline `name` has committed at least `batches` batches in its current run.
    pub fn wait_batches(&self, name: &str, batches: u64) -> Value {
        self.wait_status(&format!("{batches} batches of `{name}`"), SOON, |s| {
            find(s, name).is_some_and(|p| p["batches"].as_u64().unwrap_or(0) >= batches)
        })
    }

    /// Writes a pipeline file the way careful tools do: a temporary file, then a rename.
    pub fn write_pipeline(&self, file: &str, text: &str) {
        let path = self.path("pipelines").join(file);
        let tmp = self.path("pipelines").join(format!(".{file}.tmp"));
        if let Err(err) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            panic!("cannot write {}: {err}", path.display());
        }
    }

    /// Copies a plugin file into the plugins folder as `name.wasm`, atomically.
    pub fn install_plugin(&self, from: &Path, name: &str) {
        let to = self.path("plugins").join(format!("{name}.wasm"));
        let tmp = self.path("plugins").join(format!(".{name}.wasm.tmp"));
        if let Err(err) = std::fs::copy(from, &tmp).and_then(|_| std::fs::rename(&tmp, &to)) {
            panic!(
                "cannot install {} as {}: {err}",
                from.display(),
                to.display()
            );
        }
    }

    /// Lines of the daemon's log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.weir
            .stderr()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

/// A pipeline in a whole status.
pub fn find<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["pipelines"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// Runs `weir ARGS --control-socket SOCKET`.
pub fn client_at(socket: &str, args: &[&str]) -> Output {
    let mut command = Command::new(weir_bin());
    command
        .args(args)
        .args(["--control-socket", socket])
        .env("TZ", "UTC")
        .env_remove("WEIR_LOG");
    match command.output() {
        Ok(out) => out,
        Err(err) => panic!("cannot run weir {args:?}: {err}"),
    }
}

/// The JSON rows of every `part-*.json` file in `dir`, by batch id (from the file name).
pub fn parts(dir: &Path) -> Vec<(u64, Vec<Value>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("part-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|id| id.parse::<u64>().ok())
        else {
            continue;
        };
        if !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let rows = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        out.push((id, rows));
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

/// The `value` of every row written to `dirs`, sorted: a run with no gap and no duplicate
/// gives `0..n`.
pub fn values_written(dirs: &[PathBuf]) -> Vec<i64> {
    let mut values: Vec<i64> = dirs
        .iter()
        .flat_map(|d| parts(d))
        .flat_map(|(_, rows)| rows)
        .filter_map(|row| row["value"].as_i64())
        .collect();
    values.sort_unstable();
    values
}

/// Panics unless `values` is exactly `0..values.len()`, naming the first gap or duplicate.
pub fn assert_no_gap_no_duplicate(values: &[i64]) {
    for (i, v) in values.iter().enumerate() {
        if *v != i as i64 {
            let what = if i > 0 && values[i - 1] == *v {
                "duplicate"
            } else {
                "gap"
            };
            panic!(
                "{what} at position {i}: found {v}, expected {i} (rows around: {:?})",
                &values[i.saturating_sub(3)..(i + 3).min(values.len())]
            );
        }
    }
}

/// A pipeline of `rate_micro_batch` rows (`value` = 0, 1, 2, ... across batches) every
/// `every`, written as JSON to `out/<out>`; `extra` goes before `[[sink]]`.
pub fn counting_pipeline(name: &str, out: &str, every: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
trigger = {{ processing_time = "{every}" }}

[source]
type = "rate_micro_batch"
rows_per_batch = 10
{extra}
[[sink]]
type = "file"
path = "../out/{out}"
format = "json"
"#
    )
}

/// Sends an HTTP/1.1 request (raw bytes) and returns the status code and the body.
pub fn http_raw(addr: &str, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = match std::net::TcpStream::connect(addr) {
        Ok(stream) => stream,
        Err(err) => panic!("cannot connect to {addr}: {err}"),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if let Err(err) = stream.write_all(request) {
        panic!("cannot send to {addr}: {err}");
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// `GET path` with `Connection: close`.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}
