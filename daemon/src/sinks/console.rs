//! `console`: prints every batch, empty ones included, as Spark's console sink does: a
//! `Batch: N` banner between 43-dash lines, the table, and a blank line.

use super::cells::CellFormatter;
use super::table::render_table;
use super::{Sink, SinkError};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::io::Write;

/// The console sink.
#[derive(Debug)]
pub struct ConsoleSink {
    num_rows: usize,
    truncate: Option<usize>,
    formatter: CellFormatter,
    /// Shown after the batch id when several pipelines share the terminal.
    label: Option<String>,
}

const BANNER: &str = "-------------------------------------------";

impl ConsoleSink {
    /// A console sink showing `num_rows` rows, cutting cells at `truncate`.
    pub fn new(num_rows: usize, truncate: Option<usize>) -> ConsoleSink {
        ConsoleSink {
            num_rows,
            truncate,
            formatter: CellFormatter { utc: false },
            label: None,
        }
    }

    /// Names the pipeline in the banner (`Batch: 3 (rate-console)`): Spark's layout has no room
    /// for it, but several pipelines printing to one terminal cannot be told apart without it.
    pub fn with_label(mut self, label: &str) -> ConsoleSink {
        self.label = Some(label.to_string());
        self
    }

    /// The full text printed for one batch.
    pub fn render(&self, batch_id: u64, schema: &SchemaRef, batches: &[RecordBatch]) -> String {
        let table = render_table(
            schema,
            batches,
            self.num_rows,
            self.truncate,
            &self.formatter,
        );
        // Spark prints a blank line after the table, but none after "only showing top N rows".
        let tail = if table.ends_with("+\n") { "\n" } else { "" };
        match &self.label {
            Some(label) => {
                format!("{BANNER}\nBatch: {batch_id} ({label})\n{BANNER}\n{table}{tail}")
            }
            None => format!("{BANNER}\nBatch: {batch_id}\n{BANNER}\n{table}{tail}"),
        }
    }
}

impl Sink for ConsoleSink {
    fn write_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), SinkError> {
        let text = self.render(batch_id, schema, batches);
        // One locked write per batch: tables of several pipelines never interleave.
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|source| SinkError::Io {
                path: "<stdout>".into(),
                source,
            })
    }
}
