//! Starting `weir` as a child process and waiting on what it prints, with deadlines.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::machine::Share;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The weir binary cargo built for these tests.
pub fn weir_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weir")
}

/// The repository root, from the crate's folder as cargo names it to the running test (so a
/// test binary built in a shared target folder from another checkout runs on this one), or
/// as it was at compile time.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
}

#[derive(Default)]
struct Output {
    stdout: String,
    stderr: String,
    closed: usize,
}

/// A running weir process whose stdout and stderr are collected as they arrive.
pub struct Weir {
    child: Child,
    output: Arc<(Mutex<Output>, Condvar)>,
    /// When the process was spawned.
    pub started: Instant,
    // Dropped after `Drop for Weir` has ended the process.
    _share: Share,
}

fn pump(
    stream: impl Read + Send + 'static,
    output: Arc<(Mutex<Output>, Condvar)>,
    is_stdout: bool,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap_or(0);
            let (lock, cvar) = &*output;
            let Ok(mut out) = lock.lock() else { return };
            if n == 0 {
                out.closed += 1;
                cvar.notify_all();
                return;
            }
            if is_stdout {
                out.stdout.push_str(&line);
            } else {
                out.stderr.push_str(&line);
            }
            cvar.notify_all();
        }
    });
}

impl Weir {
    /// Starts `weir ARGS...` with timestamps shown in UTC.
    pub fn start(args: &[&str]) -> Weir {
        Self::start_in(args, None)
    }

    /// Starts weir in a working directory.
    pub fn start_in(args: &[&str], cwd: Option<&Path>) -> Weir {
        Self::start_with(args, cwd, |_| {})
    }

    /// Starts weir, letting `setup` change the command first (environment variables).
    pub fn start_with(args: &[&str], cwd: Option<&Path>, setup: impl FnOnce(&mut Command)) -> Weir {
        Self::start_program(weir_bin(), args, cwd, setup)
    }

    /// Starts `program` (weir itself, or a tool that runs weir, such as strace) with `args`.
    pub fn start_program(
        program: &str,
        args: &[&str],
        cwd: Option<&Path>,
        setup: impl FnOnce(&mut Command),
    ) -> Weir {
        let mut command = Command::new(program);
        command
            .args(args)
            .env("TZ", "UTC")
            .env_remove("WEIR_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        setup(&mut command);
        let share = Share::take();
        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => panic!("cannot start {}: {err}", weir_bin()),
        };
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        if let Some(stdout) = child.stdout.take() {
            pump(stdout, output.clone(), true);
        }
        if let Some(stderr) = child.stderr.take() {
            pump(stderr, output.clone(), false);
        }
        Weir {
            child,
            output,
            started,
            _share: share,
        }
    }

    /// Waits until `done(stdout, stderr)` holds (it may also look at files); panics with everything printed if the deadline
    /// passes or the process closes its output first.
    pub fn wait_for(&self, what: &str, deadline: Duration, done: impl Fn(&str, &str) -> bool) {
        let (lock, cvar) = &*self.output;
        let end = Instant::now() + deadline;
        let Ok(mut out) = lock.lock() else {
            panic!("output lock poisoned")
        };
        loop {
            if done(&out.stdout, &out.stderr) {
                return;
            }
            let now = Instant::now();
            if now >= end || out.closed == 2 {
                panic!(
                    "waited {deadline:?} for {what}; {} ({:?} after start)\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    if out.closed == 2 {
                        "weir closed its output"
                    } else {
                        "deadline passed"
                    },
                    self.started.elapsed(),
                    tail(&out.stdout),
                    out.stderr
                );
            }
            // Output wakes us at once; conditions on files are rechecked every few milliseconds.
            out = match cvar.wait_timeout(out, (end - now).min(Duration::from_millis(20))) {
                Ok((guard, _)) => guard,
                Err(_) => panic!("output lock poisoned"),
            };
        }
    }

    /// Waits until stdout contains `needle`.
    pub fn wait_for_stdout(&self, needle: &str, deadline: Duration) {
        self.wait_for(&format!("{needle:?} on stdout"), deadline, |out, _| {
            out.contains(needle)
        });
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.output
            .0
            .lock()
            .map(|o| o.stdout.clone())
            .unwrap_or_default()
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.output
            .0
            .lock()
            .map(|o| o.stderr.clone())
            .unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if let Err(err) = nix::sys::signal::kill(pid, signal) {
            panic!("cannot send {signal}: {err}");
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`, and reap.
    pub fn kill9(mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, and for its output to be fully read.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.wait_for("output to close", Duration::from_secs(5), |_, _| true);
                    let (lock, cvar) = &*self.output;
                    if let Ok(out) = lock.lock() {
                        let _ =
                            cvar.wait_timeout_while(out, Duration::from_secs(5), |o| o.closed < 2);
                    }
                    return status;
                }
                Ok(None) if Instant::now() < end => {
                    // Exit is not observable through the output pipes alone; poll the child.
                    std::thread::park_timeout(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    panic!(
                        "weir did not exit within {deadline:?}\n--- stderr ---\n{}",
                        self.stderr()
                    );
                }
                Err(err) => panic!("wait failed: {err}"),
            }
        }
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(4000);
    let mut i = start;
    while !text.is_char_boundary(i) {
        i += 1;
    }
    &text[i..]
}

/// Writes a pipeline file into `dir`.
pub fn pipeline_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Err(err) = std::fs::write(&path, text) {
        panic!("cannot write {}: {err}", path.display());
    }
    path
}

/// Counts `Batch: N` banners in console output.
pub fn batches_printed(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.starts_with("Batch: ")).count()
}

/// Lines at ERROR or WARN level in weir's log, but for the warnings that say a pipeline falls
/// behind its trigger or its event time: those depend on how busy the machine is, not on
/// whether weir did its job.
pub fn error_or_warn_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .filter(|l| {
            !l.contains("falling behind its trigger") && !l.contains("watermark lag has grown")
        })
        .collect()
}
