//! Daemon benchmark: the real `weir daemon` binary on its own folders, measured from outside.
//!
//! - reload latency: a pipeline file's write (atomic rename) → the new version's first
//!   committed batch;
//! - plugin swap latency: a `.wasm` write → the first batch committed on the new plugin;
//! - start-up: process start → `READY=1` on a real `NOTIFY_SOCKET`, with 20 pipelines;
//! - idle cost: RSS and CPU time of a daemon with 10 idle pipelines over a minute.
//!
//! Run: `./scripts/build-plugins && cargo bench -p weir --bench daemon`
//! (`WEIR_BENCH_ROUNDS=20` rounds per latency, `WEIR_BENCH_IDLE_SECONDS=60`).

use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir::admin::client::ask;
use weir::admin::protocol::Request;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn plugins() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("plugins/fixtures");
    if !dir.join("scale_by_2.wasm").is_file() {
        panic!(
            "no fixture plugins in {}: run ./scripts/build-plugins first",
            dir.display()
        );
    }
    dir
}

struct Daemon {
    child: Child,
    root: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn start(root: &Path, notify: Option<&Path>) -> Daemon {
    for dir in ["pipelines", "plugins", "state", "out"] {
        let _ = std::fs::create_dir_all(root.join(dir));
    }
    let path = |name: &str| root.join(name).to_string_lossy().into_owned();
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .args(["daemon", "--pipelines-dir", &path("pipelines")])
        .args([
            "--plugins-dir",
            &path("plugins"),
            "--state-dir",
            &path("state"),
        ])
        .args(["--control-socket", &path("control.sock"), "--http", "off"])
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(socket) = notify {
        command.env("NOTIFY_SOCKET", socket);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start weir: {err}"));
    Daemon {
        child,
        root: root.to_path_buf(),
    }
}

impl Daemon {
    fn status(&self) -> Option<Value> {
        let response = ask(
            &self.root.join("control.sock"),
            &Request::Status { pipeline: None },
            Duration::from_secs(10),
        )
        .ok()?;
        response.result
    }

    fn pipeline(&self, name: &str) -> Option<Value> {
        self.status()?["pipelines"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    /// Polls every millisecond until `done`; the time it took.
    fn wait(&self, what: &str, done: impl Fn(&Value) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.status()
                && done(&status)
            {
                return start.elapsed();
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!("waited a minute for {what}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn write(&self, dir: &str, name: &str, bytes: &[u8]) {
        let tmp = self.root.join(dir).join(format!(".{name}.tmp"));
        let to = self.root.join(dir).join(name);
        if let Err(err) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &to)) {
            panic!("cannot write {}: {err}", to.display());
        }
    }
}

fn find<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["pipelines"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn pipeline(name: &str, out: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ntrigger = {{ processing_time = \"10ms\" }}\n[source]\ntype = \"rate_micro_batch\"\nrows_per_batch = 100\n{extra}\n[[sink]]\ntype = \"file\"\npath = \"../out/{out}\"\nformat = \"json\"\n"
    )
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} min {:.1} ms, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(samples[samples.len() - 1])
    );
}

fn reload_latency(rounds: u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let daemon = start(dir.path(), None);
    daemon.write("pipelines", "p.toml", pipeline("p", "v0", "").as_bytes());
    daemon.wait("the first version", |s| {
        find(s, "p").is_some_and(|p| p["batches"].as_u64().unwrap_or(0) >= 1)
    });
    let mut samples = Vec::new();
    for round in 1..=rounds {
        let written = Instant::now();
        daemon.write(
            "pipelines",
            "p.toml",
            pipeline("p", &format!("v{round}"), "").as_bytes(),
        );
        let wanted = round + 1;
        daemon.wait("the new version's first batch", |s| {
            find(s, "p").is_some_and(|p| {
                p["generation"].as_u64() == Some(wanted) && p["batches"].as_u64().unwrap_or(0) >= 1
            })
        });
        samples.push(written.elapsed());
    }
    summary(
        "pipeline file write → new version's first committed batch",
        samples,
    );
}

fn plugin_swap_latency(rounds: u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fixtures = plugins();
    let versions = [
        std::fs::read(fixtures.join("scale_by_2.wasm")).unwrap_or_default(),
        std::fs::read(fixtures.join("scale_by_3.wasm")).unwrap_or_default(),
    ];
    let daemon = start(dir.path(), None);
    daemon.write("plugins", "scale.wasm", &versions[0]);
    daemon.write(
        "pipelines",
        "p.toml",
        pipeline("p", "out", "[[transform]]\nplugin = \"scale\"\n").as_bytes(),
    );
    daemon.wait("the first version", |s| {
        find(s, "p").is_some_and(|p| p["batches"].as_u64().unwrap_or(0) >= 1)
    });
    let mut samples = Vec::new();
    for round in 1..=rounds {
        let before = daemon
            .pipeline("p")
            .and_then(|p| p["generation"].as_u64())
            .unwrap_or(0);
        let written = Instant::now();
        daemon.write("plugins", "scale.wasm", &versions[(round % 2) as usize]);
        // The swap is acknowledged at a batch boundary; the next commit is on the new plugin.
        let mut swapped_at_batches = None;
        let start = Instant::now();
        loop {
            let status = daemon.status().unwrap_or_default();
            let p = find(&status, "p").cloned().unwrap_or_default();
            let batches = p["batches"].as_u64().unwrap_or(0);
            if p["generation"].as_u64().unwrap_or(0) > before {
                match swapped_at_batches {
                    None => swapped_at_batches = Some(batches),
                    Some(at) if batches > at => break,
                    Some(_) => {}
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!("the swap did not happen");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        samples.push(written.elapsed());
    }
    summary(
        ".wasm write → first batch committed on the new plugin",
        samples,
    );
}

fn start_to_ready(rounds: u64, pipelines: usize) {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for folder in ["pipelines", "plugins", "state", "out"] {
            let _ = std::fs::create_dir_all(dir.path().join(folder));
        }
        for i in 0..pipelines {
            let _ = std::fs::write(
                dir.path().join(format!("pipelines/p{i}.toml")),
                pipeline(&format!("p{i}"), &format!("p{i}"), ""),
            );
        }
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap_or_else(|e| panic!("{e}"));
        let _ = socket.set_read_timeout(Some(Duration::from_secs(60)));
        let started = Instant::now();
        let _daemon = start(dir.path(), Some(&socket_path));
        let mut buf = [0u8; 4096];
        loop {
            let n = socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no READY: {e}"));
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    summary(
        &format!("process start → READY=1 with {pipelines} pipelines"),
        samples,
    );
}

fn proc_stat(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    (rss_kib, ticks)
}

fn idle_cost(seconds: u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for folder in ["pipelines", "plugins", "state", "out", "in"] {
        let _ = std::fs::create_dir_all(dir.path().join(folder));
    }
    // Idle: file sources on empty folders and listening sockets nobody connects to.
    for i in 0..10 {
        let source = if i % 2 == 0 {
            format!("type = \"file\"\npath = \"../in/{i}\"\nformat = \"text\"\n")
        } else {
            "type = \"socket\"\nmode = \"listen\"\nbind = \"127.0.0.1:0\"\n".to_string()
        };
        let _ = std::fs::create_dir_all(dir.path().join(format!("in/{i}")));
        let _ = std::fs::write(
            dir.path().join(format!("pipelines/idle{i}.toml")),
            format!("name = \"idle{i}\"\n[source]\n{source}\n[[sink]]\ntype = \"null\"\n"),
        );
    }
    let daemon = start(dir.path(), None);
    daemon.wait("10 running pipelines", |s| s["counts"]["running"] == 10);
    std::thread::sleep(Duration::from_secs(2));
    let pid = daemon.child.id();
    let (_, before) = proc_stat(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (rss_kib, after) = proc_stat(pid);
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let cpu_seconds = (after - before) as f64 / ticks_per_second;
    println!(
        "idle daemon with 10 pipelines: RSS {:.1} MB, CPU {:.2} s over {:.0} s ({:.2} % of one core)",
        rss_kib as f64 / 1024.0,
        cpu_seconds,
        started.elapsed().as_secs_f64(),
        cpu_seconds / started.elapsed().as_secs_f64() * 100.0
    );
}

fn main() {
    let rounds = env_number("WEIR_BENCH_ROUNDS", 20);
    reload_latency(rounds);
    plugin_swap_latency(rounds);
    start_to_ready(rounds.min(10), 20);
    idle_cost(env_number("WEIR_BENCH_IDLE_SECONDS", 60));
}
