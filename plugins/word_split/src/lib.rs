//! `word_split`: lines → words. Each input row becomes one row per whitespace-separated word
//! of `column`, the other columns repeated; a null or blank line yields no rows. A `FlatMap`:
//! only the text enters the plugin, and weir repeats the other columns itself.
//!
//! ```toml
//! [[transform]]
//! plugin = "word_split"
//! config = { column = "line", output = "word", lowercase = false }
//! ```

use std::sync::Arc;
use weir_plugin_sdk::arrow_array::builder::StringBuilder;
use weir_plugin_sdk::arrow_array::cast::AsArray;
use weir_plugin_sdk::arrow_array::{Array, RecordBatch};
use weir_plugin_sdk::arrow_schema::{DataType, Field, SchemaRef};
use weir_plugin_sdk::{Config, Error, FlatMap, FlatMapOutput, Plan};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_column")]
    column: String,
    #[serde(default = "default_output")]
    output: String,
    #[serde(default)]
    lowercase: bool,
}

fn default_column() -> String {
    "line".into()
}

fn default_output() -> String {
    "word".into()
}

/// The plugin.
pub struct WordSplit {
    settings: Settings,
}

impl FlatMap for WordSplit {
    fn new(config: &Config) -> Result<Self, Error> {
        Ok(WordSplit {
            settings: config.parse()?,
        })
    }

    fn plan(&mut self, input: &SchemaRef) -> Result<Plan, Error> {
        let column = &self.settings.column;
        let field = input
            .field_with_name(column)
            .map_err(|_| Error::new(format!("the input has no column `{column}` to split")))?;
        if field.data_type() != &DataType::Utf8 {
            return Err(Error::new(format!(
                "column `{column}` is {}, word_split needs a string",
                field.data_type()
            )));
        }
        // The text column gives way to the words (replaced where it stood when they share a
        // name).
        let output = &self.settings.output;
        Ok(Plan {
            reads: vec![column.clone()],
            writes: vec![Field::new(output, DataType::Utf8, false)],
            drops: if output == column {
                Vec::new()
            } else {
                vec![column.clone()]
            },
        })
    }

    fn flat_map(&mut self, batch: &RecordBatch) -> Result<FlatMapOutput, Error> {
        let column = &self.settings.column;
        let index = batch.schema().index_of(column)?;
        let lines = batch.column(index).as_string::<i32>();
        // A line of n bytes holds at most (n + 1) / 2 words: reserving that bound once costs
        // only address space (pages never written are never touched), where growing the
        // buffers as words come copies them, in a component a copy in its own memory.
        let bytes = lines.value_data().len();
        let most = bytes / 2 + lines.len();
        let mut words = StringBuilder::with_capacity(most, bytes);
        let mut source_row = Vec::with_capacity(most);
        let mut lower = String::new();
        let lowercase = self.settings.lowercase;
        let mut emit = |row: usize, word: &str| {
            if lowercase {
                lower.clear();
                lower.extend(word.chars().flat_map(char::to_lowercase));
                words.append_value(&lower);
            } else {
                words.append_value(word);
            }
            source_row.push(row as u32);
        };
        for (row, line) in lines.iter().enumerate() {
            let line = line.unwrap_or("");
            if line.is_ascii() {
                split_ascii(line, |word| emit(row, word));
            } else {
                line.split_whitespace().for_each(|word| emit(row, word));
            }
        }
        Ok(FlatMapOutput {
            input_rows: source_row,
            columns: vec![Arc::new(words.finish())],
        })
    }
}

/// Whether an ASCII byte is whitespace as `char::is_whitespace` has it (tab, line feed,
/// vertical tab, form feed, carriage return, space; `u8::is_ascii_whitespace` leaves out the
/// vertical tab).
fn is_ascii_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `split_whitespace` for an ASCII line: one pass over its bytes, with no character decoding
/// (the loop Cranelift compiles the step per byte of, in the component).
fn split_ascii(line: &str, mut each: impl FnMut(&str)) {
    let mut start = None;
    for (at, &byte) in line.as_bytes().iter().enumerate() {
        match (is_ascii_space(byte), start) {
            (true, Some(from)) => {
                each(line.get(from..at).unwrap_or_default());
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(from) = start {
        each(line.get(from..).unwrap_or_default());
    }
}

weir_plugin_sdk::export_flat_map!(WordSplit);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::arrow_array::{ArrayRef, Int64Array, StringArray};
    use weir_plugin_sdk::arrow_schema::Schema;
    use weir_plugin_sdk::{FlatMapped, Transform};

    #[test]
    fn splits_lines_into_words_keeping_other_columns() {
        let config = Config::from_json(r#"{"column":"line","lowercase":true}"#).unwrap();
        let mut plugin = FlatMapped::<WordSplit>::new(&config).unwrap();
        let input = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
            ),
            (
                "line",
                Arc::new(StringArray::from(vec![
                    Some("Hello  world"),
                    None,
                    Some(" "),
                    Some("a B"),
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        let schema = plugin.output_schema(&input.schema()).unwrap();
        let out = plugin.process(input).unwrap();
        assert_eq!(out.schema(), schema);
        let words: Vec<&str> = out.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(words, ["hello", "world", "a", "b"]);
        let ids: Vec<i64> = out
            .column(0)
            .as_primitive::<weir_plugin_sdk::arrow_array::types::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, [1, 1, 4, 4]);
    }

    #[test]
    fn the_ascii_split_finds_the_words_split_whitespace_finds() {
        for line in [
            "",
            " ",
            "a",
            " a ",
            "hello world",
            "\ttab\u{b}vt\u{c}ff\r\ncr  two",
            "x\u{1f}y",
        ] {
            let mut got = Vec::new();
            split_ascii(line, |w| got.push(w.to_string()));
            let want: Vec<String> = line.split_whitespace().map(String::from).collect();
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn rejects_a_missing_or_non_string_column() {
        let mut plugin = FlatMapped::<WordSplit>::new(&Config::from_json("{}").unwrap()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("line", DataType::Int64, true)]));
        let err = plugin.output_schema(&schema).err().unwrap();
        assert!(err.message().contains("needs a string"), "{err}");
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        assert!(plugin.output_schema(&schema).is_err());
    }
}
