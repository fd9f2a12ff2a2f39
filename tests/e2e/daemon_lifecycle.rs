//! Pipelines' lives under the daemon: restarts after the outside world's failures, waiting for
//! a change after the pipeline's own, isolation from each other, stopping a stuck batch at the
//! deadline, reloading while a sink fails, and editors' ways of saving a file.

use crate::daemon_harness::{
    Daemon, SOON, assert_no_gap_no_duplicate, built_plugins, counting_pipeline, find,
    values_written,
};
use crate::harness::TestResult;
use std::time::{Duration, Instant};

#[test]
fn a_failure_of_the_outside_world_restarts_with_backoff_and_a_fix_of_the_world_recovers()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--restart-first-backoff",
            "200ms",
            "--restart-max-backoff",
            "1s",
        ],
    );
    // The sink's folder is a file: every write fails with an I/O error.
    std::fs::write(daemon.path("out/blocked"), "not a folder")?;
    daemon.write_pipeline("p.toml", &counting_pipeline("p", "blocked", "20ms", ""));
    let status = daemon.wait_status("a restart", SOON, |s| {
        find(s, "p").is_some_and(|p| p["restarts"].as_u64().unwrap_or(0) >= 2)
    });
    let p = find(&status, "p").cloned().unwrap_or_default();
    let error = p["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(error.contains("cannot write"), "{p:#}");
    // The restarts wait 200 ms, then twice as long each time.
    for (attempt, wait) in [(1, "200ms"), (2, "400ms")] {
        let needle = format!("pipeline failed; restarting in {wait} (attempt {attempt})");
        assert_eq!(daemon.log_lines(&needle).len(), 1, "{needle}");
    }
    // Make room: the next restart writes, from where the checkpoint is, nothing lost.
    std::fs::remove_file(daemon.path("out/blocked"))?;
    std::fs::create_dir(daemon.path("out/blocked"))?;
    daemon.wait_status("recovery", SOON, |s| {
        find(s, "p")
            .is_some_and(|p| p["state"] == "running" && p["batches"].as_u64().unwrap_or(0) >= 3)
    });
    daemon.client(&["stop", "p"]);
    assert_no_gap_no_duplicate(&values_written(&[daemon.path("out/blocked")]));
    Ok(())
}

#[test]
fn a_failure_of_the_pipelines_own_making_waits_for_its_file_to_change() -> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &["--restart-first-backoff", "100ms"]);
    daemon.install_plugin(&built_plugins().join("fixtures/wrong_schema.wasm"), "wrong");
    daemon.write_pipeline(
        "p.toml",
        &counting_pipeline("p", "p", "20ms", "[[transform]]\nplugin = \"wrong\"\n"),
    );
    let status = daemon.wait_status("the failure", SOON, |s| {
        find(s, "p").is_some_and(|p| p["state"] == "failed")
    });
    let p = find(&status, "p").cloned().unwrap_or_default();
    assert_eq!(p["class"], "user", "{p:#}");
    assert_eq!(p["restarts"], 0, "{p:#}");
    let table = String::from_utf8_lossy(&daemon.client(&["status"]).stdout).into_owned();
    assert!(table.contains("failed (transform #1"), "{table}");
    // A fixed file is a new version: it starts.
    daemon.write_pipeline("p.toml", &counting_pipeline("p", "p", "20ms", ""));
    daemon.wait_status("the new version", SOON, |s| {
        find(s, "p").is_some_and(|p| p["state"] == "running" && p["generation"] == 2)
    });
    Ok(())
}

#[test]
fn a_trapping_plugin_and_an_endless_loop_leave_the_other_pipelines_and_the_daemon_running()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &["--restart", "never"]);
    let fixtures = built_plugins().join("fixtures");
    daemon.install_plugin(&fixtures.join("trap.wasm"), "trap");
    daemon.install_plugin(&fixtures.join("endless_loop.wasm"), "endless_loop");
    daemon.write_pipeline(
        "healthy.toml",
        &counting_pipeline("healthy", "healthy", "20ms", ""),
    );
    daemon.write_pipeline(
        "trapping.toml",
        &counting_pipeline(
            "trapping",
            "trapping",
            "20ms",
            "[[transform]]\nplugin = \"trap\"\n",
        ),
    );
    daemon.write_pipeline(
        "looping.toml",
        &counting_pipeline(
            "looping",
            "looping",
            "20ms",
            "[[transform]]\nplugin = \"endless_loop\"\ntimeout = \"200ms\"\n",
        ),
    );
    let status = daemon.wait_status("both to fail", Duration::from_secs(60), |s| {
        ["trapping", "looping"]
            .iter()
            .all(|n| find(s, n).is_some_and(|p| p["state"] == "failed"))
    });
    let looping = find(&status, "looping").cloned().unwrap_or_default();
    assert!(
        looping["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deadline"),
        "{looping:#}"
    );
    let before = find(&status, "healthy").map_or(0, |p| p["batches"].as_u64().unwrap_or(0));
    daemon.wait_batches("healthy", before + 5);
    Ok(())
}

const STUCK: &str = r#"[[transform]]
plugin = "endless_loop"
timeout = "1h"
"#;

#[test]
fn a_reload_abandons_a_stuck_batch_at_the_deadline_status_answers_meanwhile_and_the_batch_replays()
-> TestResult {
    let dir = tempfile::tempdir()?;
    // Only `weir reload` reloads here, so the test knows when one is under way.
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--shutdown-timeout",
            "2s",
            "--watch-debounce",
            "1h",
            "--rescan-interval",
            "1h",
        ],
    );
    daemon.install_plugin(
        &built_plugins().join("fixtures/endless_loop.wasm"),
        "endless_loop",
    );
    daemon.write_pipeline(
        "stuck.toml",
        &counting_pipeline("stuck", "stuck", "20ms", STUCK),
    );
    assert!(daemon.client(&["reload"]).status.success());
    daemon.wait_status("the stuck batch", SOON, |s| {
        find(s, "stuck").is_some_and(|p| p["engine"]["state"] == "running")
    });
    daemon.write_pipeline(
        "stuck.toml",
        &counting_pipeline("stuck", "stuck", "20ms", ""),
    );
    let started = Instant::now();
    let socket = daemon.socket();
    let reload = std::thread::spawn(move || crate::daemon_harness::client_at(&socket, &["reload"]));
    // While the reload waits for the stuck batch, status still answers, promptly, and says so.
    let (mut busy_json, mut busy_table) = (false, false);
    while !reload.is_finished() {
        assert!(
            started.elapsed() < SOON,
            "the reload did not finish within {SOON:?}"
        );
        let asked = Instant::now();
        let status = daemon.status(None);
        let table = String::from_utf8_lossy(&daemon.client(&["status"]).stdout).into_owned();
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "two status calls took {:?}",
            asked.elapsed()
        );
        busy_json |= status["reloading"] == "weir reload";
        busy_table |= table.contains("; reloading (weir reload)");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        busy_json && busy_table,
        "status never said the reload was busy (json: {busy_json}, table: {busy_table})"
    );
    let reload = reload.join().map_err(|_| "the reload thread panicked")?;
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    daemon.wait_status("the new version", SOON, |s| {
        find(s, "stuck")
            .is_some_and(|p| p["generation"] == 2 && p["batches"].as_u64().unwrap_or(0) >= 3)
    });
    let abandoned = daemon.log_lines("it was abandoned uncommitted and replays on the new version");
    assert_eq!(abandoned.len(), 1, "{}", daemon.weir.stderr());
    daemon.client(&["stop", "stuck"]);
    // Batch 0 (stuck in the old version) was written by the new one: nothing lost.
    assert_no_gap_no_duplicate(&values_written(&[daemon.path("out/stuck")]));
    Ok(())
}

#[test]
fn a_reload_completes_while_a_sink_is_failing() -> TestResult {
    // vectordotdev/vector#24125: a reload deadlocked after a sink had failed.
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--restart-first-backoff",
            "100ms",
            "--restart-max-backoff",
            "200ms",
        ],
    );
    std::fs::write(daemon.path("out/blocked"), "not a folder")?;
    daemon.write_pipeline(
        "failing.toml",
        &counting_pipeline("failing", "blocked", "20ms", ""),
    );
    daemon.write_pipeline(
        "other.toml",
        &counting_pipeline("other", "other", "20ms", ""),
    );
    daemon.wait_status("the failing sink", SOON, |s| {
        find(s, "failing").is_some_and(|p| !p["errors"].as_array().is_none_or(|e| e.is_empty()))
    });
    let started = Instant::now();
    daemon.write_pipeline(
        "other.toml",
        &counting_pipeline("other", "other2", "20ms", ""),
    );
    daemon.write_pipeline(
        "failing.toml",
        &counting_pipeline("failing", "fixed", "20ms", ""),
    );
    let reload = daemon.client(&["reload"]);
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    daemon.wait_status("both new versions", SOON, |s| {
        ["failing", "other"]
            .iter()
            .all(|n| find(s, n).is_some_and(|p| p["generation"] == 2 && p["state"] == "running"))
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    daemon.wait_batches("failing", 3);
    Ok(())
}

/// One save per editor habit, each on its own pipeline; each must be one reload of the final
/// content (no rejection of a half-written file, no second reload).
#[test]
fn editors_save_patterns_each_cause_exactly_one_reload_of_the_final_content() -> TestResult {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    let pipelines = daemon.path("pipelines");
    let v1 = |name: &str| counting_pipeline(name, name, "50ms", "");
    let v2 = |name: &str| counting_pipeline(name, &format!("{name}-v2"), "50ms", "");
    // Kubernetes-style: p.toml -> ..data/p.toml, ..data -> ..v1.
    std::fs::create_dir(pipelines.join("..v1"))?;
    std::fs::write(pipelines.join("..v1/k8s.toml"), v1("k8s"))?;
    std::os::unix::fs::symlink("..v1", pipelines.join("..data"))?;
    std::os::unix::fs::symlink("..data/k8s.toml", pipelines.join("k8s.toml"))?;
    for name in ["vim", "truncate", "burst"] {
        std::fs::write(pipelines.join(format!("{name}.toml")), v1(name))?;
    }
    let reload = daemon.client(&["reload"]);
    assert!(reload.status.success());
    for name in ["vim", "truncate", "burst", "k8s"] {
        daemon.wait_batches(name, 1);
    }

    // vim: write a new file, rename it over the old one.
    std::fs::write(pipelines.join("4913"), "")?;
    std::fs::remove_file(pipelines.join("4913"))?;
    std::fs::write(pipelines.join(".vim.toml.swp"), v2("vim"))?;
    std::fs::rename(pipelines.join(".vim.toml.swp"), pipelines.join("vim.toml"))?;
    // Truncate and write in place.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(pipelines.join("truncate.toml"))?;
    file.write_all(v2("truncate").as_bytes())?;
    drop(file);
    // A burst of writes (an IDE saving piece by piece): the last one is the content.
    let text = v2("burst");
    let (head, tail) = text.split_at(text.len() / 2);
    std::fs::write(pipelines.join("burst.toml"), head)?;
    std::fs::write(pipelines.join("burst.toml"), text.as_bytes())?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(pipelines.join("burst.toml"))?;
    file.write_all(b"\n# saved\n")?;
    drop(file);
    let _ = tail;
    // A file moved in from elsewhere.
    std::fs::write(daemon.path("moved.toml"), v1("moved"))?;
    std::fs::rename(daemon.path("moved.toml"), pipelines.join("moved.toml"))?;
    // The symlink swap.
    std::fs::create_dir(pipelines.join("..v2"))?;
    std::fs::write(pipelines.join("..v2/k8s.toml"), v2("k8s"))?;
    std::os::unix::fs::symlink("..v2", pipelines.join("..data_tmp"))?;
    std::fs::rename(pipelines.join("..data_tmp"), pipelines.join("..data"))?;

    daemon.wait_status("every save applied", SOON, |s| {
        ["vim", "truncate", "burst", "k8s"]
            .iter()
            .all(|n| find(s, n).is_some_and(|p| p["generation"] == 2))
            && find(s, "moved").is_some()
    });
    // Whatever events are still queued, an explicit reload finds nothing left to do.
    let reload = daemon.client(&["reload"]);
    assert_eq!(
        String::from_utf8_lossy(&reload.stdout),
        "reloaded: 0 applied, 0 not applied\n"
    );
    for name in ["vim", "truncate", "burst", "k8s"] {
        let changes = daemon.log_lines(&format!("reload: {name} ("));
        assert_eq!(
            changes.len(),
            2,
            "{name}: the start and one change: {changes:?}"
        );
        assert!(
            changes[1].contains("hot change at a batch boundary: sink #1 (file) settings"),
            "{changes:?}"
        );
        daemon.wait_status(&format!("{name}-v2 output"), SOON, |_| {
            !values_written(&[daemon.path(&format!("out/{name}-v2"))]).is_empty()
        });
    }
    assert_eq!(daemon.log_lines("moved.toml): start").len(), 1);
    assert!(
        daemon.log_lines("rejected").is_empty(),
        "{}",
        daemon.weir.stderr()
    );
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sends `lines` to a listening source, retrying the connection until the deadline (the port
/// is free for a moment while a pipeline's versions hand it over).
fn send_lines(port: u16, lines: &[&str]) {
    use std::io::Write;
    let end = Instant::now() + SOON;
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut stream) => {
                for line in lines {
                    if let Err(err) = writeln!(stream, "{line}") {
                        panic!("cannot send to port {port}: {err}");
                    }
                }
                return;
            }
            Err(err) if Instant::now() >= end => panic!("cannot connect to port {port}: {err}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn a_listening_socket_pipeline_hands_its_port_to_its_new_version() -> TestResult {
    // vectordotdev/vector#2011: a new version bound its port before the old one let it go.
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), &[]);
    let port = free_port()?;
    let pipeline = |out: &str| {
        format!(
            "name = \"lines\"\n[source]\ntype = \"socket\"\nmode = \"listen\"\nbind = \"127.0.0.1:{port}\"\n\n[[sink]]\ntype = \"file\"\npath = \"../out/{out}\"\nformat = \"json\"\n"
        )
    };
    daemon.write_pipeline("lines.toml", &pipeline("before"));
    daemon.wait_status("listening", SOON, |s| {
        find(s, "lines").is_some_and(|p| p["state"] == "running")
    });
    send_lines(port, &["one", "two"]);
    daemon.wait_status("the first lines", SOON, |_| {
        crate::daemon_harness::parts(&daemon.path("out/before"))
            .iter()
            .map(|(_, rows)| rows.len())
            .sum::<usize>()
            == 2
    });
    daemon.write_pipeline("lines.toml", &pipeline("after"));
    let status = daemon.wait_status("the new version", SOON, |s| {
        find(s, "lines").is_some_and(|p| p["generation"] == 2)
    });
    let p = find(&status, "lines").cloned().unwrap_or_default();
    assert_eq!(p["state"], "running", "{p:#}");
    assert!(p["pending"].is_null(), "{p:#}");
    send_lines(port, &["three"]);
    daemon.wait_status("the line after the change", SOON, |_| {
        crate::daemon_harness::parts(&daemon.path("out/after"))
            .iter()
            .flat_map(|(_, rows)| rows)
            .any(|r| r["value"] == "three")
    });
    assert!(
        daemon.log_lines("Address already in use").is_empty(),
        "{}",
        daemon.weir.stderr()
    );
    Ok(())
}
