//! The parser against mangled pipeline files: the example pipelines with random edits, and
//! arbitrary text. Whatever the input, parsing returns (never panics), and every error points at
//! a real place of the text it was given.

use super::{Diagnostics, parse_pipeline};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn examples() -> Vec<(PathBuf, String)> {
    let dir = crate::test_support::crate_dir().join("../config/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    files.sort();
    files
}

/// Fragments that TOML and our schema give meaning to, so edits reach past the tokenizer.
const FRAGMENTS: &[&str] = &[
    "=",
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    "\n",
    "#",
    ".",
    " ",
    "\"10s\"",
    "\"-1s\"",
    "\"5 parsecs\"",
    "-1",
    "0",
    "1e400",
    "18446744073709551616",
    "nan",
    "true",
    "\"\u{1F600}\"",
    "\u{0301}",
    "é",
    "type",
    "name",
    "source",
    "sink",
    "aggregate",
    "window",
    "watermark",
    "functions",
    "group_by",
    "rows_per_second",
    "trigger",
    "output_mode",
    "\"append\"",
    "\"complete\"",
    "\"datagen\"",
    "\"file\"",
    "\"socket\"",
    "[[source.column]]",
    "[[sink]]",
    "[[transform]]",
    "[aggregate]",
    "{ fn = \"avg\" }",
    "{ processing_time = \"1s\" }",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete {
        at: usize,
        len: usize,
    },
    Insert {
        at: usize,
        fragment: usize,
    },
    Replace {
        at: usize,
        len: usize,
        fragment: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    let fragment = 0..FRAGMENTS.len();
    prop_oneof![
        (at, 1usize..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        (at, fragment.clone()).prop_map(|(at, fragment)| Edit::Insert { at, fragment }),
        (at, 1usize..12, fragment).prop_map(|(at, len, fragment)| Edit::Replace {
            at,
            len,
            fragment
        }),
    ]
}

/// Applies an edit at a character boundary chosen from `at`.
fn apply(text: &mut String, edit: &Edit) {
    let boundary = |at: usize| {
        let mut i = at % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let end_from = |start: usize, len: usize| {
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        end
    };
    match *edit {
        Edit::Delete { at, len } => {
            let start = boundary(at);
            let end = end_from(start, len);
            text.replace_range(start..end, "");
        }
        Edit::Insert { at, fragment } => {
            let at = boundary(at);
            text.insert_str(at, FRAGMENTS[fragment]);
        }
        Edit::Replace { at, len, fragment } => {
            let start = boundary(at);
            let end = end_from(start, len);
            text.replace_range(start..end, FRAGMENTS[fragment]);
        }
    }
}

/// Every located error names a line that exists, with that line's text, and renders with the
/// file's name and position.
fn check_errors(path: &Path, text: &str, errors: &Diagnostics) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "an error result with no errors");
    let lines: Vec<&str> = text.split('\n').collect();
    for diagnostic in errors.iter() {
        let rendered = diagnostic.to_string();
        prop_assert!(rendered.contains(&*path.to_string_lossy()), "{}", rendered);
        prop_assert!(!diagnostic.message.is_empty());
        let Some(location) = &diagnostic.location else {
            continue;
        };
        prop_assert!(
            location.line >= 1 && location.line <= lines.len(),
            "line {} of {}: {}",
            location.line,
            lines.len(),
            rendered
        );
        let line = lines[location.line - 1].trim_end_matches('\r');
        prop_assert_eq!(&location.line_text, line);
        prop_assert!(location.column >= 1 && location.column <= line.chars().count() + 1);
        prop_assert!(rendered.contains(&diagnostic.position()), "{}", rendered);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn edited_examples_parse_or_point_at_real_places(
        which in any::<usize>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let examples = examples();
        prop_assume!(!examples.is_empty());
        let (path, original) = &examples[which % examples.len()];
        let mut text = original.clone();
        for e in &edits {
            apply(&mut text, e);
        }
        if let Err(errors) = parse_pipeline(path, &text) {
            check_errors(path, &text, &errors)?;
        }
    }

    #[test]
    fn arbitrary_text_parses_or_points_at_real_places(text in any::<String>()) {
        let path = Path::new("/pipelines/arbitrary.toml");
        if let Err(errors) = parse_pipeline(path, &text) {
            check_errors(path, &text, &errors)?;
        }
    }
}

#[test]
fn every_example_parses_unedited() {
    let examples = examples();
    assert!(examples.len() >= 8, "examples not found");
    for (path, text) in examples {
        if let Err(errors) = parse_pipeline(&path, &text) {
            panic!("{}: {errors}", path.display());
        }
    }
}
