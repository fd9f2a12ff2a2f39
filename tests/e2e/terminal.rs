//! weir in a real terminal: tmux runs `weir top` against a real daemon and `weir run` with its
//! progress bars; the tests read the screen with `capture-pane` and type with `send-keys`.

use crate::daemon_harness::{Daemon, SOON, counting_pipeline};
use crate::harness::{TestResult, Weir, weir_bin};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of the test's own (its own socket name), killed with everything in it when
/// dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server running `command` in session `top`, in a terminal of 140 × 20.
    fn start(test: &str, command: &str) -> Result<Tmux, String> {
        let tmux = Tmux {
            socket: format!("weir-{test}-{}", std::process::id()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "140",
            "-y",
            "20",
            command,
        ])?;
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|e| format!("tmux could not be run (scripts/setup installs it): {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "tmux {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn screen(&self) -> Result<String, String> {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Reads the screen until `done` holds; fails with the last screen after `deadline`.
    fn wait_screen(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let screen = self.screen()?;
            if done(&screen) {
                return Ok(screen);
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "{what}: not on the screen after {deadline:?}:\n{screen}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.trim_start().starts_with(name))
}

#[test]
fn weir_top_in_a_real_terminal_shows_every_running_pipeline_with_its_rate_and_quits_on_q()
-> TestResult {
    let root = tempfile::tempdir()?;
    let daemon = Daemon::start(root.path(), &[]);
    daemon.write_pipeline("alpha.toml", &counting_pipeline("alpha", "a", "100ms", ""));
    daemon.write_pipeline("beta.toml", &counting_pipeline("beta", "b", "100ms", ""));
    daemon.wait_batches("alpha", 1);
    daemon.wait_batches("beta", 1);

    // The shell line after `weir top` shows its exit status once it has quit.
    let command = format!(
        "{} top --control-socket {} --interval 200ms; echo weir top exited with $?; sleep 600",
        weir_bin(),
        daemon.socket()
    );
    let tmux = Tmux::start("top", &command)?;
    // Both pipelines running, each with a rate (two polls have seen it): 10 rows every 100 ms.
    let screen = tmux.wait_screen("both pipelines with a rate", SOON, |screen| {
        ["alpha", "beta"].iter().all(|name| {
            row(screen, name).is_some_and(|r| {
                let cells: Vec<&str> = r.split_whitespace().collect();
                cells.get(1) == Some(&"running")
                    && cells
                        .get(2)
                        .is_some_and(|rate| rate.parse::<f64>().is_ok_and(|x| x > 0.0))
            })
        })
    })?;
    assert!(screen.contains("weir top — 2 running"), "{screen}");
    assert!(screen.contains("IN/S"), "{screen}");

    // Enter opens the selected (first) pipeline's details; Esc comes back.
    tmux.run(&["send-keys", "-t", "top", "Enter"])?;
    tmux.wait_screen("alpha's details", SOON, |screen| {
        screen.lines().any(|l| l.starts_with("pipeline   alpha"))
    })?;
    tmux.run(&["send-keys", "-t", "top", "Escape"])?;
    tmux.wait_screen("the table again", SOON, |screen| {
        row(screen, "beta").is_some()
    })?;

    tmux.run(&["send-keys", "-t", "top", "q"])?;
    tmux.wait_screen("weir top quitting", SOON, |screen| {
        screen.contains("weir top exited with 0")
    })?;
    Ok(())
}

/// Two runs with a known end, written to `root`: `generated` (200 000 rows of a bounded
/// generator, 20 000 a batch) and `files` (4 files, one a batch). Returns the two pipeline files.
fn bounded_runs(root: &std::path::Path) -> Result<[String; 2], std::io::Error> {
    let input = root.join("in");
    std::fs::create_dir_all(&input)?;
    for i in 0..4 {
        std::fs::write(input.join(format!("{i}.csv")), format!("{i}\n{}\n", i + 10))?;
    }
    let generated = root.join("generated.toml");
    std::fs::write(
        &generated,
        r#"name = "generated"
trigger = "available_now"

[source]
type = "datagen"
rows = 200000
rows_per_second = 1000
max_rows_per_batch = 20000

[[source.column]]
name = "n"
type = "long"

[[sink]]
type = "null"
"#,
    )?;
    let files = root.join("files.toml");
    std::fs::write(
        &files,
        format!(
            r#"name = "files"
trigger = "available_now"

[source]
type = "file"
path = "{}"
format = "csv"
max_files_per_trigger = 1

[[source.column]]
name = "n"
type = "long"

[[sink]]
type = "null"
"#,
            input.display()
        ),
    )?;
    Ok([
        generated.to_string_lossy().into_owned(),
        files.to_string_lossy().into_owned(),
    ])
}

#[test]
fn weir_run_on_a_terminal_draws_a_bar_per_bounded_pipeline_that_ends_at_its_total() -> TestResult {
    let root = tempfile::tempdir()?;
    let [generated, files] = bounded_runs(root.path())?;
    let command = format!(
        "{} run --state-dir {} {generated} {files}; echo weir run exited with $?; sleep 600",
        weir_bin(),
        root.path().join("state").display(),
    );
    let tmux = Tmux::start("run-bars", &command)?;
    let screen = tmux.wait_screen("weir run ending", SOON, |screen| {
        screen.contains("weir run exited with")
    })?;
    assert!(screen.contains("weir run exited with 0"), "{screen}");
    let bar = |name: &str| {
        screen
            .lines()
            .find(|l| l.starts_with(name) && l.contains('['))
            .unwrap_or_default()
            .to_string()
    };
    let generated_bar = bar("generated");
    assert!(
        generated_bar.contains("200,000/200,000 rows 100%"),
        "{screen}"
    );
    assert!(generated_bar.contains("200.0k rows read"), "{screen}");
    assert!(bar("files").contains("4/4 files 100%"), "{screen}");
    Ok(())
}

#[test]
fn weir_run_without_a_terminal_writes_no_progress_bars() -> TestResult {
    let root = tempfile::tempdir()?;
    let [generated, files] = bounded_runs(root.path())?;
    let state = root.path().join("state").to_string_lossy().into_owned();
    let mut weir = Weir::start(&["run", "--state-dir", &state, &generated, &files]);
    let status = weir.wait_exit(SOON);
    assert!(status.success(), "{}", weir.stderr());
    assert_eq!(weir.stdout(), "");
    let stderr = weir.stderr();
    assert!(
        !stderr.contains("100%") && !stderr.contains("[="),
        "{stderr}"
    );
    Ok(())
}
