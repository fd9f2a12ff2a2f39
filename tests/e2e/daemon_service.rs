//! The daemon as a service: signals, the sd_notify conversation with a real `NOTIFY_SOCKET`,
//! the systemd units checked by systemd's own tools, and the HTTP API's limits.

use crate::daemon_harness::{
    Daemon, SOON, counting_pipeline, daemon_args, find, folders, http_get, http_raw,
};
use crate::harness::{TestResult, Weir, error_or_warn_lines, repo_root};
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sighup_reloads_and_sigterm_with_20_pipelines_exits_0_within_the_deadline_quietly() -> TestResult
{
    let dir = tempfile::tempdir()?;
    folders(dir.path());
    for i in 0..20 {
        std::fs::write(
            dir.path().join(format!("pipelines/p{i}.toml")),
            counting_pipeline(&format!("p{i}"), &format!("p{i}"), "50ms", ""),
        )?;
    }
    let mut daemon = Daemon::start(
        dir.path(),
        &["--watch-debounce", "1h", "--rescan-interval", "1h"],
    );
    daemon.wait_status("20 pipelines", SOON, |s| s["counts"]["running"] == 20);
    // SIGHUP reloads: a new file is picked up although file events are ignored here.
    std::fs::write(
        dir.path().join("pipelines/late.toml"),
        counting_pipeline("late", "late", "50ms", ""),
    )?;
    daemon.weir.signal(Signal::SIGHUP);
    daemon.wait_batches("late", 1);
    assert_eq!(daemon.log_lines("SIGHUP: reloading").len(), 1);
    for i in 0..20 {
        daemon.wait_batches(&format!("p{i}"), 2);
    }

    let started = Instant::now();
    daemon.weir.signal(Signal::SIGTERM);
    let status = daemon.weir.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.weir.stderr());
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = daemon.weir.stderr();
    assert!(stderr.contains("weir daemon stopped"), "{stderr}");
    assert!(error_or_warn_lines(&stderr).is_empty(), "{stderr}");
    assert!(
        !daemon.path("control.sock").exists(),
        "the socket file is removed"
    );
    Ok(())
}

#[test]
fn sigint_stops_like_sigterm_and_a_second_signal_exits_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline("p.toml", &counting_pipeline("p", "p", "20ms", ""));
    daemon.wait_batches("p", 2);
    daemon.weir.signal(Signal::SIGINT);
    assert!(daemon.weir.wait_exit(Duration::from_secs(10)).success());

    // A batch stuck in a plugin with a one-hour deadline: the first SIGTERM waits (up to the
    // shutdown deadline of 10 s), the second exits at once with status 1.
    let dir = tempfile::tempdir()?;
    let mut daemon = Daemon::start(dir.path(), &[]);
    daemon.install_plugin(
        &crate::daemon_harness::built_plugins().join("fixtures/endless_loop.wasm"),
        "endless_loop",
    );
    daemon.write_pipeline(
        "stuck.toml",
        &counting_pipeline(
            "stuck",
            "stuck",
            "20ms",
            "[[transform]]\nplugin = \"endless_loop\"\ntimeout = \"1h\"\n",
        ),
    );
    daemon.wait_status("the stuck batch", SOON, |s| {
        find(s, "stuck").is_some_and(|p| p["engine"]["state"] == "running")
    });
    daemon.weir.signal(Signal::SIGTERM);
    daemon.weir.wait_for("stopping", SOON, |_, err| {
        err.contains("stopping: finishing batches in flight")
    });
    let second = Instant::now();
    daemon.weir.signal(Signal::SIGTERM);
    let status = daemon.weir.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "{:?}",
        second.elapsed()
    );
    assert!(
        daemon
            .weir
            .stderr()
            .contains("second stop signal: exiting without waiting")
    );
    Ok(())
}

/// Reads datagrams from a real notify socket until `done` holds for what arrived.
fn receive_until(
    socket: &UnixDatagram,
    messages: &mut Vec<(Instant, String)>,
    deadline: Duration,
    done: impl Fn(&[(Instant, String)]) -> bool,
) {
    let end = Instant::now() + deadline;
    let mut buf = vec![0u8; 4096];
    while !done(messages) {
        assert!(
            Instant::now() < end,
            "sd_notify messages so far: {messages:?}"
        );
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            for line in text.lines() {
                messages.push((Instant::now(), line.to_string()));
            }
        }
    }
}

fn has(messages: &[(Instant, String)], prefix: &str) -> bool {
    messages.iter().any(|(_, m)| m.starts_with(prefix))
}

#[test]
fn sd_notify_says_ready_reloading_with_monotonic_usec_stopping_status_and_pings_the_watchdog()
-> TestResult {
    // The watchdog's pace is a time limit: no other test's daemon may compete for the cores.
    let _alone = crate::machine::Alone::take();
    let dir = tempfile::tempdir()?;
    folders(dir.path());
    std::fs::write(
        dir.path().join("pipelines/p.toml"),
        counting_pipeline("p", "p", "50ms", ""),
    )?;
    std::fs::write(dir.path().join("pipelines/bad.toml"), "name = \"bad\"\n")?;
    let notify_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let args = daemon_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut weir = Weir::start_with(&args, None, |command| {
        command
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "300000");
    });
    let mut messages = Vec::new();
    receive_until(&socket, &mut messages, Duration::from_secs(60), |m| {
        has(m, "READY=1")
    });
    assert!(
        has(&messages, "STATUS=1 running, 1 rejected"),
        "READY comes with the status once every pipeline started or was reported: {messages:?}"
    );
    // The watchdog is pinged at least every third of WATCHDOG_USEC.
    let from = messages.len();
    receive_until(&socket, &mut messages, Duration::from_secs(5), |m| {
        m[from..].iter().filter(|(_, s)| s == "WATCHDOG=1").count() >= 6
    });
    let pings: Vec<Instant> = messages[from..]
        .iter()
        .filter(|(_, s)| s == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap <= Duration::from_millis(150),
            "{gap:?} between pings, over WATCHDOG_USEC/2"
        );
    }

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC in the same datagram, then READY=1.
    let from = messages.len();
    weir.signal(Signal::SIGHUP);
    receive_until(&socket, &mut messages, SOON, |m| {
        m[from..]
            .iter()
            .any(|(_, s)| s.starts_with("MONOTONIC_USEC="))
            && m[from..].iter().filter(|(_, s)| s == "READY=1").count() >= 1
    });
    let reload: Vec<&str> = messages[from..]
        .iter()
        .map(|(_, s)| s.as_str())
        .filter(|s| *s != "WATCHDOG=1")
        .collect();
    assert_eq!(reload[0], "RELOADING=1", "{reload:?}");
    let usec: u64 = reload[1]
        .strip_prefix("MONOTONIC_USEC=")
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    let now_usec = now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1000;
    assert!(
        usec > 0 && usec <= now_usec && now_usec - usec < 10_000_000,
        "{usec} vs {now_usec}"
    );
    assert_eq!(reload[2], "READY=1", "{reload:?}");

    // A fixed file changes the status line.
    std::fs::write(
        dir.path().join("pipelines/bad.toml"),
        counting_pipeline("bad", "bad", "50ms", ""),
    )?;
    receive_until(&socket, &mut messages, SOON, |m| has(m, "STATUS=2 running"));

    let from = messages.len();
    weir.signal(Signal::SIGTERM);
    receive_until(&socket, &mut messages, SOON, |m| {
        m[from..].iter().any(|(_, s)| s == "STOPPING=1")
    });
    assert!(weir.wait_exit(Duration::from_secs(10)).success());
    Ok(())
}

/// The unit with `ExecStart` pointed at an executable that exists here (verify requires one).
fn unit_for_verify(dir: &std::path::Path, unit: &str) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let binary = dir.join("weir");
    std::fs::write(&binary, "#!/bin/sh\nexit 0\n")?;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))?;
    let text = std::fs::read_to_string(repo_root().join("config").join(unit))?;
    let text = text.replace(
        "ExecStart=/usr/bin/weir ",
        &format!("ExecStart={} ", binary.display()),
    );
    let path = dir.join(unit);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn run(command: &mut Command) -> std::process::Output {
    match command.output() {
        Ok(out) => out,
        Err(err) => panic!("cannot run {command:?}: {err} (./scripts/setup installs systemd)"),
    }
}

#[test]
fn systemd_analyze_verifies_both_units_and_rates_their_exposure_2_0_or_lower() -> TestResult {
    let dir = tempfile::tempdir()?;
    // The unit for systemd 252 (Debian 12, RHEL 9), with this machine's systemd-analyze.
    let unit = unit_for_verify(dir.path(), "weir.service")?;
    let verify = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit));
    assert!(
        security.status.success(),
        "{}",
        String::from_utf8_lossy(&security.stdout)
    );

    // The notify-reload unit needs systemd >= 253: scripts/systemd-analyze-new fetches one.
    let unit = unit_for_verify(dir.path(), "weir-notify-reload.service")?;
    let newer = repo_root().join("scripts/systemd-analyze-new");
    let verify = run(Command::new(&newer).args(["-", "verify"]).arg(&unit));
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = run(Command::new(&newer)
        .args(["-", "security", "--offline=yes", "--threshold=20"])
        .arg(&unit));
    assert!(
        security.status.success(),
        "{}",
        String::from_utf8_lossy(&security.stdout)
    );
    Ok(())
}

#[test]
fn http_refuses_a_remote_address_serves_only_reads_and_survives_bad_requests() -> TestResult {
    let dir = tempfile::tempdir()?;
    folders(dir.path());
    let mut args = daemon_args(dir.path());
    let http = args.iter().position(|a| a == "127.0.0.1:0").unwrap_or(0);
    args[http] = "0.0.0.0:0".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut refused = Weir::start(&args);
    assert_eq!(refused.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(
        refused
            .stderr()
            .contains("is reachable from other machines"),
        "{}",
        refused.stderr()
    );

    let daemon = Daemon::start(dir.path(), &[]);
    daemon.write_pipeline("p.toml", &counting_pipeline("p", "p", "50ms", ""));
    daemon.wait_batches("p", 1);
    let addr = daemon.http.clone().ok_or("no HTTP address in the log")?;
    assert_eq!(http_get(&addr, "/health"), (200, "ok\n".into()));
    assert_eq!(http_get(&addr, "/ready"), (200, "ready\n".into()));
    let (code, body) = http_get(&addr, "/pipelines");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body)?;
    assert!(find(&status, "p").is_some(), "{status:#}");
    let (code, body) = http_get(&addr, "/pipelines/p");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"recent\""), "{body}");
    assert_eq!(http_get(&addr, "/pipelines/nope").0, 404);
    // Verbs that change something are not served over HTTP.
    for request in [
        "POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "POST /pipelines/p/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "DELETE /pipelines/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let (code, _) = http_raw(&addr, request.as_bytes());
        assert!(code == 404 || code == 405, "{request:?} answered {code}");
    }
    // Malformed and huge requests get a 4xx.
    let (code, _) = http_raw(&addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert!((400..500).contains(&code), "malformed: {code}");
    let huge = format!(
        "GET /pipelines HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (code, _) = http_raw(&addr, huge.as_bytes());
    assert!((400..500).contains(&code), "huge: {code}");
    let (code, _) = http_get(&addr, &format!("/pipelines/{}", "x".repeat(100_000)));
    assert!(
        code == 404 || (400..500).contains(&code),
        "long path: {code}"
    );
    // And the daemon goes on.
    assert_eq!(http_get(&addr, "/health").0, 200);
    let status = daemon.status(None);
    assert!(find(&status, "p").is_some());
    Ok(())
}

#[test]
fn a_reload_rereads_weir_toml_applies_what_can_change_and_keeps_the_rest_until_a_restart()
-> TestResult {
    let dir = tempfile::tempdir()?;
    folders(dir.path());
    let config = dir.path().join("weir.toml");
    // Relative paths in weir.toml are relative to its folder.
    let settings = |level: &str, plugins: &str| {
        format!(
            "pipelines_dir = \"pipelines\"\nplugins_dir = \"{plugins}\"\nstate_dir = \"state\"\ncontrol_socket = \"control.sock\"\nhttp = \"off\"\n\n[log]\nlevel = \"{level}\"\n\n[restart]\nfirst_backoff = \"1s\"\n"
        )
    };
    std::fs::write(&config, settings("info", "plugins"))?;
    std::fs::write(
        dir.path().join("pipelines/p.toml"),
        counting_pipeline("p", "p", "20ms", ""),
    )?;
    let mut weir = Weir::start(&["daemon", "--config", &config.to_string_lossy()]);
    weir.wait_for("ready", SOON, |_, err| err.contains("weir daemon ready"));
    let socket = dir
        .path()
        .join("control.sock")
        .to_string_lossy()
        .into_owned();
    let client = |args: &[&str]| crate::daemon_harness::client_at(&socket, args);
    assert!(
        !weir.stderr().contains("batch committed"),
        "info level logs no batches"
    );

    std::fs::write(&config, settings("debug", "other-plugins"))?;
    let reload = client(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout).into_owned();
    assert!(
        reload.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let file = config.display().to_string();
    assert!(
        said.contains(&format!("{file}: applied log level debug")),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "{file}: plugins_dir changed; that takes effect when the daemon restarts"
        )),
        "{said}"
    );
    weir.wait_for("debug lines", SOON, |_, err| {
        err.contains("batch committed")
    });

    // A broken weir.toml changes nothing and says where it is wrong.
    std::fs::write(
        &config,
        format!("shutdown_timeout = 5\n{}", settings("info", "plugins")),
    )?;
    let reload = client(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout).into_owned();
    assert_eq!(reload.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("{file}: rejected, not applied: {file}:1:20:")),
        "{said}"
    );
    let status = client(&["status", "--json"]);
    assert!(status.status.success());
    weir.signal(Signal::SIGTERM);
    assert!(weir.wait_exit(SOON).success());
    Ok(())
}

#[test]
fn scripts_install_puts_binary_unit_and_config_under_destdir_and_keeps_an_existing_config()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let stage = dir.path().join("stage");
    let binary = dir.path().join("weir-built");
    std::fs::write(&binary, "#!/bin/sh\nexit 0\n")?;
    let install = |extra: &[&str]| {
        run(Command::new(repo_root().join("scripts/install"))
            .args(extra)
            .arg(&binary)
            .env("DESTDIR", &stage)
            .env("PREFIX", "/usr/local"))
    };
    let out = install(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = std::fs::read_to_string(stage.join("usr/local/lib/systemd/system/weir.service"))?;
    assert!(unit.contains("ExecStart=/usr/local/bin/weir daemon --config /etc/weir/weir.toml"));
    assert!(
        unit.contains("Type=notify\n"),
        "the unit for systemd 252 by default"
    );
    assert!(stage.join("usr/local/bin/weir").is_file());
    assert!(stage.join("usr/local/lib/sysusers.d/weir.conf").is_file());
    assert!(stage.join("usr/local/lib/tmpfiles.d/weir.conf").is_file());
    let config = stage.join("etc/weir/weir.toml");
    assert_eq!(
        std::fs::read_to_string(&config)?,
        std::fs::read_to_string(repo_root().join("config/weir.toml"))?
    );
    // An operator's config is never overwritten; --notify-reload installs the other unit.
    std::fs::write(&config, "# mine\n")?;
    let out = install(&["--notify-reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&config)?, "# mine\n");
    let unit = std::fs::read_to_string(stage.join("usr/local/lib/systemd/system/weir.service"))?;
    assert!(unit.contains("Type=notify-reload"), "{unit}");
    Ok(())
}
