//! Telling systemd (or anything that speaks the sd_notify protocol on `$NOTIFY_SOCKET`) what
//! the daemon is doing: `READY=1` once every pipeline has started or been reported invalid,
//! `RELOADING=1` with `MONOTONIC_USEC` then `READY=1` around a reload (what `Type=notify-reload`
//! requires), `STOPPING=1`, `WATCHDOG=1` pings, and a one-line `STATUS=`. Without
//! `$NOTIFY_SOCKET` every call does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

/// The daemon's line to its service manager.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    last_status: std::sync::Arc<std::sync::Mutex<String>>,
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {err}");
    }
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (honouring `$WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0 && enabled && for_us)
            .map(Duration::from_micros);
        Notifier {
            enabled,
            watchdog,
            last_status: Default::default(),
        }
    }

    /// How often to ping the watchdog, if systemd asked for it: a third of its timeout, so
    /// one late ping is never fatal.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
            .map(|timeout| (timeout / 3).max(Duration::from_millis(10)))
    }

    /// `READY=1`.
    pub fn ready(&self) {
        if self.enabled {
            send(&[NotifyState::Ready]);
        }
    }

    /// `RELOADING=1` with the monotonic time, as systemd ≥ 253 requires.
    pub fn reloading(&self) {
        if !self.enabled {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(err) => {
                tracing::debug!("cannot read the monotonic clock: {err}");
                send(&[NotifyState::Reloading]);
            }
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        if self.enabled {
            send(&[NotifyState::Stopping]);
        }
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        if self.enabled && self.watchdog.is_some() {
            send(&[NotifyState::Watchdog]);
        }
    }

    /// `EXTEND_TIMEOUT_USEC=`: more time for a start-up that loads (compiles) many plugins.
    pub fn extend_timeout(&self, by: Duration) {
        if self.enabled {
            let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
            send(&[NotifyState::ExtendTimeoutUsec(usec)]);
        }
    }

    /// `STATUS=...`, sent only when it differs from the last one.
    pub fn status(&self, line: &str) {
        if !self.enabled {
            return;
        }
        let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        if *last != line {
            send(&[NotifyState::Status(line)]);
            *last = line.to_string();
        }
    }
}
