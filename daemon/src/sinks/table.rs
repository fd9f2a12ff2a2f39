//! Spark's `Dataset.showString`: the `+---+` table the console sink prints.
//!
//! Column width is the widest of header and cells (at least 3), measured in display columns.
//! With truncation, cells longer than the limit are cut to `limit - 3` characters plus `...` and
//! everything is right-aligned; without it, cells are whole and left-aligned.

use super::cells::CellFormatter;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use unicode_width::UnicodeWidthStr;

const MIN_COLUMN_WIDTH: usize = 3;

fn truncate_cell(cell: String, limit: Option<usize>) -> String {
    match limit {
        Some(limit) if cell.chars().count() > limit => {
            if limit < 4 {
                cell.chars().take(limit).collect()
            } else {
                let mut cut: String = cell.chars().take(limit - 3).collect();
                cut.push_str("...");
                cut
            }
        }
        _ => cell,
    }
}

fn pad(out: &mut String, cell: &str, width: usize, right_align: bool) {
    let fill = width.saturating_sub(cell.width());
    if right_align {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(cell);
    } else {
        out.push_str(cell);
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

/// Renders at most `num_rows` rows of `batches`; `truncate` is the cell limit, `None` for whole
/// cells. Ends with a newline (and the "only showing top N rows" line when rows were left out).
pub fn render_table(
    schema: &Schema,
    batches: &[RecordBatch],
    num_rows: usize,
    truncate: Option<usize>,
    formatter: &CellFormatter,
) -> String {
    let headers: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| truncate_cell(f.name().clone(), truncate))
        .collect();
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(total.min(num_rows));
    'outer: for batch in batches {
        for row in 0..batch.num_rows() {
            if rows.len() == num_rows {
                break 'outer;
            }
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| {
                        let mut cell = String::new();
                        formatter.write(&mut cell, column.as_ref(), row);
                        truncate_cell(cell, truncate)
                    })
                    .collect(),
            );
        }
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].width())
                .chain([headers[i].width(), MIN_COLUMN_WIDTH])
                .max()
                .unwrap_or(MIN_COLUMN_WIDTH)
        })
        .collect();
    let right_align = truncate.is_some();
    let mut sep = String::from("+");
    for w in &widths {
        sep.extend(std::iter::repeat_n('-', *w));
        sep.push('+');
    }
    sep.push('\n');

    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (cell, w) in cells.iter().zip(&widths) {
            pad(out, cell, *w, right_align);
            out.push('|');
        }
        out.push('\n');
    };
    out.push_str(&sep);
    line(&mut out, &headers);
    out.push_str(&sep);
    for row in &rows {
        line(&mut out, row);
    }
    out.push_str(&sep);
    if total > num_rows {
        let noun = if num_rows == 1 { "row" } else { "rows" };
        out.push_str(&format!("only showing top {num_rows} {noun}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    fn batch(words: &[&str], counts: &[i64]) -> (Arc<Schema>, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, false),
            Field::new("count", DataType::Int64, false),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(words.to_vec())),
                Arc::new(Int64Array::from(counts.to_vec())),
            ],
        );
        match b {
            Ok(b) => (schema, b),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn seed_word_count_layout_without_truncation() {
        let (schema, b) = batch(&["hello", "ok", "no", "world", "yes"], &[5, 8, 8, 4, 8]);
        let got = render_table(&schema, &[b], 20, None, &CellFormatter::default());
        let want = "\
+-----+-----+
|word |count|
+-----+-----+
|hello|5    |
|ok   |8    |
|no   |8    |
|world|4    |
|yes  |8    |
+-----+-----+
";
        assert_eq!(got, want);
    }

    #[test]
    fn empty_batch_prints_header_between_three_separators() {
        let (schema, b) = batch(&[], &[]);
        let got = render_table(&schema, &[b], 20, None, &CellFormatter::default());
        assert_eq!(
            got,
            "+----+-----+\n|word|count|\n+----+-----+\n+----+-----+\n"
        );
    }

    #[test]
    fn truncation_cuts_long_cells_and_right_aligns() {
        let (schema, b) = batch(&["a-very-long-word-that-goes-on", "x"], &[1, 22]);
        let got = render_table(&schema, &[b], 1, Some(20), &CellFormatter::default());
        let want = "\
+--------------------+-----+
|                word|count|
+--------------------+-----+
|a-very-long-word-...|    1|
+--------------------+-----+
only showing top 1 row
";
        assert_eq!(got, want);
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let (schema, b) = batch(&["日本", "abc"], &[1, 2]);
        let got = render_table(&schema, &[b], 20, None, &CellFormatter::default());
        assert!(got.contains("|日本|1    |\n|abc |2    |\n"), "{got}");
    }
}
