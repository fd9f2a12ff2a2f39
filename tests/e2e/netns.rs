//! Network namespaces for daemons that must not share a network stack: a bridge on the host
//! and, per daemon, a namespace with its own loopback and its own address on the bridge. Made
//! with `ip` when the machine lets the test (root with CAP_NET_ADMIN) and a connection from a
//! namespace to the host's address gets through; otherwise the test runs on 127.0.0.1.

use std::net::TcpListener;
use std::process::{Command, Stdio};

/// The namespaces, removed (with their links and the bridge) on drop.
pub struct Namespaces {
    bridge: String,
    names: Vec<String>,
    /// The host's address on the bridge (a broker listens there).
    pub host: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Namespaces {
    /// `count` namespaces, or `None` (and nothing left behind) where they cannot be made.
    pub fn create(count: usize) -> Option<Namespaces> {
        let id = std::process::id() % 10_000;
        let subnet = format!("10.231.{}", id % 250);
        let mut made = Namespaces {
            bridge: format!("wbr{id}"),
            names: Vec::new(),
            host: format!("{subnet}.1"),
        };
        let bridge = made.bridge.clone();
        if !(ip(&["link", "add", &bridge, "type", "bridge"])
            && ip(&["addr", "add", &format!("{}/24", made.host), "dev", &bridge])
            && ip(&["link", "set", &bridge, "up"]))
        {
            return None;
        }
        for n in 0..count {
            let name = format!("weir-{id}-{n}");
            let (outside, inside) = (format!("wv{id}o{n}"), format!("wv{id}i{n}"));
            if !ip(&["netns", "add", &name]) {
                return None;
            }
            made.names.push(name.clone());
            let address = format!("{subnet}.{}/24", 10 + n);
            let exec = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &name, "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            let ok = ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]) && ip(&["link", "set", &inside, "netns", &name])
                && ip(&["link", "set", &outside, "master", &bridge])
                && ip(&["link", "set", &outside, "up"])
                && exec(&["addr", "add", &address, "dev", &inside])
                && exec(&["link", "set", &inside, "up"])
                && exec(&["link", "set", "lo", "up"]);
            if !ok {
                return None;
            }
        }
        made.reachable().then_some(made)
    }

    /// Whether a connection from the first namespace reaches a listener on the host's address.
    fn reachable(&self) -> bool {
        let Some(first) = self.names.first() else {
            return true;
        };
        let Ok(listener) = TcpListener::bind((self.host.as_str(), 0)) else {
            return false;
        };
        let Ok(port) = listener.local_addr().map(|a| a.port()) else {
            return false;
        };
        // bash's /dev/tcp opens the connection from inside the namespace.
        Command::new("ip")
            .args([
                "netns",
                "exec",
                first,
                "timeout",
                "5",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{}/{port}", self.host),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The command prefix that runs a program in namespace `n`.
    pub fn exec(&self, n: usize) -> Vec<String> {
        vec![
            "netns".into(),
            "exec".into(),
            self.names.get(n).cloned().unwrap_or_default(),
        ]
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            ip(&["netns", "del", name]);
        }
        ip(&["link", "del", &self.bridge]);
    }
}
