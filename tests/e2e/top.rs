//! `weir top` in a real terminal: tmux runs it against a real daemon, the test reads the screen
//! with `capture-pane` and types with `send-keys`.

use crate::daemon_harness::{Daemon, SOON, counting_pipeline};
use crate::harness::{TestResult, weir_bin};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of the test's own (its own socket name), killed with everything in it when
/// dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: format!("weir-top-test-{}", std::process::id()),
        }
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

    let tmux = Tmux::new();
    // The shell line after `weir top` shows its exit status once it has quit.
    let command = format!(
        "{} top --control-socket {} --interval 200ms; echo weir top exited with $?; sleep 600",
        weir_bin(),
        daemon.socket()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "140",
        "-y",
        "20",
        &command,
    ])?;
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
