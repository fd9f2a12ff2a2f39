//! End-to-end tests: each starts the real `weir` binary on real pipeline files, files and
//! sockets, and checks what comes out. One test binary, one module per area.

#[path = "../built_plugins.rs"]
mod built_plugins;
mod daemon_harness;
mod harness;
mod kafka_broker;
mod machine;
mod netns;

mod aggregation;
mod check;
mod daemon_lifecycle;
mod daemon_plugins;
mod daemon_reload;
mod daemon_service;
mod documented;
mod durability;
mod file_source;
mod full_disk;
mod js_plugins;
mod kafka;
mod kafka_examples;
mod kafka_group;
mod kafka_group_repartition;
mod kafka_group_state;
mod kafka_restore;
mod latency;
mod malformed;
mod observability;
mod plugins;
mod python_plugins;
mod rate_console;
mod recovery;
mod seed_examples;
mod shutdown;
mod socket;
mod socket_limits;
mod source_files;
mod terminal;
mod triggers;
mod upgrade;
