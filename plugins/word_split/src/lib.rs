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

/// Every byte of a `u64` with only bit 7 set.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
/// `byte` in every byte of a `u64`.
const fn every_byte(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

/// Bit 7 of each byte of `eight` (ASCII bytes, little-endian) set where that byte is whitespace
/// as `char::is_whitespace` has it: a space, or tab, line feed, vertical tab, form feed or
/// carriage return (9 to 13; `u8::is_ascii_whitespace` leaves out the vertical tab). Each byte
/// is below 0x80, so adding up to 0x7f to it never carries into the next byte.
fn space_bits(eight: u64) -> u64 {
    let not_space = (eight ^ every_byte(b' ')).wrapping_add(every_byte(0x7f));
    let at_least_9 = eight.wrapping_add(every_byte(0x80 - 9));
    let at_least_14 = eight.wrapping_add(every_byte(0x80 - 14));
    (!not_space | (at_least_9 & !at_least_14)) & HIGH_BITS
}

/// `split_whitespace` for an ASCII line, eight bytes at a time: a word starts at a byte that is
/// not whitespace after one that is, and ends at the next whitespace, so each step finds the
/// starts and ends among eight bytes with a few word operations and visits only those. In the
/// component every loop step also checks the host's deadline (about a sixth of a parsing
/// plugin's time, BENCHMARKS.md), so fewer steps matter there more than natively.
fn split_ascii(line: &str, mut each: impl FnMut(&str)) {
    let bytes = line.as_bytes();
    // Bit 7 of the byte before the current eight: set when it was whitespace (or there was
    // none), that is when no word is open.
    let mut before: u64 = 0x80;
    let mut start = 0;
    let mut base = 0;
    while base < bytes.len() {
        // The last, short step is padded with spaces: a word running to the end of the line
        // ends where the line does.
        let mut eight = [b' '; 8];
        let take = (bytes.len() - base).min(8);
        eight[..take].copy_from_slice(&bytes[base..base + take]);
        let spaces = space_bits(u64::from_le_bytes(eight));
        let previous = (spaces << 8) | before;
        let starts = !spaces & previous & HIGH_BITS;
        let ends = spaces & !previous & HIGH_BITS;
        let mut edges = starts | ends;
        while edges != 0 {
            let at = base + (edges.trailing_zeros() / 8) as usize;
            if starts & edges & edges.wrapping_neg() != 0 {
                start = at;
            } else {
                each(line.get(start..at).unwrap_or_default());
            }
            edges &= edges - 1;
        }
        before = (spaces >> 56) & 0x80;
        base += 8;
    }
    // A line of whole steps may end inside a word.
    if before == 0 {
        each(line.get(start..).unwrap_or_default());
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
    fn the_ascii_split_finds_the_words_split_whitespace_finds_in_random_lines_of_every_length() {
        // Lines of 0 to 40 bytes drawn from letters and every ASCII whitespace, so words and
        // runs of whitespace start and end at every position of the eight-byte steps.
        const ALPHABET: &[u8] = b"ab \t\n\x0b\x0c\r Z\x1f";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = (state >> 58) as usize % 41;
            let line: String = (0..len)
                .map(|i| {
                    let pick = (state.rotate_left(7 * i as u32) >> 40) as usize;
                    ALPHABET[pick % ALPHABET.len()] as char
                })
                .collect();
            let mut got = Vec::new();
            split_ascii(&line, |w| got.push(w.to_string()));
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
