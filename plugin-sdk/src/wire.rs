//! The encoding of Arrow data at the plugin boundary, shared by the host and the guest so both
//! sides agree by construction.
//!
//! A column crosses as its Arrow buffers, not as an IPC message: the component model copies each
//! `list<u8>` straight into the other side's memory and the receiver wraps it as an Arrow buffer
//! without another copy, so a batch costs one copy each way and no framing. Data types never
//! cross with the data; both sides know them from the schema exchanged at load (as an Arrow IPC
//! schema message, the one standard encoding of a schema).
//!
//! Wire order, for each array depth first: a header (six little-endian `u32`: length, offset,
//! validity bit offset, has validity, buffer count, child count), then the validity bitmap if
//! it has one, then the array's buffers, then each child.
//!
//! A column a transform returns unchanged does not cross back: its header alone says "input
//! column *k*" (has validity = `u32::MAX`, offset = *k*, nothing after it), and the host keeps
//! the column it sent. Only top-level columns of a transform's output may be sent that way;
//! *k* indexes the input schema, so it may name a column the host did not send (a plugin that
//! declared which columns it reads is sent only those).
//!
//! A transform's output may begin with a selection: a header (has validity = `u32::MAX - 1`,
//! length = the input's row count, validity bit offset = the first bit, one buffer) and a
//! bitmap with bit *i* set to keep input row *i*. References in that output then stand for
//! the input columns with only the selected rows, which the host picks itself with Arrow's
//! filter kernel: a filter sends back one bit a row instead of its kept rows. It may instead
//! begin with the input row of each output row (has validity = `u32::MAX - 2`, length = the
//! output's row count, one buffer of little-endian `u32`): references then stand for the input
//! columns taken at those rows, which is how a flat-map repeats the columns it does not read. Decoding validates everything
//! (lengths, offsets, UTF-8) with Arrow's own checks, so malformed input is an error, never
//! undefined behaviour.

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, make_array};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow_data::{ArrayData, BufferSpec};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use arrow_select::filter::{FilterBuilder, FilterPredicate};
use std::sync::Arc;

const HEADER_LEN: usize = 24;

/// The "has validity" value of a header that stands for an input column returned unchanged.
const SAME_AS_INPUT: u32 = u32::MAX;

/// The "has validity" value of the header of a selection of the input's rows.
const SELECTION: u32 = u32::MAX - 1;

/// The "has validity" value of the header of the input row of each output row.
const INPUT_ROWS: u32 = u32::MAX - 2;

/// The encoding broke its rules (a bug or a hostile peer on the other side).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Fewer buffers than the schema needs.
    #[error("batch ended early: expected more buffers for column `{0}`")]
    Truncated(String),
    /// More buffers than the schema needs.
    #[error("{0} unexpected buffers after the last column")]
    Trailing(usize),
    /// A header of the wrong size.
    #[error("column `{column}`: array header is {len} bytes, expected {HEADER_LEN}")]
    BadHeader {
        /// The column.
        column: String,
        /// Its actual length.
        len: usize,
    },
    /// Structure that does not fit the data type.
    #[error("column `{column}`: {message}")]
    Invalid {
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// Arrow refused the data.
    #[error("column `{column}` ({data_type}): {source}")]
    Arrow {
        /// The column.
        column: String,
        /// Its declared type.
        data_type: DataType,
        /// Arrow's complaint.
        source: ArrowError,
    },
    /// A row count that is not the length of the columns.
    #[error("{rows} rows announced but column `{column}` has {len}")]
    RowCount {
        /// Rows announced.
        rows: usize,
        /// The column.
        column: String,
        /// Its length.
        len: usize,
    },
    /// A schema that is not a valid Arrow IPC schema message.
    #[error("invalid schema: {0}")]
    Schema(ArrowError),
}

fn u32_of(value: usize, what: &str, column: &str) -> Result<u32, WireError> {
    u32::try_from(value).map_err(|_| WireError::Invalid {
        column: column.to_string(),
        message: format!("{what} {value} does not fit in 32 bits"),
    })
}

/// A header's six fields as bytes.
fn header_bytes(fields: [u32; 6]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    for (chunk, value) in out.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    out
}

fn header(data: &ArrayData, column: &str) -> Result<[u8; HEADER_LEN], WireError> {
    let (null_offset, has_nulls) = match data.nulls() {
        Some(nulls) if nulls.null_count() > 0 => (nulls.offset(), 1),
        _ => (0, 0),
    };
    let fields = [
        u32_of(data.len(), "length", column)?,
        u32_of(data.offset(), "offset", column)?,
        u32_of(null_offset, "validity offset", column)?,
        has_nulls,
        u32_of(data.buffers().len(), "buffer count", column)?,
        u32_of(data.child_data().len(), "child count", column)?,
    ];
    Ok(header_bytes(fields))
}

/// Headers of one array tree, kept alive while borrowed slices of them are sent.
#[derive(Debug, Default)]
pub struct Headers(Vec<[u8; HEADER_LEN]>);

/// Encodes arrays for sending without copying their buffers: returns the headers and the
/// slices in wire order (headers first collected in `headers`, which the slices borrow).
pub fn encode_headers(arrays: &[ArrayData], names: &[&str]) -> Result<Headers, WireError> {
    fn walk(
        data: &ArrayData,
        column: &str,
        out: &mut Vec<[u8; HEADER_LEN]>,
    ) -> Result<(), WireError> {
        out.push(header(data, column)?);
        for child in data.child_data() {
            walk(child, column, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    for (i, data) in arrays.iter().enumerate() {
        walk(data, names.get(i).copied().unwrap_or("?"), &mut out)?;
    }
    Ok(Headers(out))
}

/// The wire-order slices of `arrays`, borrowing `headers` from [`encode_headers`] (same arrays).
pub fn slices<'a>(arrays: &'a [ArrayData], headers: &'a Headers) -> Vec<&'a [u8]> {
    fn walk<'a>(
        data: &'a ArrayData,
        headers: &mut std::slice::Iter<'a, [u8; HEADER_LEN]>,
        out: &mut Vec<&'a [u8]>,
    ) {
        if let Some(h) = headers.next() {
            out.push(h.as_slice());
        }
        if let Some(nulls) = data.nulls().filter(|n| n.null_count() > 0) {
            out.push(nulls.buffer().as_slice());
        }
        for buffer in data.buffers() {
            out.push(buffer.as_slice());
        }
        for child in data.child_data() {
            walk(child, headers, out);
        }
    }
    let mut out = Vec::new();
    let mut iter = headers.0.iter();
    for data in arrays {
        walk(data, &mut iter, &mut out);
    }
    out
}

/// Encodes arrays into owned buffers (what a guest returns).
pub fn encode_owned(arrays: &[ArrayData], names: &[&str]) -> Result<Vec<Vec<u8>>, WireError> {
    let headers = encode_headers(arrays, names)?;
    Ok(slices(arrays, &headers)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect())
}

/// The `ArrayData` of each column of a batch.
pub fn batch_data(batch: &RecordBatch) -> Vec<ArrayData> {
    batch.columns().iter().map(|c| c.to_data()).collect()
}

/// Field names of a schema, for messages.
pub fn names(schema: &Schema) -> Vec<&str> {
    schema.fields().iter().map(|f| f.name().as_str()).collect()
}

/// Encodes a whole batch into owned buffers.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<Vec<u8>>, WireError> {
    let schema = batch.schema();
    encode_owned(&batch_data(batch), &names(&schema))
}

/// One column of a transform's output, as the guest sends it.
#[derive(Debug, Clone, Copy)]
pub enum OutputColumn<'a> {
    /// Input column `k` (an index into the input schema), kept by the host.
    Input(usize),
    /// New data.
    Data(&'a ArrayRef),
}

/// The header alone that stands for input column `index`, with `rows` rows.
fn reference(rows: usize, index: usize, column: &str) -> Result<Vec<u8>, WireError> {
    let fields = [
        u32_of(rows, "length", column)?,
        u32_of(index, "input column", column)?,
        0,
        SAME_AS_INPUT,
        0,
        0,
    ];
    Ok(header_bytes(fields).to_vec())
}

/// Encodes a transform's output of `rows` rows into owned buffers: `columns` are its columns
/// in order, each named (for messages) and either new data or a reference to an input column.
pub fn encode_output(
    rows: usize,
    columns: &[(&str, OutputColumn<'_>)],
) -> Result<Vec<Vec<u8>>, WireError> {
    let mut out = Vec::new();
    for (name, column) in columns {
        match column {
            OutputColumn::Input(index) => out.push(reference(rows, *index, name)?),
            OutputColumn::Data(array) => out.extend(encode_owned(
                std::slice::from_ref(&array.to_data()),
                &[name],
            )?),
        }
    }
    Ok(out)
}

/// Encodes a filter's output: the selection `keep` (bit i set: keep input row i), then the
/// `input_columns` columns of the input as references, so no row crosses back.
pub fn encode_selection(
    keep: &BooleanBuffer,
    input_columns: usize,
) -> Result<Vec<Vec<u8>>, WireError> {
    let kept = keep.count_set_bits();
    let fields = [
        u32_of(keep.len(), "length", "(selection)")?,
        0,
        u32_of(keep.offset(), "selection offset", "(selection)")?,
        SELECTION,
        1,
        0,
    ];
    let mut out = Vec::with_capacity(2 + input_columns);
    out.push(header_bytes(fields).to_vec());
    out.push(keep.inner().as_slice().to_vec());
    for index in 0..input_columns {
        out.push(reference(kept, index, "(selected)")?);
    }
    Ok(out)
}

/// The first entry of a flat-map's output: the input row each output row comes from, so that
/// references in the rest of it stand for the input's columns at those rows.
pub fn encode_input_rows(input_rows: &[u32]) -> Result<Vec<Vec<u8>>, WireError> {
    let fields = [
        u32_of(input_rows.len(), "length", "(input rows)")?,
        0,
        0,
        INPUT_ROWS,
        1,
        0,
    ];
    let rows = input_rows
        .iter()
        .flat_map(|row| row.to_le_bytes())
        .collect();
    Ok(vec![header_bytes(fields).to_vec(), rows])
}

/// Encodes a transform's output into owned buffers, each column that is one of `inputs`
/// unchanged (the same buffers, offset, length and type) as a reference to it instead of a
/// copy.
pub fn encode_batch_reusing(
    batch: &RecordBatch,
    inputs: &[ArrayRef],
) -> Result<Vec<Vec<u8>>, WireError> {
    let schema = batch.schema();
    let input_data: Vec<ArrayData> = inputs.iter().map(|c| c.to_data()).collect();
    let columns: Vec<(&str, OutputColumn<'_>)> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            let data = column.to_data();
            let same = input_data
                .iter()
                .position(|input| input.data_type() == data.data_type() && input.ptr_eq(&data));
            let column = match same {
                Some(index) => OutputColumn::Input(index),
                None => OutputColumn::Data(column),
            };
            (field.name().as_str(), column)
        })
        .collect();
    encode_output(batch.num_rows(), &columns)
}

fn read_header(bytes: &[u8], column: &str) -> Result<[usize; 6], WireError> {
    if bytes.len() != HEADER_LEN {
        return Err(WireError::BadHeader {
            column: column.to_string(),
            len: bytes.len(),
        });
    }
    let mut out = [0usize; 6];
    for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        let mut word = [0u8; 4];
        word.copy_from_slice(chunk);
        *value = u32::from_le_bytes(word) as usize;
    }
    Ok(out)
}

/// The data types of an array's children, as Arrow lays them out in `ArrayData::child_data`.
fn child_types(data_type: &DataType) -> Vec<DataType> {
    match data_type {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![f.data_type().clone()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type().clone()).collect(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type().clone()).collect(),
        DataType::Dictionary(_, values) => vec![values.as_ref().clone()],
        DataType::RunEndEncoded(ends, values) => {
            vec![ends.data_type().clone(), values.data_type().clone()]
        }
        _ => Vec::new(),
    }
}

/// Which of the input's rows the references of a transform's output stand for.
enum Rows {
    /// The rows a selection keeps.
    Selected(FilterPredicate),
    /// These rows, in this order (repeats allowed).
    Taken(arrow_array::UInt32Array),
}

/// What a header of a transform's output may refer to: the input's columns, and the rows of
/// them the output began by choosing, if it did.
#[derive(Default)]
struct Inputs<'a> {
    columns: &'a [ArrayRef],
    rows: Option<Rows>,
}

/// Decodes one array; `inputs` are what a header may refer to (top level of a transform's
/// output), empty elsewhere.
fn decode_array(
    data_type: &DataType,
    column: &str,
    buffers: &mut impl Iterator<Item = Vec<u8>>,
    inputs: &Inputs<'_>,
) -> Result<ArrayData, WireError> {
    let truncated = || WireError::Truncated(column.to_string());
    let head = buffers.next().ok_or_else(truncated)?;
    let [len, offset, null_offset, has_nulls, n_buffers, n_children] = read_header(&head, column)?;
    let invalid = |message: String| WireError::Invalid {
        column: column.to_string(),
        message,
    };
    if has_nulls == SAME_AS_INPUT as usize {
        let Some(input) = inputs.columns.get(offset) else {
            return Err(invalid(format!(
                "refers to input column {offset}, which does not exist here"
            )));
        };
        let arrow = |source| WireError::Arrow {
            column: column.to_string(),
            data_type: data_type.clone(),
            source,
        };
        let input = match &inputs.rows {
            Some(Rows::Selected(selection)) => selection.filter(input.as_ref()).map_err(arrow)?,
            Some(Rows::Taken(rows)) => {
                arrow_select::take::take(input.as_ref(), rows, None).map_err(arrow)?
            }
            None => input.clone(),
        };
        if input.data_type() != data_type || input.len() != len {
            return Err(invalid(format!(
                "refers to input column {offset} ({} × {}), not a {data_type} of {len} rows",
                input.len(),
                input.data_type()
            )));
        }
        return Ok(input.to_data());
    }
    if has_nulls == SELECTION as usize || has_nulls == INPUT_ROWS as usize {
        return Err(invalid(
            "a selection or a list of input rows may only begin a transform's output".into(),
        ));
    }
    let nulls = if has_nulls == 1 {
        let bitmap = Buffer::from_vec(buffers.next().ok_or_else(truncated)?);
        let needed = null_offset
            .checked_add(len)
            .ok_or_else(|| invalid("validity offset overflows".into()))?;
        if bitmap.len().saturating_mul(8) < needed {
            return Err(invalid(format!(
                "validity bitmap of {} bytes is too short for {needed} bits",
                bitmap.len()
            )));
        }
        Some(NullBuffer::new(BooleanBuffer::new(
            bitmap,
            null_offset,
            len,
        )))
    } else {
        None
    };
    let child_types = child_types(data_type);
    if n_children != child_types.len() {
        return Err(invalid(format!(
            "{n_children} child arrays sent, the type has {}",
            child_types.len()
        )));
    }
    // Cap before allocating: the count comes from the other side.
    if n_buffers > 3 + child_types.len()
        && !matches!(data_type, DataType::Utf8View | DataType::BinaryView)
    {
        return Err(invalid(format!(
            "{n_buffers} buffers is more than the type has"
        )));
    }
    let mut own = Vec::with_capacity(n_buffers.min(64));
    for _ in 0..n_buffers {
        own.push(Buffer::from_vec(buffers.next().ok_or_else(truncated)?));
    }
    // Arrow's validation reads fixed-width buffers as typed slices and panics, instead of
    // failing, on a length that is not a whole number of values.
    let specs = arrow_data::layout(data_type).buffers;
    for (index, (buffer, spec)) in own.iter().zip(&specs).enumerate() {
        if let BufferSpec::FixedWidth { byte_width, .. } = spec
            && buffer.len() % byte_width != 0
        {
            return Err(invalid(format!(
                "buffer {index} is {} bytes, not a whole number of {byte_width}-byte values",
                buffer.len()
            )));
        }
    }
    let mut children = Vec::with_capacity(child_types.len());
    for child_type in &child_types {
        children.push(decode_array(
            child_type,
            column,
            buffers,
            &Inputs::default(),
        )?);
    }
    ArrayData::builder(data_type.clone())
        .len(len)
        .offset(offset)
        .nulls(nulls)
        .buffers(own)
        .child_data(children)
        .align_buffers(true)
        .build()
        .map_err(|source| WireError::Arrow {
            column: column.to_string(),
            data_type: data_type.clone(),
            source,
        })
}

/// Decodes arrays of the given types (in order) from wire-order buffers; all buffers must be
/// used.
pub fn decode_arrays(
    types: &[(&str, &DataType)],
    buffers: Vec<Vec<u8>>,
) -> Result<Vec<ArrayRef>, WireError> {
    decode_arrays_reusing(types, buffers.into_iter(), &Inputs::default())
}

/// [`decode_arrays`] where a column may be a reference to one of `inputs`.
fn decode_arrays_reusing(
    types: &[(&str, &DataType)],
    mut iter: impl Iterator<Item = Vec<u8>>,
    inputs: &Inputs<'_>,
) -> Result<Vec<ArrayRef>, WireError> {
    let mut out = Vec::with_capacity(types.len());
    for (name, data_type) in types {
        out.push(make_array(decode_array(
            data_type, name, &mut iter, inputs,
        )?));
    }
    let rest = iter.count();
    if rest > 0 {
        return Err(WireError::Trailing(rest));
    }
    Ok(out)
}

/// The "has validity" field of `buffer` when it is a header.
fn marker(buffer: &[u8]) -> Option<u32> {
    if buffer.len() != HEADER_LEN {
        return None;
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&buffer[12..16]);
    Some(u32::from_le_bytes(word))
}

/// The input rows a flat-map's output began with (`head` its header, `bytes` the rows), checked
/// against the `inputs` they index; there must be `rows` of them.
fn input_rows(
    head: &[u8],
    bytes: &[u8],
    inputs: &[ArrayRef],
    rows: usize,
) -> Result<arrow_array::UInt32Array, WireError> {
    let invalid = |message: String| WireError::Invalid {
        column: "(input rows)".into(),
        message,
    };
    let [len, _, _, _, n_buffers, n_children] = read_header(head, "(input rows)")?;
    if n_buffers != 1 || n_children != 0 {
        return Err(invalid(format!(
            "{n_buffers} buffers and {n_children} children; input rows are one buffer"
        )));
    }
    if len != rows || bytes.len() != len.saturating_mul(4) {
        return Err(invalid(format!(
            "{len} rows in {} bytes for an output of {rows} rows",
            bytes.len()
        )));
    }
    let input_len = inputs.first().map_or(0, |c| c.len());
    if let Some(input) = inputs.iter().find(|c| c.len() != input_len) {
        return Err(invalid(format!(
            "input columns of {input_len} and {} rows",
            input.len()
        )));
    }
    // Copied into `u32`s (a buffer from the other side need not be aligned for them), and
    // checked: Arrow's take would panic on a row out of range.
    let mut out = Vec::with_capacity(len);
    for chunk in bytes.chunks_exact(4) {
        let row = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if row as usize >= input_len && !inputs.is_empty() {
            return Err(invalid(format!(
                "input row {row} of an input of {input_len} rows"
            )));
        }
        out.push(row);
    }
    Ok(arrow_array::UInt32Array::from(out))
}

/// The selection a transform's output began with (`head` its header, `bitmap` its bits), as a
/// predicate for the `inputs` it selects from; it must keep `rows` rows.
fn selection(
    head: &[u8],
    bitmap: Vec<u8>,
    inputs: &[ArrayRef],
    rows: usize,
) -> Result<FilterPredicate, WireError> {
    let invalid = |message: String| WireError::Invalid {
        column: "(selection)".into(),
        message,
    };
    let [len, _, bit_offset, _, n_buffers, n_children] = read_header(head, "(selection)")?;
    if n_buffers != 1 || n_children != 0 {
        return Err(invalid(format!(
            "{n_buffers} buffers and {n_children} children; a selection is one bitmap"
        )));
    }
    if let Some(input) = inputs.iter().find(|c| c.len() != len) {
        return Err(invalid(format!(
            "selects from {len} rows but the input has {}",
            input.len()
        )));
    }
    let needed = bit_offset
        .checked_add(len)
        .ok_or_else(|| invalid("bit offset overflows".into()))?;
    if bitmap.len().saturating_mul(8) < needed {
        return Err(invalid(format!(
            "bitmap of {} bytes is too short for {needed} bits",
            bitmap.len()
        )));
    }
    let keep = BooleanBuffer::new(Buffer::from_vec(bitmap), bit_offset, len);
    let kept = keep.count_set_bits();
    if kept != rows {
        return Err(WireError::RowCount {
            rows,
            column: "(selection)".into(),
            len: kept,
        });
    }
    Ok(
        FilterBuilder::new(&arrow_array::BooleanArray::new(keep, None))
            .optimize()
            .build(),
    )
}

/// Decodes a batch of `schema` with `rows` rows.
pub fn decode_batch(
    schema: &SchemaRef,
    rows: usize,
    buffers: Vec<Vec<u8>>,
) -> Result<RecordBatch, WireError> {
    decode_batch_reusing(schema, rows, buffers, &[])
}

/// Decodes a transform's output: [`decode_batch`], where a column may be a reference to one
/// of the `inputs` it was sent (see [`encode_batch_reusing`]).
pub fn decode_batch_reusing(
    schema: &SchemaRef,
    rows: usize,
    buffers: Vec<Vec<u8>>,
    inputs: &[ArrayRef],
) -> Result<RecordBatch, WireError> {
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    let mut iter = buffers.into_iter().peekable();
    let chosen = match iter.peek().and_then(|first| marker(first)) {
        Some(SELECTION) => {
            let head = iter.next().unwrap_or_default();
            let bitmap = iter
                .next()
                .ok_or_else(|| WireError::Truncated("(selection)".into()))?;
            Some(Rows::Selected(selection(&head, bitmap, inputs, rows)?))
        }
        Some(INPUT_ROWS) => {
            let head = iter.next().unwrap_or_default();
            let bytes = iter
                .next()
                .ok_or_else(|| WireError::Truncated("(input rows)".into()))?;
            Some(Rows::Taken(input_rows(&head, &bytes, inputs, rows)?))
        }
        _ => None,
    };
    let inputs = Inputs {
        columns: inputs,
        rows: chosen,
    };
    let columns = decode_arrays_reusing(&types, iter, &inputs)?;
    for (column, (name, _)) in columns.iter().zip(&types) {
        if column.len() != rows {
            return Err(WireError::RowCount {
                rows,
                column: name.to_string(),
                len: column.len(),
            });
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(|source| {
        WireError::Arrow {
            column: "(batch)".into(),
            data_type: DataType::Null,
            source,
        }
    })
}

/// Encodes a schema as an Arrow IPC stream holding only the schema message.
pub fn schema_to_bytes(schema: &Schema) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(WireError::Schema)?;
    writer.finish().map_err(WireError::Schema)?;
    drop(writer);
    Ok(out)
}

/// Decodes a schema written by [`schema_to_bytes`].
pub fn schema_from_bytes(bytes: &[u8]) -> Result<SchemaRef, WireError> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(WireError::Schema)?;
    Ok(reader.schema())
}

/// The schema `schema` without metadata, for comparing what a plugin declared with what it
/// returned (metadata is informational and does not change how data is read).
pub fn plain(schema: &Schema) -> Schema {
    Schema::new(schema.fields().clone())
}

/// Wraps arrays in an `Arc`'d schema-less form for callers that only need arrays.
pub fn arrays_data(arrays: &[ArrayRef]) -> Vec<ArrayData> {
    arrays.iter().map(|a| a.to_data()).collect()
}

/// A `SchemaRef` from a `Schema`.
pub fn schema_ref(schema: Schema) -> SchemaRef {
    Arc::new(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Array, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, StringArray,
        StructArray, types::Int32Type,
    };
    use arrow_schema::Field;

    fn round_trip(batch: &RecordBatch) -> RecordBatch {
        let buffers = encode_batch(batch).unwrap_or_default();
        match decode_batch(&batch.schema(), batch.num_rows(), buffers) {
            Ok(b) => b,
            Err(err) => panic!("decode failed: {err}"),
        }
    }

    fn sample() -> RecordBatch {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
            Some(vec![Some(4)]),
        ]);
        let strukt = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Float64, true)),
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                None,
                Some(3.0),
                Some(-0.0),
            ])) as ArrayRef,
        )]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(1),
                None,
                Some(3),
                Some(i64::MAX),
            ])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("ünï"),
                None,
                Some(""),
            ])),
            Arc::new(BooleanArray::from(vec![true, false, true, true])),
            Arc::new(list),
            Arc::new(strukt),
        ];
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn batches_round_trip_with_nulls_nesting_and_slices() {
        let batch = sample();
        assert_eq!(round_trip(&batch), batch);
        // A slice keeps its offset on the wire and decodes to equal values.
        let sliced = batch.slice(1, 3);
        assert_eq!(round_trip(&sliced), sliced);
        let empty = batch.slice(0, 0);
        assert_eq!(round_trip(&empty).num_rows(), 0);
    }

    #[test]
    fn malformed_buffers_are_errors_not_crashes() {
        let batch = sample();
        let good = encode_batch(&batch).unwrap_or_default();
        // Every truncation, and a corrupted offsets buffer, must be rejected cleanly.
        for cut in 0..good.len() {
            let short: Vec<Vec<u8>> = good[..cut].to_vec();
            assert!(
                decode_batch(&batch.schema(), 4, short).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = good.clone();
        // Buffer 3 is the string column's offsets (header, values of c0 have 3 entries: header,
        // validity, values; then c1's header at 3, validity at 4, offsets at 5).
        bad[5] = vec![0xff; bad[5].len()];
        assert!(decode_batch(&batch.schema(), 4, bad).is_err());
        let mut extra = good.clone();
        extra.push(vec![1]);
        assert!(matches!(
            decode_batch(&batch.schema(), 4, extra),
            Err(WireError::Trailing(1))
        ));
        assert!(matches!(
            decode_batch(&batch.schema(), 5, good),
            Err(WireError::RowCount { .. })
        ));
    }

    #[test]
    fn schemas_round_trip() {
        let schema = sample().schema();
        let bytes = schema_to_bytes(&schema).unwrap_or_default();
        let back = schema_from_bytes(&bytes).map_err(|e| e.to_string());
        assert_eq!(
            back.map(|s| s.as_ref().clone()),
            Ok(schema.as_ref().clone())
        );
        assert!(schema_from_bytes(b"not a schema").is_err());
    }

    #[test]
    fn a_column_returned_unchanged_crosses_back_as_a_reference_to_the_input() {
        let input = sample();
        let inputs = input.columns().to_vec();
        // The output: the second input column as it came, then a new one.
        let added: ArrayRef = Arc::new(Int32Array::from(vec![7; input.num_rows()]));
        let schema = Arc::new(Schema::new(vec![
            input.schema().field(1).clone(),
            Field::new("added", DataType::Int32, false),
        ]));
        let output = RecordBatch::try_new(schema.clone(), vec![inputs[1].clone(), added])
            .unwrap_or_else(|e| panic!("{e}"));
        let buffers = encode_batch_reusing(&output, &inputs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            buffers[0].len(),
            HEADER_LEN,
            "the reference is a header alone"
        );
        assert_eq!(
            buffers.len(),
            1 + 2,
            "then the new column's header and values"
        );
        let decoded = decode_batch_reusing(&schema, output.num_rows(), buffers, &inputs)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, output);
        assert!(decoded.column(0).to_data().ptr_eq(&inputs[1].to_data()));
    }

    #[test]
    fn a_reference_to_an_input_that_is_missing_or_differs_is_an_error() {
        let input = sample();
        let inputs = input.columns().to_vec();
        let output =
            RecordBatch::try_new(input.schema(), inputs.clone()).unwrap_or_else(|e| panic!("{e}"));
        let buffers = encode_batch_reusing(&output, &inputs).unwrap_or_else(|e| panic!("{e}"));
        assert!(buffers.iter().all(|b| b.len() == HEADER_LEN));
        // Decoded without the inputs (not a transform's output), or against other columns.
        let schema = input.schema();
        let rows = input.num_rows();
        assert!(decode_batch(&schema, rows, buffers.clone()).is_err());
        let mut shifted = inputs.clone();
        shifted.rotate_left(1);
        assert!(decode_batch_reusing(&schema, rows, buffers.clone(), &shifted).is_err());
        let fewer = &inputs[..1];
        assert!(decode_batch_reusing(&schema, rows, buffers, fewer).is_err());
    }

    #[test]
    fn a_selection_crosses_as_one_bit_a_row_and_decodes_to_the_selected_rows_of_each_input() {
        let input = sample();
        let inputs = input.columns().to_vec();
        let keep = BooleanBuffer::from(vec![true, false, false, true]);
        let buffers = encode_selection(&keep, inputs.len()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            buffers.len(),
            2 + inputs.len(),
            "selection, bitmap, references"
        );
        assert_eq!(buffers[1].len(), 1, "four rows are one byte of bits");
        assert!(buffers[2..].iter().all(|b| b.len() == HEADER_LEN));
        let decoded = decode_batch_reusing(&input.schema(), 2, buffers, &inputs)
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = arrow_select::filter::filter_record_batch(
            &input,
            &BooleanArray::new(keep.clone(), None),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_selection_with_the_wrong_row_count_or_input_length_or_not_first_is_an_error() {
        let input = sample();
        let inputs = input.columns().to_vec();
        let schema = input.schema();
        let keep = BooleanBuffer::from(vec![true, false, false, true]);
        let buffers = encode_selection(&keep, inputs.len()).unwrap_or_else(|e| panic!("{e}"));
        // Announces 3 rows where the selection keeps 2.
        assert!(matches!(
            decode_batch_reusing(&schema, 3, buffers.clone(), &inputs),
            Err(WireError::RowCount { .. })
        ));
        // Selects from 4 rows of an input that has 3.
        let shorter: Vec<ArrayRef> = inputs.iter().map(|c| c.slice(0, 3)).collect();
        assert!(decode_batch_reusing(&schema, 2, buffers.clone(), &shorter).is_err());
        // A bitmap shorter than its rows.
        let mut short = buffers.clone();
        short[1] = Vec::new();
        assert!(decode_batch_reusing(&schema, 2, short, &inputs).is_err());
        // A selection in the place of a column.
        let mut late = buffers[2..].to_vec();
        late.insert(1, buffers[0].clone());
        late.insert(2, buffers[1].clone());
        assert!(decode_batch_reusing(&schema, 2, late, &inputs).is_err());
    }

    #[test]
    fn input_rows_cross_as_four_bytes_a_row_and_references_decode_to_the_inputs_taken_there() {
        let input = sample();
        let inputs = input.columns().to_vec();
        let rows = [3u32, 0, 0, 2, 3];
        let mut buffers = encode_input_rows(&rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(buffers[1].len(), 4 * rows.len());
        let added: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5]));
        let mut fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("added", DataType::Int32, false));
        let schema = Arc::new(Schema::new(fields));
        let mut columns: Vec<(String, OutputColumn<'_>)> = (0..inputs.len())
            .map(|k| (format!("c{k}"), OutputColumn::Input(k)))
            .collect();
        columns.push(("added".into(), OutputColumn::Data(&added)));
        let named: Vec<(&str, OutputColumn<'_>)> =
            columns.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        buffers.extend(encode_output(rows.len(), &named).unwrap_or_else(|e| panic!("{e}")));
        let decoded = decode_batch_reusing(&schema, rows.len(), buffers, &inputs)
            .unwrap_or_else(|e| panic!("{e}"));
        let taken = arrow_select::take::take_record_batch(
            &input,
            &arrow_array::UInt32Array::from(rows.to_vec()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for k in 0..inputs.len() {
            assert_eq!(decoded.column(k), taken.column(k), "column {k}");
        }
        assert_eq!(decoded.column(inputs.len()), &added);
    }

    #[test]
    fn input_rows_out_of_range_or_of_the_wrong_count_are_errors() {
        let input = sample();
        let inputs = input.columns().to_vec();
        let schema = input.schema();
        let refs = |rows: usize| -> Vec<Vec<u8>> {
            let named: Vec<(&str, OutputColumn<'_>)> = (0..inputs.len())
                .map(|k| ("c", OutputColumn::Input(k)))
                .collect();
            encode_output(rows, &named).unwrap_or_else(|e| panic!("{e}"))
        };
        // Row 4 of an input of 4 rows.
        let mut out = encode_input_rows(&[0, 4]).unwrap_or_else(|e| panic!("{e}"));
        out.extend(refs(2));
        assert!(decode_batch_reusing(&schema, 2, out, &inputs).is_err());
        // Two input rows for an output announced as three.
        let mut out = encode_input_rows(&[0, 1]).unwrap_or_else(|e| panic!("{e}"));
        out.extend(refs(3));
        assert!(decode_batch_reusing(&schema, 3, out, &inputs).is_err());
        // A buffer that is not whole rows.
        let mut out = encode_input_rows(&[0, 1]).unwrap_or_else(|e| panic!("{e}"));
        out[1].pop();
        out.extend(refs(2));
        assert!(decode_batch_reusing(&schema, 2, out, &inputs).is_err());
    }

    #[test]
    fn a_column_without_nulls_is_two_buffers() {
        let batch = RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let buffers = encode_batch(&batch).unwrap_or_default();
        assert_eq!(buffers.len(), 2);
        assert_eq!(buffers[1].len(), 24);
        assert_eq!(round_trip(&batch).column(0).len(), 3);
    }

    /// Buffers as a hostile or buggy plugin might send them: decoding returns an error or a batch
    /// that passes Arrow's full validation, and never panics.
    mod hostile_buffers {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Mutation {
            /// Overwrites one 32-bit word of a buffer (header fields: len, offset, null offset,
            /// has nulls, buffer count, child count).
            Word {
                buffer: usize,
                word: usize,
                value: u32,
            },
            Byte {
                buffer: usize,
                at: usize,
                value: u8,
            },
            Truncate {
                buffer: usize,
                len: usize,
            },
            Drop {
                buffer: usize,
            },
            Duplicate {
                buffer: usize,
            },
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            let value = prop_oneof![
                Just(0u32),
                Just(1),
                Just(2),
                Just(3),
                Just(4),
                Just(5),
                Just(7),
                Just(8),
                Just(64),
                Just(u32::MAX),
                Just(u32::MAX - 1),
                Just(i32::MAX as u32),
                Just(1 << 31),
                any::<u32>(),
            ];
            let buffer = any::<usize>();
            prop_oneof![
                4 => (buffer, 0usize..6, value).prop_map(|(buffer, word, value)| Mutation::Word {
                    buffer,
                    word,
                    value
                }),
                2 => (buffer, any::<usize>(), any::<u8>())
                    .prop_map(|(buffer, at, value)| Mutation::Byte { buffer, at, value }),
                1 => (buffer, any::<usize>()).prop_map(|(buffer, len)| Mutation::Truncate { buffer, len }),
                1 => buffer.prop_map(|buffer| Mutation::Drop { buffer }),
                1 => buffer.prop_map(|buffer| Mutation::Duplicate { buffer }),
            ]
        }

        fn apply(buffers: &mut Vec<Vec<u8>>, mutation: &Mutation) {
            if buffers.is_empty() {
                return;
            }
            let n = buffers.len();
            match *mutation {
                Mutation::Word {
                    buffer,
                    word,
                    value,
                } => {
                    let b = &mut buffers[buffer % n];
                    let at = word * 4;
                    if at + 4 <= b.len() {
                        b[at..at + 4].copy_from_slice(&value.to_le_bytes());
                    }
                }
                Mutation::Byte { buffer, at, value } => {
                    let b = &mut buffers[buffer % n];
                    if !b.is_empty() {
                        let at = at % b.len();
                        b[at] = value;
                    }
                }
                Mutation::Truncate { buffer, len } => {
                    let b = &mut buffers[buffer % n];
                    let len = len % (b.len() + 1);
                    b.truncate(len);
                }
                Mutation::Drop { buffer } => {
                    buffers.remove(buffer % n);
                }
                Mutation::Duplicate { buffer } => {
                    let copy = buffers[buffer % n].clone();
                    buffers.insert(buffer % n, copy);
                }
            }
        }

        fn check(
            schema: &SchemaRef,
            rows: usize,
            buffers: Vec<Vec<u8>>,
        ) -> Result<(), TestCaseError> {
            if let Ok(batch) = decode_batch(schema, rows, buffers) {
                prop_assert_eq!(batch.num_rows(), rows);
                for column in batch.columns() {
                    let validated = column.to_data().validate_full();
                    prop_assert!(validated.is_ok(), "{:?}", validated);
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn mutated_encodings_are_errors_or_valid_batches(
                mutations in proptest::collection::vec(mutation(), 1..4),
                sliced in any::<bool>(),
            ) {
                let batch = if sliced { sample().slice(1, 3) } else { sample() };
                let mut buffers = encode_batch(&batch).unwrap_or_default();
                for m in &mutations {
                    apply(&mut buffers, m);
                }
                check(&batch.schema(), batch.num_rows(), buffers)?;
            }

            #[test]
            fn random_buffers_are_errors_or_valid_batches(
                buffers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 0..24),
                rows in 0usize..6,
            ) {
                check(&sample().schema(), rows, buffers)?;
            }
        }
    }
}
