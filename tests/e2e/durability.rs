//! What survives a power loss is what reached the disk: a rename or a new folder is durable only
//! once the folder listing it is synced. weir runs under `strace`, and the system calls it made
//! show that each rename and new folder is followed by a sync of the folders involved.

use crate::harness::{TestResult, Weir, pipeline_file};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// One system call from strace's output: name, arguments, result.
struct Call {
    name: String,
    args: String,
    result: String,
}

fn calls(log: &str) -> Vec<Call> {
    log.lines()
        .filter_map(|line| {
            // `name(args) = result` (a file per thread: no pid in front).
            // strace pads the space before ` = result`.
            let rest = line.trim_start();
            let open = rest.find('(')?;
            let equals = rest.rfind(" = ")?;
            let close = rest[..equals].rfind(')')?;
            if close < open {
                return None;
            }
            Some(Call {
                name: rest[..open].to_string(),
                args: rest[open + 1..close].to_string(),
                result: rest[equals + 3..].split_whitespace().next()?.to_string(),
            })
        })
        .collect()
}

/// Whether, after call `after`, `dir` was opened and the descriptor synced.
fn synced_after(calls: &[Call], after: usize, dir: &Path) -> bool {
    let quoted = format!("\"{}\"", dir.display());
    let mut open_fds: HashMap<String, bool> = HashMap::new();
    for call in &calls[after..] {
        match call.name.as_str() {
            "openat" if call.args.contains(&quoted) && call.args.contains("O_RDONLY") => {
                open_fds.insert(call.result.clone(), true);
            }
            "fsync" | "fdatasync" => {
                let fd = call.args.trim().to_string();
                if open_fds.contains_key(&fd) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn strace_or_skip_reason() -> Option<String> {
    match std::process::Command::new("strace").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
        Err(err) => Some(err.to_string()),
    }
}

#[test]
fn archiving_a_file_and_making_the_sink_folder_sync_the_folders_involved() -> TestResult {
    if let Some(why) = strace_or_skip_reason() {
        panic!("strace is needed (./scripts/setup installs it): {why}");
    }
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    let archive = dir.path().join("done");
    let out = dir.path().join("out/nested");
    std::fs::create_dir_all(&input)?;
    std::fs::write(input.join("a.txt"), "one\ntwo\n")?;
    let file = pipeline_file(
        dir.path(),
        "p.toml",
        &format!(
            "name = \"p\"\ntrigger = \"available_now\"\n[source]\ntype = \"file\"\npath = \"{}\"\nformat = \"text\"\nclean_source = \"archive\"\narchive_dir = \"{}\"\n\n[[sink]]\ntype = \"file\"\npath = \"{}\"\nformat = \"json\"\n",
            input.display(),
            archive.display(),
            out.display()
        ),
    );
    let trace = dir.path().join("trace");
    let state = dir.path().join("state");
    // One trace file per thread (-ff): a thread's calls are in order and never interleaved.
    let mut weir = Weir::start_program(
        "strace",
        &[
            "-ff",
            "-qq",
            "-e",
            "trace=openat,rename,renameat,renameat2,mkdir,mkdirat,fsync,fdatasync",
            "-o",
            &trace.to_string_lossy(),
            crate::harness::weir_bin(),
            "run",
            "--state-dir",
            &state.to_string_lossy(),
            &file.to_string_lossy(),
        ],
        None,
        |_| {},
    );
    assert!(
        weir.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        weir.stderr()
    );
    assert!(archive.join("a.txt").is_file());
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("trace."))
        {
            threads.push(calls(&std::fs::read_to_string(&path)?));
        }
    }
    let quoted = |p: &Path| format!("\"{}\"", p.display());

    let rename_of = |calls: &[Call], path: &Path| {
        calls
            .iter()
            .position(|c| c.name.starts_with("rename") && c.args.contains(&quoted(path)))
    };
    let mkdir_of = |calls: &[Call], path: &Path| {
        calls
            .iter()
            .position(|c| c.name.starts_with("mkdir") && c.args.contains(&quoted(path)))
    };
    let moved = threads
        .iter()
        .find_map(|calls| Some((calls, rename_of(calls, &input.join("a.txt"))?)))
        .ok_or("no rename of the input file")?;
    assert!(
        synced_after(moved.0, moved.1, &input),
        "the input folder was not synced after the move"
    );
    assert!(
        synced_after(moved.0, moved.1, &archive),
        "the archive folder was not synced after the move"
    );
    let made = threads
        .iter()
        .find_map(|calls| Some((calls, mkdir_of(calls, &out)?)))
        .ok_or("no mkdir of the sink folder")?;
    assert!(
        synced_after(made.0, made.1, out.parent().ok_or("no parent")?),
        "the sink folder's parent was not synced after the folder was made"
    );
    Ok(())
}
