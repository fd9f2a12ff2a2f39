//! `weir plugin build DIR`: the plugin in `DIR` built into `NAME.wasm` in a plugins folder,
//! with its language's tool. The file appears there whole (written beside it under a hidden
//! name, then renamed), so a daemon watching the folder never loads half a plugin.

use super::{DevelopError, Kind, Language, detect, io, js_sdk, python_sdk};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a build made.
#[derive(Debug)]
pub struct Built {
    /// The plugin's name (the file's stem).
    pub name: String,
    /// Its language.
    pub language: Language,
    /// Transform or aggregate, when the build knows (Python, JavaScript).
    pub kind: Option<Kind>,
    /// The `.wasm` written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Where `scripts/setup` installs componentize-py when it is not on the PATH: a virtual
/// environment of its own under weir's data folder.
pub fn tools_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("weir/tools")
}

fn componentize_py() -> Result<PathBuf, DevelopError> {
    if let Some(path) = std::env::var_os("WEIR_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(path));
    }
    let venv = tools_dir().join("componentize-py/bin/componentize-py");
    on_path("componentize-py")
        .or_else(|| venv.is_file().then_some(venv.clone()))
        .ok_or_else(|| DevelopError::MissingTool {
            tool: "componentize-py",
            why: format!(
                "not on the PATH, not in {}, $WEIR_COMPONENTIZE_PY not set",
                venv.display()
            ),
            install: "./scripts/setup installs it (or: pip install componentize-py==0.25.1)",
        })
}

/// A command of the JavaScript tools: `$WEIR_JS_TOOLS/<name>`, else the npm folder
/// `scripts/setup` installs into, else the PATH.
fn js_tool(name: &'static str) -> Result<PathBuf, DevelopError> {
    let installed = std::env::var_os("WEIR_JS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("js/node_modules/.bin"))
        .join(name);
    if installed.is_file() {
        return Ok(installed);
    }
    on_path(name).ok_or_else(|| DevelopError::MissingTool {
        tool: name,
        why: format!(
            "not in {}, not on the PATH",
            installed.parent().unwrap_or(Path::new(".")).display()
        ),
        install: "./scripts/setup installs it (or: npm install --prefix ~/.local/share/weir/tools/js @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4)",
    })
}

fn node() -> Result<PathBuf, DevelopError> {
    on_path("node").ok_or_else(|| DevelopError::MissingTool {
        tool: "node",
        why: "not on the PATH".into(),
        install: "install Node.js 20 or newer (Debian: apt install nodejs npm)",
    })
}

fn python() -> Result<PathBuf, DevelopError> {
    on_path("python3").ok_or_else(|| DevelopError::MissingTool {
        tool: "python3",
        why: "not on the PATH".into(),
        install: "install Python 3 (Debian: apt install python3)",
    })
}

/// Runs `command`; its output is the error when it fails.
fn run(step: &str, command: &mut Command) -> Result<String, DevelopError> {
    let output = command.output().map_err(|err| DevelopError::StepFailed {
        step: step.to_string(),
        output: err.to_string(),
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(DevelopError::StepFailed {
            step: step.to_string(),
            output: text,
        })
    }
}

/// Moves `built` into `out/NAME.wasm` through a hidden name in `out`.
fn install(built: &Path, out: &Path, name: &str) -> Result<(PathBuf, u64), DevelopError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let hidden = out.join(format!(".{name}.wasm.part"));
    let path = out.join(format!("{name}.wasm"));
    std::fs::copy(built, &hidden).map_err(io(&hidden))?;
    std::fs::rename(&hidden, &path).map_err(io(&path))?;
    let size = std::fs::metadata(&path).map_err(io(&path))?.len();
    Ok((path, size))
}

/// Builds the plugin in `dir` into `out/NAME.wasm`.
pub fn build(dir: &Path, out: &Path) -> Result<Built, DevelopError> {
    match detect(dir)? {
        Language::Rust => build_rust(dir, out),
        Language::Python => build_python(dir, out),
        Language::Js => build_js(dir, out),
    }
}

fn build_rust(dir: &Path, out: &Path) -> Result<Built, DevelopError> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(io(&manifest))?;
    let name = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_string))
        .ok_or_else(|| DevelopError::StepFailed {
            step: format!("reading {}", manifest.display()),
            output: "no [package] name".into(),
        })?;
    // Cargo's own target folder choice: $CARGO_TARGET_DIR, else the plugin's `target/`.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    run(
        "cargo build --release --target wasm32-wasip2",
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target),
    )?;
    let artifact = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let (path, size) = install(&artifact, out, &name.replace('-', "_"))?;
    Ok(Built {
        name,
        language: Language::Rust,
        kind: None,
        path,
        size,
    })
}

/// The kind and name a plugin's import printed on its marked line (`weir-plugin: KIND NAME`,
/// the last such line: the plugin may print before it), checked to be a plugin name.
fn described_plugin(step: &str, output: &str) -> Result<(Kind, String), DevelopError> {
    let (kind, name) = output
        .lines()
        .rev()
        .find_map(|line| {
            let mut words = line.strip_prefix("weir-plugin: ")?.split_whitespace();
            let kind = match words.next()? {
                "aggregate" => Kind::Aggregate,
                "transform" => Kind::Transform,
                _ => return None,
            };
            Some((kind, words.next()?.to_string()))
        })
        .ok_or_else(|| DevelopError::StepFailed {
            step: step.into(),
            output: format!("it did not say what it exports:\n{output}"),
        })?;
    if !super::valid_name(&name) {
        return Err(DevelopError::BadName(name));
    }
    Ok((kind, name))
}

/// A scratch folder for one build, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, DevelopError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("weir-plugin-build-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Imports the plugin natively and prints its kind and name (what `@export` registered) on a
/// line of its own, after whatever the plugin prints when imported.
const DESCRIBE: &str = "\
import plugin
from weir_plugin import Aggregate
from weir_plugin.registry import registered
r = registered()
print('weir-plugin:', 'aggregate' if issubclass(r.cls, Aggregate) else 'transform', r.name)
";

fn pythonpath(paths: &[&Path]) -> std::ffi::OsString {
    std::env::join_paths(paths).unwrap_or_default()
}

fn build_python(dir: &Path, out: &Path) -> Result<Built, DevelopError> {
    let componentize = componentize_py()?;
    let python = python()?;
    let scratch = Scratch::new()?;
    python_sdk::write(&scratch.0)?;
    let path = pythonpath(&[&scratch.0, dir]);
    let described = run(
        "importing plugin.py",
        Command::new(&python)
            .args(["-c", DESCRIBE])
            .env("PYTHONPATH", &path)
            .current_dir(dir),
    )?;
    let (kind, name) = described_plugin("importing plugin.py", &described)?;
    // The plugin's own tests, natively, against the SDK it is built with.
    let has_tests = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .any(|e| {
            let file = e.file_name();
            let file = file.to_string_lossy();
            file.starts_with("test_") && file.ends_with(".py")
        });
    if has_tests {
        run(
            "the plugin's tests (python3 -m unittest)",
            Command::new(&python)
                .args(["-m", "unittest", "discover", "-s", ".", "-p", "test_*.py"])
                .env("PYTHONPATH", &path)
                .current_dir(dir),
        )?;
    }
    let (world, export) = match kind {
        Kind::Transform => (
            "transform",
            "from weir_plugin.component_transform import Transformer",
        ),
        Kind::Aggregate => (
            "aggregate",
            "from weir_plugin.component_aggregate import Aggregator",
        ),
    };
    let entry = scratch.0.join("weir_entry.py");
    std::fs::write(
        &entry,
        format!("import plugin  # noqa: F401\n{export}  # noqa: F401\n"),
    )
    .map_err(io(&entry))?;
    let component = scratch.0.join("plugin.wasm");
    run(
        "componentize-py",
        Command::new(&componentize)
            .arg("-d")
            .arg(scratch.0.join("wit/plugin.wit"))
            .args(["-w", world, "componentize", "weir_entry", "-p"])
            .arg(&scratch.0)
            .arg("-p")
            .arg(dir)
            .arg("-o")
            .arg(&component),
    )?;
    let (path, size) = install(&component, out, &name)?;
    Ok(Built {
        name,
        language: Language::Python,
        kind: Some(kind),
        path,
        size,
    })
}

/// Imports the plugin natively and prints its kind and name (what `exportPlugin` registered) on
/// a line of its own, after whatever the plugin prints when imported.
const DESCRIBE_JS: &str = "\
await import('./plugin/plugin.js');
const { registered } = await import('weir-plugin/registry');
const r = registered();
console.log('weir-plugin:', r.kind, r.name);
";

/// Copies the plugin's folder (its `node_modules` and hidden files aside) into `to`.
fn copy_plugin_folder(from: &Path, to: &Path) -> Result<(), DevelopError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if text.starts_with('.') || text == "node_modules" {
            continue;
        }
        let path = entry.path();
        let target = to.join(&name);
        if path.is_dir() {
            copy_plugin_folder(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// The bundle with its source map attached where the SDK's error reports look for it, so that
/// an exception names the line of `plugin.js` it came from. Only the map's `sources` and
/// `mappings` are kept (not the sources' text).
fn with_source_map(bundle: &str, map: &str) -> String {
    let slim = serde_json::from_str::<serde_json::Value>(map)
        .ok()
        .map(|mut map| {
            if let Some(fields) = map.as_object_mut() {
                fields.retain(|key, _| key == "version" || key == "sources" || key == "mappings");
            }
            map.to_string()
        });
    match slim {
        Some(map) => {
            format!("{bundle}\nglobalThis[Symbol.for(\"weir-plugin.sourcemap\")] = {map};\n")
        }
        None => bundle.to_string(),
    }
}

fn build_js(dir: &Path, out: &Path) -> Result<Built, DevelopError> {
    let node = node()?;
    let rolldown = js_tool("rolldown")?;
    let componentize = js_tool("componentize-js")?;
    let scratch = Scratch::new()?;
    let root = &scratch.0;
    js_sdk::write(root)?;
    let wit = root.join("wit/plugin.wit");
    std::fs::create_dir_all(root.join("wit")).map_err(io(root))?;
    std::fs::write(&wit, python_sdk::WIT).map_err(io(&wit))?;
    // Node reads `.js` files below this folder as ES modules.
    let manifest = root.join("package.json");
    std::fs::write(&manifest, "{\"type\": \"module\", \"private\": true}\n")
        .map_err(io(&manifest))?;
    let plugin = root.join("plugin");
    copy_plugin_folder(dir, &plugin)?;

    let described = run(
        "importing plugin.js",
        Command::new(&node)
            .args(["--input-type=module", "-e", DESCRIBE_JS])
            .current_dir(root),
    )?;
    let (kind, name) = described_plugin("importing plugin.js", &described)?;
    // The plugin's own tests, natively, against the SDK it is built with.
    let has_tests = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".test.js"));
    if has_tests {
        run(
            "the plugin's tests (node --test)",
            Command::new(&node).arg("--test").current_dir(&plugin),
        )?;
    }

    let (world, export) = match kind {
        Kind::Transform => ("transform", "transformer"),
        Kind::Aggregate => ("aggregate", "aggregator"),
    };
    let entry = root.join("entry.js");
    std::fs::write(
        &entry,
        format!(
            "import \"./plugin/plugin.js\";\nexport {{ {export} }} from \"weir-plugin/component\";\n"
        ),
    )
    .map_err(io(&entry))?;
    run(
        "rolldown (bundling plugin.js with the SDK)",
        Command::new(&rolldown)
            .args([
                "entry.js",
                "--format",
                "esm",
                "--platform",
                "neutral",
                "--file",
                "bundle.js",
                "--sourcemap",
            ])
            .current_dir(root),
    )?;
    let read = |file: &str| {
        let path = root.join(file);
        std::fs::read_to_string(&path).map_err(io(&path))
    };
    let source = root.join("component.js");
    std::fs::write(
        &source,
        with_source_map(&read("bundle.js")?, &read("bundle.js.map")?),
    )
    .map_err(io(&source))?;
    let component = root.join("plugin.wasm");
    run(
        "componentize-js",
        Command::new(&componentize)
            .args([
                "component.js",
                "--wit",
                "wit/plugin.wit",
                "--world-name",
                world,
                // No WASI at all: a JavaScript plugin gets no files, network, clocks or
                // randomness, and imports nothing.
                "--disable",
                "stdio",
                "random",
                "clocks",
                "http",
                "fetch-event",
                "-o",
                "plugin.wasm",
            ])
            .current_dir(root),
    )?;
    let (path, size) = install(&component, out, &name)?;
    Ok(Built {
        name,
        language: Language::Js,
        kind: Some(kind),
        path,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_marked_line_names_kind_and_plugin_whatever_the_import_printed_before() {
        let printed = "weir-plugin: transform decoy\nloading...\nweir-plugin: aggregate median\n";
        let (kind, name) = described_plugin("importing", printed)
            .ok()
            .unwrap_or((Kind::Transform, String::new()));
        assert_eq!((kind, name.as_str()), (Kind::Aggregate, "median"));
    }

    #[test]
    fn no_marked_line_an_unknown_kind_or_a_bad_name_is_an_error_that_shows_the_output() {
        let missing = described_plugin("importing plugin.py", "hello\n");
        assert!(
            matches!(&missing, Err(DevelopError::StepFailed { output, .. }) if output.contains("hello")),
            "{missing:?}"
        );
        let unknown = described_plugin("importing", "weir-plugin: sink out\n");
        assert!(
            matches!(unknown, Err(DevelopError::StepFailed { .. })),
            "{unknown:?}"
        );
        let bad = described_plugin("importing", "weir-plugin: transform Bad-Name\n");
        assert!(matches!(bad, Err(DevelopError::BadName(_))), "{bad:?}");
    }
}
