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
        let mut words = StringBuilder::with_capacity(lines.len() * 4, lines.value_data().len());
        let mut source_row = Vec::with_capacity(lines.len() * 4);
        let mut lower = String::new();
        for (row, line) in lines.iter().enumerate() {
            for word in line.unwrap_or("").split_whitespace() {
                if self.settings.lowercase {
                    lower.clear();
                    lower.extend(word.chars().flat_map(char::to_lowercase));
                    words.append_value(&lower);
                } else {
                    words.append_value(word);
                }
                source_row.push(row as u32);
            }
        }
        Ok(FlatMapOutput {
            input_rows: source_row,
            columns: vec![Arc::new(words.finish())],
        })
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
    fn rejects_a_missing_or_non_string_column() {
        let mut plugin = FlatMapped::<WordSplit>::new(&Config::from_json("{}").unwrap()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("line", DataType::Int64, true)]));
        let err = plugin.output_schema(&schema).err().unwrap();
        assert!(err.message().contains("needs a string"), "{err}");
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        assert!(plugin.output_schema(&schema).is_err());
    }
}
