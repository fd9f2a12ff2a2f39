//! Plugin scaffolds, checked by running what they make: the Python and JavaScript ones' own
//! tests run on the machine's Python and Node.js against the SDKs weir embeds.

use super::*;
use std::process::Command;

fn sdk() -> PathBuf {
    crate::test_support::crate_dir().join("../plugin-sdk")
}

#[test]
fn plugin_names_are_lowercase_identifiers() {
    for good in ["celsius", "word_count", "p95", "a"] {
        assert!(valid_name(good), "{good}");
    }
    for bad in [
        "",
        "Celsius",
        "9lives",
        "word-count",
        "a b",
        "../x",
        "_x",
        "é",
    ] {
        assert!(!valid_name(bad), "{bad}");
    }
}

#[test]
fn a_new_plugin_refuses_a_bad_name_and_a_folder_that_exists()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let bad = new_plugin(
        dir.path(),
        "../up",
        Language::Python,
        Kind::Transform,
        &sdk(),
    );
    assert!(matches!(bad, Err(DevelopError::BadName(_))), "{bad:?}");
    std::fs::create_dir(dir.path().join("taken"))?;
    let taken = new_plugin(dir.path(), "taken", Language::Rust, Kind::Transform, &sdk());
    assert!(matches!(taken, Err(DevelopError::Exists(_))), "{taken:?}");
    Ok(())
}

#[test]
fn the_embedded_python_sdk_is_every_module_of_the_package() -> Result<(), Box<dyn std::error::Error>>
{
    let mut on_disk: Vec<String> = std::fs::read_dir(sdk().join("python/weir_plugin"))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".py"))
        .collect();
    on_disk.sort();
    let mut embedded = python_sdk::file_names();
    embedded.sort();
    assert_eq!(embedded, on_disk);
    Ok(())
}

/// Makes a Python plugin and runs its test the way `weir plugin build` does.
fn python_scaffold_test(kind: Kind) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let plugin = new_plugin(dir.path(), "word_count", Language::Python, kind, &sdk())?;
    assert_eq!(detect(&plugin)?, Language::Python);
    let code = std::fs::read_to_string(plugin.join("plugin.py"))?;
    assert!(code.contains("class WordCount("), "{code}");
    assert!(code.contains("@export(name=\"word_count\""), "{code}");
    let readme = std::fs::read_to_string(plugin.join("README.md"))?;
    assert!(readme.starts_with("# word_count\n"), "{readme}");
    let sdk_copy = tempfile::tempdir()?;
    python_sdk::write(sdk_copy.path())?;
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            ".",
            "-p",
            "test_*.py",
            "-v",
        ])
        .env("PYTHONPATH", sdk_copy.path())
        .current_dir(&plugin)
        .output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Ran 1 test"), "{log}");
    Ok(())
}

#[test]
fn a_new_python_transform_passes_its_own_test_against_the_embedded_sdk()
-> Result<(), Box<dyn std::error::Error>> {
    python_scaffold_test(Kind::Transform)
}

#[test]
fn a_new_python_aggregate_passes_its_own_test_against_the_embedded_sdk()
-> Result<(), Box<dyn std::error::Error>> {
    python_scaffold_test(Kind::Aggregate)
}

#[test]
fn a_new_rust_plugin_is_a_crate_of_its_own_on_the_sdk_it_was_given()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let plugin = new_plugin(dir.path(), "shout", Language::Rust, Kind::Aggregate, &sdk())?;
    assert_eq!(detect(&plugin)?, Language::Rust);
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(plugin.join("Cargo.toml"))?)?;
    assert_eq!(manifest["package"]["name"].as_str(), Some("shout"));
    let path = manifest["dependencies"]["weir-plugin-sdk"]["path"].as_str();
    assert_eq!(path, Some(sdk().to_string_lossy().as_ref()));
    assert!(manifest.contains_key("workspace"));
    let code = std::fs::read_to_string(plugin.join("src/lib.rs"))?;
    assert!(
        code.contains("weir_plugin_sdk::export_aggregate!(Shout);"),
        "{code}"
    );
    Ok(())
}

#[test]
fn a_folder_without_a_plugin_is_named_as_such() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let err = detect(dir.path());
    assert!(matches!(err, Err(DevelopError::NotAPlugin(_))), "{err:?}");
    Ok(())
}

#[test]
fn the_embedded_js_sdk_is_every_file_of_the_package() -> Result<(), Box<dyn std::error::Error>> {
    let mut on_disk: Vec<String> = std::fs::read_dir(sdk().join("js/src"))?
        .filter_map(Result::ok)
        .map(|e| format!("src/{}", e.file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".js"))
        .collect();
    on_disk.push("package.json".into());
    on_disk.sort();
    let mut embedded = js_sdk::file_names();
    embedded.sort();
    assert_eq!(embedded, on_disk);
    Ok(())
}

/// Makes a JavaScript plugin and runs its test the way `weir plugin build` does: with the
/// embedded SDK in `node_modules/` above it.
fn js_scaffold_test(kind: Kind) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    js_sdk::write(dir.path())?;
    std::fs::write(dir.path().join("package.json"), "{\"type\": \"module\"}\n")?;
    let plugin = new_plugin(dir.path(), "word_count", Language::Js, kind, &sdk())?;
    assert_eq!(detect(&plugin)?, Language::Js);
    let code = std::fs::read_to_string(plugin.join("plugin.js"))?;
    assert!(code.contains("export class WordCount extends"), "{code}");
    assert!(
        code.contains("exportPlugin(WordCount, { name: \"word_count\""),
        "{code}"
    );
    let out = Command::new("node")
        .arg("--test")
        .current_dir(&plugin)
        .output()?;
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("# pass 1") && log.contains("# fail 0"),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_new_js_transform_passes_its_own_test_against_the_embedded_sdk()
-> Result<(), Box<dyn std::error::Error>> {
    js_scaffold_test(Kind::Transform)
}

#[test]
fn a_new_js_aggregate_passes_its_own_test_against_the_embedded_sdk()
-> Result<(), Box<dyn std::error::Error>> {
    js_scaffold_test(Kind::Aggregate)
}
