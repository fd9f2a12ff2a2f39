//! `weir plugin new NAME`: a folder holding a plugin that builds and passes its test as it is:
//! a transform that passes rows through unchanged, or an aggregate that counts rows.

use super::{DevelopError, Kind, Language, io, valid_name};
use std::path::{Path, PathBuf};

const PY_TRANSFORM: &str = include_str!("templates/python_transform.py");
const PY_TRANSFORM_TEST: &str = include_str!("templates/python_transform_test.py");
const PY_AGGREGATE: &str = include_str!("templates/python_aggregate.py");
const PY_AGGREGATE_TEST: &str = include_str!("templates/python_aggregate_test.py");
const JS_TRANSFORM: &str = include_str!("templates/js_transform.js");
const JS_TRANSFORM_TEST: &str = include_str!("templates/js_transform.test.js");
const JS_AGGREGATE: &str = include_str!("templates/js_aggregate.js");
const JS_AGGREGATE_TEST: &str = include_str!("templates/js_aggregate.test.js");
const RUST_CARGO: &str = include_str!("templates/rust_Cargo.toml");
const RUST_TRANSFORM: &str = include_str!("templates/rust_transform.rs");
const RUST_AGGREGATE: &str = include_str!("templates/rust_aggregate.rs");
const README: &str = include_str!("templates/README.md");

/// `word_count` → `WordCount`.
fn class_name(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Fills `{key}` from `values`, then turns the templates' `{{` and `}}` into braces.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    text.replace("{{", "{").replace("}}", "}")
}

/// Makes `parent/NAME/` holding a new plugin; `sdk` is the Rust SDK's folder (Rust only).
/// Returns the folder.
pub fn new_plugin(
    parent: &Path,
    name: &str,
    language: Language,
    kind: Kind,
    sdk: &Path,
) -> Result<PathBuf, DevelopError> {
    if !valid_name(name) {
        return Err(DevelopError::BadName(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(DevelopError::Exists(dir));
    }
    let class = class_name(name);
    let description = match kind {
        Kind::Transform => "Passes every row through unchanged.",
        Kind::Aggregate => "Counts a group's rows.",
    };
    let sdk = sdk.to_string_lossy();
    let values = [
        ("name", name),
        ("class_name", class.as_str()),
        ("description", description),
        ("sdk", sdk.as_ref()),
        ("kind", kind.as_str()),
        ("language", language.as_str()),
    ];
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let (source, test_command) = match language {
        Language::Python => {
            let (code, test) = match kind {
                Kind::Transform => (PY_TRANSFORM, PY_TRANSFORM_TEST),
                Kind::Aggregate => (PY_AGGREGATE, PY_AGGREGATE_TEST),
            };
            files.push(("plugin.py".into(), fill(code, &values)));
            files.push(("test_plugin.py".into(), fill(test, &values)));
            (
                "plugin.py",
                "`weir plugin build` runs `test_plugin.py` first (with the SDK it builds against)",
            )
        }
        Language::Js => {
            let (code, test) = match kind {
                Kind::Transform => (JS_TRANSFORM, JS_TRANSFORM_TEST),
                Kind::Aggregate => (JS_AGGREGATE, JS_AGGREGATE_TEST),
            };
            files.push(("plugin.js".into(), fill(code, &values)));
            files.push(("plugin.test.js".into(), fill(test, &values)));
            (
                "plugin.js",
                "`weir plugin build` runs `plugin.test.js` first with `node --test` (with the SDK it builds against)",
            )
        }
        Language::Rust => {
            let code = match kind {
                Kind::Transform => RUST_TRANSFORM,
                Kind::Aggregate => RUST_AGGREGATE,
            };
            files.push(("Cargo.toml".into(), fill(RUST_CARGO, &values)));
            files.push(("src/lib.rs".into(), fill(code, &values)));
            (
                "src/lib.rs",
                "`cargo test --lib` (natively; the component itself is only linked for wasm)",
            )
        }
    };
    let mut readme_values = values.to_vec();
    readme_values.push(("source", source));
    readme_values.push(("test_command", test_command));
    files.push(("README.md".into(), fill(README, &readme_values)));
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(dir)
}
