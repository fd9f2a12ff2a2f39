//! Turning one file's bytes into record batches with Arrow's own readers, record by record when
//! a chunk holds malformed rows: the fast path decodes 64k rows at a time; a chunk that fails is
//! decoded again one record at a time, so each bad record is found, located (file, line, byte)
//! and handed to the `on_error` policy while the good ones are kept.

use super::timestamps::TimestampsAsText;
use crate::config::{FileSourceSpec, InputFormat};
use crate::sources::bad_records::{BadRecords, RecordLocation};
use crate::sources::{CHUNK_ROWS, SourceError};
use arrow::array::{ArrayRef, StringBuilder, new_null_array};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;

/// Reads a whole file's bytes (as logged) into batches of `schema`.
pub fn read_bytes(
    spec: &FileSourceSpec,
    schema: &SchemaRef,
    path: &Path,
    bytes: &[u8],
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let mut file = FileCursor {
        path,
        bytes,
        lines: LineCounter::default(),
    };
    match spec.format {
        InputFormat::Csv => read_csv(spec, schema, &mut file, bad, out),
        InputFormat::Json => read_json(schema, &mut file, bad, out),
        InputFormat::Text => read_text(schema, &mut file, bad, out),
        InputFormat::Parquet => Err(SourceError::Config(
            "parquet files are read from the file, not from bytes (a bug)".into(),
        )),
    }
}

/// Counts line breaks lazily: only the slow path needs line numbers.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    lines: u64,
}

struct FileCursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    lines: LineCounter,
}

impl FileCursor<'_> {
    /// The 1-based line of byte `pos`.
    fn line_of(&mut self, pos: usize) -> u64 {
        if pos < self.lines.pos {
            self.lines = LineCounter::default();
        }
        let pos = pos.min(self.bytes.len());
        self.lines.lines += self.bytes[self.lines.pos..pos]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.lines.pos = pos;
        self.lines.lines + 1
    }

    fn bad(
        &mut self,
        bad: &mut BadRecords,
        pos: usize,
        reason: &str,
        raw: &[u8],
    ) -> Result<(), SourceError> {
        let line = self.line_of(pos);
        let raw = trim_line_end(raw);
        bad.record(
            RecordLocation {
                file: Some(self.path),
                line: Some(line),
                byte_offset: Some(pos as u64),
                ..RecordLocation::default()
            },
            reason,
            raw,
        )
    }
}

fn trim_line_end(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

fn is_blank(raw: &[u8]) -> bool {
    raw.iter().all(u8::is_ascii_whitespace)
}

/// Arrow's messages name lines of its own decoder; the caller knows the real place, so the
/// position is cut out, and so is the row dump (the raw record travels separately).
pub fn clean_reason(err: &ArrowError) -> String {
    let text = match err {
        ArrowError::ParseError(s) | ArrowError::CsvError(s) | ArrowError::JsonError(s) => s.clone(),
        other => other.to_string(),
    };
    let text = match text.find(". Row data:") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(" line ") {
        let after = &rest[i + 6..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            out.push_str(&rest[..i + 6]);
            rest = after;
            continue;
        }
        let head = rest[..i].trim_end_matches(" at").trim_end_matches(" for");
        out.push_str(head);
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Arrow's CSV messages number columns from 0; say the column's name too.
fn name_column(reason: &str, schema: &SchemaRef) -> String {
    let Some(at) = reason.find("for column ") else {
        return reason.to_string();
    };
    let rest = &reason[at + "for column ".len()..];
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match rest[..digits]
        .parse::<usize>()
        .ok()
        .and_then(|i| schema.fields().get(i))
    {
        Some(field) => format!(
            "{}for column `{}`{}",
            &reason[..at],
            field.name(),
            &rest[digits..]
        ),
        None => reason.to_string(),
    }
}

fn concat(
    schema: &SchemaRef,
    good: &[RecordBatch],
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    if !good.is_empty() {
        out.push(arrow::compute::concat_batches(schema, good)?);
    }
    Ok(())
}

// ---- CSV ----

fn csv_decoder(
    spec: &FileSourceSpec,
    schema: &SchemaRef,
    rows: usize,
) -> arrow::csv::reader::Decoder {
    arrow::csv::ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(spec.delimiter)
        .with_quote(spec.quote)
        .with_batch_size(rows)
        .build_decoder()
}

/// The end of the CSV record starting at `pos` (quotes respected), or the end of the input.
fn csv_record_end(spec: &FileSourceSpec, bytes: &[u8], pos: usize, scratch: &mut Vec<u8>) -> usize {
    let mut reader = csv_core::ReaderBuilder::new()
        .delimiter(spec.delimiter)
        .quote(spec.quote)
        .build();
    let mut ends = [0usize; 256];
    let mut at = pos;
    if scratch.len() < 4096 {
        scratch.resize(4096, 0);
    }
    loop {
        let (result, nin, _, _) = reader.read_record(&bytes[at..], scratch, &mut ends);
        at += nin;
        match result {
            csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => return at,
            csv_core::ReadRecordResult::InputEmpty if at >= bytes.len() => {
                // Feed the end of input so the last record completes.
                let (_, _, _, _) = reader.read_record(&[], scratch, &mut ends);
                return at;
            }
            csv_core::ReadRecordResult::InputEmpty
            | csv_core::ReadRecordResult::OutputFull
            | csv_core::ReadRecordResult::OutputEndsFull => {
                // Only the record's extent matters here: output space is reused.
            }
        }
    }
}

fn read_csv(
    spec: &FileSourceSpec,
    schema: &SchemaRef,
    file: &mut FileCursor<'_>,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let bytes = file.bytes;
    let mut scratch = Vec::new();
    let mut pos = if spec.header {
        csv_record_end(spec, bytes, 0, &mut scratch)
    } else {
        0
    };
    let timestamps = TimestampsAsText::new(schema);
    let decode_schema = timestamps
        .as_ref()
        .map_or(schema, TimestampsAsText::text_schema);
    while pos < bytes.len() {
        let chunk_start = pos;
        let mut decoder = csv_decoder(spec, decode_schema, CHUNK_ROWS);
        let fast = (|| {
            loop {
                let n = decoder.decode(&bytes[pos..])?;
                pos += n;
                if n == 0 || decoder.capacity() == 0 || pos >= bytes.len() {
                    break;
                }
            }
            if pos >= bytes.len() {
                decoder.decode(&[])?;
            }
            match (decoder.flush()?, &timestamps) {
                (Some(batch), Some(t)) => t.finish(batch).map(Some),
                (batch, _) => Ok(batch),
            }
        })();
        match fast {
            Ok(Some(batch)) => out.push(batch),
            Ok(None) => {}
            Err(_) => pos = csv_slow(spec, schema, file, chunk_start, bad, out, &mut scratch)?,
        }
    }
    Ok(())
}

/// Decodes up to a chunk of records from `from`, halving the failing ranges until each bad
/// record stands alone (so k bad records cost O(k log n) decodes, not one per record);
/// returns where it stopped.
fn csv_slow(
    spec: &FileSourceSpec,
    schema: &SchemaRef,
    file: &mut FileCursor<'_>,
    from: usize,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
    scratch: &mut Vec<u8>,
) -> Result<usize, SourceError> {
    let bytes = file.bytes;
    let mut pos = from;
    let mut records = Vec::new();
    while pos < bytes.len() && records.len() < CHUNK_ROWS {
        let end = csv_record_end(spec, bytes, pos, scratch).max(pos + 1);
        let record = &bytes[pos..end];
        if !is_blank(record) {
            let start = pos + (record.len() - record.trim_ascii_start().len());
            records.push((start, end));
        }
        pos = end;
    }
    let timestamps = TimestampsAsText::new(schema);
    let decode_schema = timestamps
        .as_ref()
        .map_or(schema, TimestampsAsText::text_schema);
    let mut decode = |slice: &[u8], rows: usize| {
        let mut decoder = csv_decoder(spec, decode_schema, rows);
        decoder.decode(slice)?;
        decoder.decode(&[])?;
        match (decoder.flush()?, &timestamps) {
            (Some(batch), Some(t)) => t.finish(batch).map(Some),
            (batch, _) => Ok(batch),
        }
    };
    let mut good = Vec::new();
    bisect(
        file,
        &records,
        &mut decode,
        &mut |file, (start, end), err| {
            let reason = name_column(&clean_reason(&err), schema);
            file.bad(bad, start, &reason, &file.bytes[start..end])
        },
        &mut good,
    )?;
    concat(schema, &good, out)?;
    Ok(pos)
}

type Decode<'a> = dyn FnMut(&[u8], usize) -> Result<Option<RecordBatch>, ArrowError> + 'a;
type OnBad<'a> =
    dyn FnMut(&mut FileCursor<'_>, (usize, usize), ArrowError) -> Result<(), SourceError> + 'a;

/// Decodes the contiguous records `records` (byte ranges, in order) as one batch; if that
/// fails, each half again, down to single records, which are the bad ones.
fn bisect(
    file: &mut FileCursor<'_>,
    records: &[(usize, usize)],
    decode: &mut Decode<'_>,
    on_bad: &mut OnBad<'_>,
    good: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(());
    };
    // Blank records between them are harmless to both decoders.
    match decode(&file.bytes[first.0..last.1], records.len()) {
        Ok(Some(batch)) if batch.num_rows() == records.len() => {
            good.push(batch);
            Ok(())
        }
        result => {
            if let [one] = records {
                let err = match result {
                    Err(err) => err,
                    Ok(_) => {
                        ArrowError::ParseError("the record does not make exactly one row".into())
                    }
                };
                return on_bad(file, *one, err);
            }
            let (left, right) = records.split_at(records.len() / 2);
            bisect(file, left, decode, on_bad, good)?;
            bisect(file, right, decode, on_bad, good)
        }
    }
}

// ---- JSON lines ----

fn json_decoder(
    schema: &SchemaRef,
    rows: usize,
) -> Result<arrow::json::reader::Decoder, SourceError> {
    Ok(arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows)
        .build_decoder()?)
}

fn read_json(
    schema: &SchemaRef,
    file: &mut FileCursor<'_>,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let bytes = file.bytes;
    let mut pos = 0;
    while pos < bytes.len() {
        let chunk_start = pos;
        let mut decoder = json_decoder(schema, CHUNK_ROWS)?;
        let fast = (|| {
            loop {
                let n = decoder.decode(&bytes[pos..])?;
                pos += n;
                if n == 0 || pos >= bytes.len() {
                    break;
                }
            }
            if decoder.has_partial_record() {
                return Err(ArrowError::JsonError("unterminated JSON value".into()));
            }
            decoder.flush()
        })();
        match fast {
            Ok(Some(batch)) => out.push(batch),
            Ok(None) => {}
            Err(_) => pos = json_slow(schema, file, chunk_start, bad, out)?,
        }
    }
    Ok(())
}

fn json_slow(
    schema: &SchemaRef,
    file: &mut FileCursor<'_>,
    from: usize,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<usize, SourceError> {
    let bytes = file.bytes;
    let mut pos = from;
    let mut records = Vec::new();
    while pos < bytes.len() && records.len() < CHUNK_ROWS {
        let end = bytes[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        if !is_blank(&bytes[pos..end]) {
            records.push((pos, end));
        }
        pos = end;
    }
    let mut decode = |slice: &[u8], rows: usize| {
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(rows)
            .build_decoder()?;
        let used = decoder.decode(slice)?;
        if !is_blank(&slice[used..]) {
            return Err(ArrowError::JsonError(
                "more than one JSON value on the line".into(),
            ));
        }
        if decoder.has_partial_record() {
            return Err(ArrowError::JsonError("unterminated JSON value".into()));
        }
        decoder.flush()
    };
    let mut good = Vec::new();
    bisect(
        file,
        &records,
        &mut decode,
        &mut |file, (start, end), err| {
            file.bad(bad, start, &clean_reason(&err), &file.bytes[start..end])
        },
        &mut good,
    )?;
    concat(schema, &good, out)?;
    Ok(pos)
}

// ---- text ----

fn read_text(
    schema: &SchemaRef,
    file: &mut FileCursor<'_>,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let bytes = file.bytes;
    let mut values = StringBuilder::with_capacity(
        CHUNK_ROWS.min(bytes.len() / 8 + 1),
        bytes.len().min(64 << 20),
    );
    let mut rows = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let line = trim_line_end(&bytes[pos..end]);
        match std::str::from_utf8(line) {
            Ok(text) => {
                values.append_value(text);
                rows += 1;
                if rows == CHUNK_ROWS {
                    out.push(RecordBatch::try_new(
                        schema.clone(),
                        vec![Arc::new(values.finish()) as ArrayRef],
                    )?);
                    rows = 0;
                }
            }
            Err(err) => file.bad(bad, pos, &format!("line is not valid UTF-8 ({err})"), line)?,
        }
        pos = end;
    }
    if rows > 0 {
        out.push(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(values.finish()) as ArrayRef],
        )?);
    }
    Ok(())
}

// ---- Parquet ----

/// Reads a Parquet file, matching its columns to `schema` by name (missing columns are an
/// error, types are cast). A file that cannot be read is one malformed record.
pub fn read_parquet(
    schema: &SchemaRef,
    path: &Path,
    file: std::fs::File,
    bad: &mut BadRecords,
    out: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    let mut batches = Vec::new();
    match parquet_batches(schema, file, &mut batches) {
        Ok(()) => {
            out.append(&mut batches);
            Ok(())
        }
        Err(reason) => bad.record(
            RecordLocation {
                file: Some(path),
                ..RecordLocation::default()
            },
            &format!("unreadable Parquet file: {reason}"),
            b"",
        ),
    }
}

fn parquet_batches(
    schema: &SchemaRef,
    file: std::fs::File,
    out: &mut Vec<RecordBatch>,
) -> Result<(), String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| e.to_string())?
        .with_batch_size(CHUNK_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = match batch.schema().index_of(field.name()) {
                Ok(i) => arrow::compute::cast(batch.column(i), field.data_type())
                    .map_err(|e| format!("column `{}`: {e}", field.name()))?,
                Err(_) if field.is_nullable() => {
                    new_null_array(field.data_type(), batch.num_rows())
                }
                Err(_) => return Err(format!("column `{}` is missing", field.name())),
            };
            columns.push(column);
        }
        out.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CleanSource, OnError};
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use arrow::error::ArrowError;

    fn spec(format: InputFormat) -> FileSourceSpec {
        FileSourceSpec {
            path: "/in".into(),
            is_glob: false,
            format,
            columns: Vec::new(),
            header: true,
            delimiter: b',',
            quote: b'"',
            max_files_per_trigger: None,
            max_bytes_per_trigger: None,
            latest_first: false,
            max_file_age: std::time::Duration::from_secs(1),
            clean_source: CleanSource::Off,
            stable_for: std::time::Duration::ZERO,
            list_interval: std::time::Duration::from_secs(1),
            watch: true,
            on_error: OnError::DeadLetter,
            include_file_name: false,
            compression: crate::config::Compression::Auto,
            max_decompressed_size: 1 << 30,
        }
    }

    /// Bad rows far into a file, past the first fast chunk: every good row is kept, in order,
    /// and each bad one is located at its real line.
    #[test]
    fn bad_rows_between_large_chunks_are_found_and_located()
    -> Result<(), Box<dyn std::error::Error>> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("word", DataType::Utf8, true),
        ]));
        let rows = 3 * CHUNK_ROWS + 7;
        let bad_ids = [5usize, CHUNK_ROWS + 3, 2 * CHUNK_ROWS + 100, rows - 1];
        let mut csv = String::from("id,word\n");
        let mut json = String::new();
        for id in 0..rows {
            if bad_ids.contains(&id) {
                csv.push_str(&format!("x{id},bad\n"));
                json.push_str(&format!("{{\"id\":\"x{id}\"}}\n"));
            } else {
                csv.push_str(&format!("{id},\"w,{id}\"\n"));
                json.push_str(&format!("{{\"id\":{id},\"word\":\"w,{id}\"}}\n"));
            }
        }
        for (format, text, header_lines) in [
            (InputFormat::Csv, &csv, 1u64),
            (InputFormat::Json, &json, 0u64),
        ] {
            let dir = tempfile::tempdir()?;
            let ctx = crate::sources::SourceContext::for_test(dir.path())?;
            let mut bad = BadRecords::new(OnError::DeadLetter, "file", &ctx);
            bad.begin();
            let mut out = Vec::new();
            read_bytes(
                &spec(format),
                &schema,
                Path::new("/in/f"),
                text.as_bytes(),
                &mut bad,
                &mut out,
            )?;
            let counts = bad.finish("r")?;
            assert_eq!(counts.dead_lettered, bad_ids.len() as u64, "{format:?}");
            let ids: Vec<i64> = out
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect();
            let expected: Vec<i64> = (0..rows)
                .filter(|id| !bad_ids.contains(id))
                .map(|id| id as i64)
                .collect();
            assert_eq!(ids, expected, "{format:?}");
            let letters = std::fs::read_to_string(
                crate::sources::dead_letter_dir(dir.path(), "p").join("r-c0ffee00.jsonl"),
            )?;
            let lines: Vec<u64> = letters
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .map(|v| v["line"].as_u64().unwrap_or(0))
                })
                .collect::<Result<_, _>>()?;
            let want: Vec<u64> = bad_ids
                .iter()
                .map(|id| *id as u64 + 1 + header_lines)
                .collect();
            assert_eq!(lines, want, "{format:?}");
        }
        Ok(())
    }

    #[test]
    fn reasons_lose_arrows_own_line_numbers() {
        let parse = ArrowError::ParseError(
            "Error while parsing value 'abc' as type 'Int64' for column 1 at line 0. Row data: '[x,abc]'".into(),
        );
        assert_eq!(
            clean_reason(&parse),
            "Error while parsing value 'abc' as type 'Int64' for column 1"
        );
        let csv =
            ArrowError::CsvError("incorrect number of fields for line 1, expected 3 got 2".into());
        assert_eq!(
            clean_reason(&csv),
            "incorrect number of fields, expected 3 got 2"
        );
    }
}
