//! Running a batch's chunks through the pipeline's stages on several cores.
//!
//! The leading stages that keep nothing between chunks (wasm transforms, dictionary decoding)
//! offer replicas (`Operator::replica`); up to `width` lanes — the original stages and copies
//! of them, each wasm copy with an instance, store and limits of its own — each take the next
//! chunk and carry it through all those stages. Results are put back in chunk order, and the
//! chunks are the source's, whatever the width, so the output is the same byte for byte at
//! any parallelism. The first stateful stage (the aggregation) and everything after it then
//! runs on the pipeline's own thread; that stage may hand the lanes the part of its work that
//! reads only the chunk (`Operator::chunk_preparer`: the aggregation's grouping), which the lanes
//! do after the replicable stages, and it takes the prepared chunks in chunk order.
//!
//! A source whose chunks depend on their rows alone (`datagen`) hands over deferred chunks
//! (`sources::Chunk`): the lane that takes one makes it and carries it on at once, while its
//! columns are still in that core's cache; the batch is never written out whole first.
//!
//! A batch of one chunk (a quiet pipeline: a few rows per trigger) runs on the pipeline's
//! thread alone and borrows nothing, so its latency is what it was. A larger batch borrows its
//! extra lanes' cores from the daemon's `CoreBudget` for as long as the batch's stages run:
//! with every core lent, a busy pipeline goes on with the lanes it has.

use super::error::BatchError;
use super::operator::{BatchContext, Operator, OperatorError};
use crate::cores::{Spread, ordered_map};
use crate::sources::Chunk;
use arrow::record_batch::RecordBatch;

/// A pipeline's lanes: its width and the replicas of its leading stateless stages.
pub struct Lanes {
    spread: Spread,
    /// How many leading stages offer replicas; `None` until first asked.
    prefix: Option<usize>,
    /// Copies of those stages for lanes 2, 3, …, made when a batch first needs them.
    replicas: Vec<Vec<Box<dyn Operator>>>,
}

impl Lanes {
    /// Up to `spread.width` chunks at once (1: one at a time, on the pipeline's thread).
    pub fn new(spread: Spread) -> Lanes {
        Lanes {
            spread,
            prefix: None,
            replicas: Vec::new(),
        }
    }

    /// Forgets the replicas: the stages changed (a swap).
    pub fn reset(&mut self) {
        self.prefix = None;
        self.replicas.clear();
    }

    /// Tells every replica that the batch failed (each drops what it may have left half done).
    pub fn abort_batch(&mut self) {
        for lane in &mut self.replicas {
            for op in lane {
                op.abort_batch();
            }
        }
    }

    /// One more set of replicas of the leading stages that offer them; the first set also
    /// fixes how many those are.
    fn add_replicas(&mut self, operators: &[Box<dyn Operator>]) {
        let limit = self.prefix.unwrap_or(operators.len());
        let lane: Vec<Box<dyn Operator>> = operators[..limit]
            .iter()
            .map_while(|op| op.replica())
            .collect();
        match self.prefix {
            None => self.prefix = Some(lane.len()),
            Some(prefix) if lane.len() < prefix => {
                // A stage that offered a copy once always does; if one did not, run narrower.
                self.prefix = Some(0);
                self.replicas.clear();
                return;
            }
            Some(_) => {}
        }
        if !lane.is_empty() {
            self.replicas.push(lane);
        }
    }

    /// Runs `data` through `operators`: the replicable prefix on up to `width` lanes, with
    /// the next stage's per-chunk preparation (`Operator::chunk_preparer`) when it has one; the
    /// rest on this thread. Returns what the last stage yields, in order.
    ///
    /// A deferred chunk is made on the lane that takes it, which then carries it on at once.
    pub fn run(
        &mut self,
        operators: &mut [Box<dyn Operator>],
        data: Vec<Chunk>,
        ctx: &BatchContext,
    ) -> Result<Vec<RecordBatch>, BatchError> {
        let width = self.spread.width;
        let made = |data: Vec<Chunk>| -> Result<Vec<RecordBatch>, BatchError> {
            Ok(data
                .into_iter()
                .map(Chunk::make)
                .collect::<Result<_, _>>()?)
        };
        if width < 2 || data.len() < 2 {
            return Ok(through(operators, made(data)?, ctx, EndOfBatch::Yes)?);
        }
        if self.prefix.is_none() {
            self.add_replicas(operators);
        }
        let prefix = self.prefix.unwrap_or(0);
        let preparer = operators.get(prefix).and_then(|op| op.chunk_preparer());
        if prefix == 0 && preparer.is_none() && !data.iter().any(Chunk::is_deferred) {
            return Ok(through(operators, made(data)?, ctx, EndOfBatch::Yes)?);
        }
        let loan = self.spread.budget.borrow((width - 1).min(data.len() - 1));
        if prefix > 0 {
            while self.replicas.len() < loan.cores && self.prefix == Some(prefix) {
                self.add_replicas(operators);
            }
        }
        let (parallel, rest) = operators.split_at_mut(prefix);
        let mut lanes: Vec<&mut [Box<dyn Operator>]> = Vec::with_capacity(loan.cores + 1);
        lanes.push(parallel);
        if prefix == 0 {
            // Only making chunks and the preparation run on the lanes: no stage copies.
            lanes.extend((0..loan.cores).map(|_| -> &mut [Box<dyn Operator>] { &mut [] }));
        } else {
            let extra = loan.cores.min(self.replicas.len());
            lanes.extend(
                self.replicas[..extra]
                    .iter_mut()
                    .map(|lane| lane.as_mut_slice()),
            );
        }
        let results = ordered_map(
            &mut lanes,
            data,
            |stages, chunk| -> Result<Vec<_>, BatchError> {
                let out = through(stages, vec![chunk.make()?], ctx, EndOfBatch::No)?;
                Ok(out
                    .into_iter()
                    .map(|chunk| match &preparer {
                        Some(preparer) => {
                            let prepared = preparer.prepare(&chunk)?;
                            Ok((preparer.hand_on(chunk, &prepared), Some(prepared)))
                        }
                        None => Ok((chunk, None)),
                    })
                    .collect::<Result<Vec<_>, OperatorError>>()?)
            },
            Result::is_err,
        )
        .map_err(|panicked| OperatorError {
            stage: "parallel stages".into(),
            message: format!("internal error (a bug in weir): {panicked}"),
            class: super::ErrorClass::Internal,
            retryable: false,
        })?;
        drop(loan);
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            out.extend(result?);
        }
        // The stateless stages' end of batch (nothing, by their contract), each through the
        // stages after it, as a one-lane run would have done.
        let parallel = &mut lanes[0];
        for i in 0..parallel.len() {
            let (done, after) = parallel.split_at_mut(i + 1);
            let extra = done[i].finish_batch(ctx)?;
            if !extra.is_empty() {
                let extra = through(after, extra, ctx, EndOfBatch::Yes)?;
                out.extend(extra.into_iter().map(|chunk| (chunk, None)));
            }
        }
        let Some((next, after)) = rest.split_first_mut() else {
            return Ok(out.into_iter().map(|(chunk, _)| chunk).collect());
        };
        let mut yielded = Vec::with_capacity(out.len());
        for (chunk, prepared) in out {
            yielded.extend(match prepared {
                Some(prepared) => next.process_prepared(chunk, prepared, ctx)?,
                None => next.process(chunk, ctx)?,
            });
        }
        yielded.extend(next.finish_batch(ctx)?);
        Ok(through(after, yielded, ctx, EndOfBatch::Yes)?)
    }
}

/// Whether [`through`] ends the batch of each stage after its chunks.
#[derive(Clone, Copy, PartialEq)]
enum EndOfBatch {
    /// Yes: the whole batch goes through (the one-lane way).
    Yes,
    /// No: one chunk of a batch on a lane; the batch ends after every lane is done.
    No,
}

/// Each stage in turn over every chunk (then, with `EndOfBatch::Yes`, its end of batch).
fn through(
    operators: &mut [Box<dyn Operator>],
    mut data: Vec<RecordBatch>,
    ctx: &BatchContext,
    end: EndOfBatch,
) -> Result<Vec<RecordBatch>, OperatorError> {
    for op in operators {
        let mut next = Vec::with_capacity(data.len());
        for chunk in data {
            next.extend(op.process(chunk, ctx)?);
        }
        if end == EndOfBatch::Yes {
            next.extend(op.finish_batch(ctx)?);
        }
        data = next;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cores::CoreBudget;
    use crate::engine::ErrorClass;
    use arrow::array::{Array, ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use std::collections::HashSet;
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// What a mutex holds (a panicked holder's value too).
    fn read<T: Clone>(m: &Mutex<T>) -> T {
        match m.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn spread(width: usize, budget: CoreBudget) -> Spread {
        Spread { width, budget }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    fn rows(values: impl IntoIterator<Item = i64>) -> RecordBatch {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(values));
        RecordBatch::try_new(schema(), vec![column]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn values(batches: &[RecordBatch]) -> Vec<Vec<i64>> {
        batches
            .iter()
            .map(|b| {
                let column = b.column(0);
                let ints = column.as_any().downcast_ref::<Int64Array>();
                ints.map(|a| a.values().to_vec()).unwrap_or_default()
            })
            .collect()
    }

    const CTX: BatchContext = BatchContext {
        batch_id: 0,
        batch_timestamp_ms: 0,
        watermark_ms: None,
    };

    /// Where two chunks meet: each waits (with a deadline) until two are in flight at once.
    #[derive(Default)]
    struct Meeting {
        in_flight: Mutex<usize>,
        arrived: Condvar,
    }

    impl Meeting {
        /// True when another chunk was in flight with this one before the deadline.
        fn meet(&self) -> bool {
            let Ok(mut count) = self.in_flight.lock() else {
                return false;
            };
            *count += 1;
            self.arrived.notify_all();
            let deadline = Instant::now() + Duration::from_secs(20);
            while *count < 2 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                count = match self.arrived.wait_timeout(count, left) {
                    Ok((count, _)) => count,
                    Err(_) => return false,
                };
            }
            true
        }
    }

    /// A stateless stage: doubles `v`, fails on a value of `fail_on`, notes its thread and
    /// (with a meeting) waits for a second chunk in flight on its first chunk.
    #[derive(Clone)]
    struct Double {
        threads: Arc<Mutex<HashSet<ThreadId>>>,
        meeting: Option<Arc<Meeting>>,
        met: Arc<Mutex<Vec<bool>>>,
        fail_on: Option<i64>,
        spare_seen: Option<(CoreBudget, Arc<Mutex<Vec<usize>>>)>,
        /// (first value, thread) of each chunk it doubled.
        carried: Arc<Mutex<Vec<(i64, ThreadId)>>>,
    }

    impl Double {
        fn new() -> Double {
            Double {
                threads: Arc::default(),
                meeting: None,
                met: Arc::default(),
                fail_on: None,
                spare_seen: None,
                carried: Arc::default(),
            }
        }
    }

    impl Operator for Double {
        fn output_schema(&self) -> SchemaRef {
            schema()
        }

        fn process(
            &mut self,
            chunk: RecordBatch,
            _: &BatchContext,
        ) -> Result<Vec<RecordBatch>, OperatorError> {
            if let Ok(mut threads) = self.threads.lock() {
                threads.insert(std::thread::current().id());
            }
            if let Some((budget, seen)) = &self.spare_seen
                && let Ok(mut seen) = seen.lock()
            {
                seen.push(budget.spare());
            }
            if let Some(meeting) = self.meeting.take() {
                let met = meeting.meet();
                if let Ok(mut all) = self.met.lock() {
                    all.push(met);
                }
            }
            let v = values(std::slice::from_ref(&chunk)).concat();
            if let (Some(&first), Ok(mut carried)) = (v.first(), self.carried.lock()) {
                carried.push((first, std::thread::current().id()));
            }
            if let Some(bad) = self.fail_on
                && let Some(at) = v.iter().position(|x| *x == bad)
            {
                return Err(OperatorError {
                    stage: "double".into(),
                    message: format!("cannot double {} (row {at})", v[at]),
                    class: ErrorClass::User,
                    retryable: false,
                });
            }
            Ok(vec![rows(v.iter().map(|x| x * 2))])
        }

        fn replica(&self) -> Option<Box<dyn Operator>> {
            Some(Box::new(self.clone()))
        }
    }

    /// A stage with state (no replica): keeps multiples of three and numbers its chunks.
    struct KeepThirdsCounting {
        seen: i64,
    }

    impl Operator for KeepThirdsCounting {
        fn output_schema(&self) -> SchemaRef {
            schema()
        }

        fn process(
            &mut self,
            chunk: RecordBatch,
            _: &BatchContext,
        ) -> Result<Vec<RecordBatch>, OperatorError> {
            self.seen += 1;
            let v = values(std::slice::from_ref(&chunk)).concat();
            let seen = self.seen;
            Ok(vec![rows(
                v.into_iter()
                    .filter(|x| x % 3 == 0)
                    .map(move |x| x * 1000 + seen),
            )])
        }

        fn finish_batch(&mut self, _: &BatchContext) -> Result<Vec<RecordBatch>, OperatorError> {
            Ok(vec![rows([-self.seen])])
        }
    }

    fn stages(first: Double) -> Vec<Box<dyn Operator>> {
        vec![
            Box::new(first),
            Box::new(Double::new()),
            Box::new(KeepThirdsCounting { seen: 0 }),
        ]
    }

    /// Ten chunks of different sizes.
    fn batch() -> Vec<Chunk> {
        (0..10)
            .map(|i| Chunk::Ready(rows((i * 100)..(i * 100 + 7 * i + 1))))
            .collect()
    }

    /// `batch()`'s chunks, deferred: each made where a lane takes it, noting (first value,
    /// thread); the chunks holding a value of `fail_on` cannot be made; with a meeting, the
    /// first two chunks made each wait for the other to be in the making.
    fn deferred_batch(
        made_on: &Arc<Mutex<Vec<(i64, ThreadId)>>>,
        fail_on: &[i64],
        meeting: Option<Arc<Meeting>>,
    ) -> Vec<Chunk> {
        let to_meet = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        (0..10)
            .map(|i| {
                let (made_on, fail_on) = (made_on.clone(), fail_on.to_vec());
                let (meeting, to_meet) = (meeting.clone(), to_meet.clone());
                let range = (i * 100)..(i * 100 + 7 * i + 1);
                Chunk::Deferred {
                    rows: range.clone().count(),
                    make: Box::new(move || {
                        if let Ok(mut made) = made_on.lock() {
                            made.push((range.start, std::thread::current().id()));
                        }
                        let first_two = to_meet
                            .fetch_update(
                                std::sync::atomic::Ordering::SeqCst,
                                std::sync::atomic::Ordering::SeqCst,
                                |n| n.checked_sub(1),
                            )
                            .is_ok();
                        if let Some(meeting) = meeting.filter(|_| first_two) {
                            meeting.meet();
                        }
                        if fail_on.iter().any(|v| range.contains(v)) {
                            return Err(crate::sources::SourceError::Internal(format!(
                                "cannot make the chunk from {}",
                                range.start
                            )));
                        }
                        Ok(rows(range))
                    }),
                }
            })
            .collect()
    }

    #[test]
    fn any_width_gives_the_one_lane_output_chunk_for_chunk_in_order() -> TestResult {
        let mut one = Lanes::new(Spread::one());
        let want = values(&one.run(&mut stages(Double::new()), batch(), &CTX)?);
        assert_eq!(
            want.len(),
            11,
            "ten chunks and the counting stage's end of batch"
        );
        for width in [2, 3, 8] {
            let mut lanes = Lanes::new(spread(width, CoreBudget::new(width - 1)));
            let mut ops = stages(Double::new());
            // Twice: the replicas made by the first batch serve the second alike.
            for _ in 0..2 {
                let got = values(&lanes.run(&mut ops, batch(), &CTX)?);
                assert_eq!(got.len(), want.len(), "width {width}");
                // The stateful stage numbers chunks across batches; compare the rows alone.
                let strip = |v: &Vec<Vec<i64>>| -> Vec<Vec<i64>> {
                    v.iter()
                        .map(|c| c.iter().map(|x| x / 1000).collect())
                        .collect()
                };
                assert_eq!(strip(&got)[..10], strip(&want)[..10], "width {width}");
            }
        }
        Ok(())
    }

    #[test]
    fn with_a_spare_core_two_chunks_are_in_flight_at_once_on_two_threads() -> TestResult {
        let budget = CoreBudget::new(1);
        let mut lanes = Lanes::new(spread(2, budget.clone()));
        let mut first = Double::new();
        first.meeting = Some(Arc::new(Meeting::default()));
        let (threads, met) = (first.threads.clone(), first.met.clone());
        lanes.run(&mut stages(first), batch(), &CTX)?;
        assert_eq!(read(&met), [true, true]);
        assert_eq!(read(&threads).len(), 2);
        assert_eq!(budget.spare(), 1, "the core is back after the batch");
        Ok(())
    }

    #[test]
    fn with_no_spare_core_the_batch_runs_on_the_calling_thread_alone() -> TestResult {
        let mut lanes = Lanes::new(spread(4, CoreBudget::new(0)));
        let first = Double::new();
        let threads = first.threads.clone();
        lanes.run(&mut stages(first), batch(), &CTX)?;
        assert_eq!(read(&threads), HashSet::from([std::thread::current().id()]));
        Ok(())
    }

    #[test]
    fn a_batch_of_one_chunk_borrows_no_core() -> TestResult {
        let budget = CoreBudget::new(1);
        let mut lanes = Lanes::new(spread(2, budget.clone()));
        let mut first = Double::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        first.spare_seen = Some((budget.clone(), seen.clone()));
        lanes.run(&mut stages(first), vec![Chunk::Ready(rows(0..5))], &CTX)?;
        assert_eq!(read(&seen), [1]);
        Ok(())
    }

    #[test]
    fn the_batch_fails_with_the_first_failing_chunk_in_chunk_order() -> TestResult {
        // Chunks 3 and 7 fail (values 300 and 700); whichever lane meets 7 first, chunk 3 was
        // taken before it and its error is the one reported.
        for width in [1, 2, 4] {
            let mut lanes = Lanes::new(spread(width, CoreBudget::new(width - 1)));
            let mut first = Double::new();
            first.fail_on = Some(300);
            let mut second = Double::new();
            second.fail_on = Some(1400);
            let mut ops: Vec<Box<dyn Operator>> = vec![Box::new(first), Box::new(second)];
            match lanes.run(&mut ops, batch(), &CTX) {
                Err(BatchError::Operator(err)) => {
                    assert_eq!(err.message, "cannot double 300 (row 0)", "width {width}")
                }
                Err(other) => {
                    return Err(format!("width {width}: failed otherwise: {other}").into());
                }
                Ok(_) => return Err(format!("width {width}: the batch did not fail").into()),
            }
        }
        Ok(())
    }

    #[test]
    fn deferred_chunks_are_made_on_the_lane_that_carries_them_and_give_what_ready_ones_give()
    -> TestResult {
        let want =
            values(&Lanes::new(Spread::one()).run(&mut stages(Double::new()), batch(), &CTX)?);
        let budget = CoreBudget::new(1);
        let mut lanes = Lanes::new(spread(2, budget.clone()));
        let first = Double::new();
        let carried = first.carried.clone();
        let made_on = Arc::default();
        let meeting = Some(Arc::new(Meeting::default()));
        let got = values(&lanes.run(
            &mut stages(first),
            deferred_batch(&made_on, &[], meeting),
            &CTX,
        )?);
        assert_eq!(got, want, "the same chunks, in chunk order");
        let (mut made, mut carried) = (read(&made_on), read(&carried));
        made.sort_by_key(|(first, _)| *first);
        carried.sort_by_key(|(first, _)| *first);
        assert_eq!(made.len(), 10);
        assert_eq!(
            made, carried,
            "each chunk doubled on the thread that made it"
        );
        let threads: HashSet<ThreadId> = made.iter().map(|(_, t)| *t).collect();
        assert_eq!(threads.len(), 2, "two lanes made chunks");
        assert_eq!(budget.spare(), 1, "the core is back after the batch");
        Ok(())
    }

    #[test]
    fn deferred_chunks_are_made_on_two_lanes_when_no_stage_runs_there() -> TestResult {
        let keep = || -> Vec<Box<dyn Operator>> { vec![Box::new(KeepThirdsCounting { seen: 0 })] };
        let want = values(&Lanes::new(Spread::one()).run(&mut keep(), batch(), &CTX)?);
        let made_on = Arc::default();
        let meeting = Some(Arc::new(Meeting::default()));
        let mut lanes = Lanes::new(spread(2, CoreBudget::new(1)));
        let got = values(&lanes.run(&mut keep(), deferred_batch(&made_on, &[], meeting), &CTX)?);
        assert_eq!(got, want);
        let threads: HashSet<ThreadId> = read(&made_on).iter().map(|(_, t)| *t).collect();
        assert_eq!(threads.len(), 2, "two lanes made chunks");
        Ok(())
    }

    #[test]
    fn a_deferred_chunk_that_cannot_be_made_fails_the_batch_as_the_source_in_chunk_order()
    -> TestResult {
        for width in [1, 2, 4] {
            let mut lanes = Lanes::new(spread(width, CoreBudget::new(width - 1)));
            let made_on = Arc::default();
            match lanes.run(
                &mut stages(Double::new()),
                deferred_batch(&made_on, &[300, 700], None),
                &CTX,
            ) {
                Err(BatchError::Source(err)) => assert_eq!(
                    err.to_string(),
                    crate::sources::SourceError::Internal("cannot make the chunk from 300".into())
                        .to_string(),
                    "width {width}"
                ),
                Err(other) => {
                    return Err(format!("width {width}: failed otherwise: {other}").into());
                }
                Ok(_) => return Err(format!("width {width}: the batch did not fail").into()),
            }
        }
        Ok(())
    }

    /// The per-chunk half of [`SumsInOrder`]: sums a chunk, noting its thread; with a
    /// meeting, its first two chunks each wait for the other to be in flight.
    struct SumChunk {
        threads: Arc<Mutex<HashSet<ThreadId>>>,
        meeting: Option<Meeting>,
        to_meet: std::sync::atomic::AtomicUsize,
        met: Arc<Mutex<Vec<bool>>>,
        /// Its sum is all the stage reads of a chunk.
        holds_all: bool,
    }

    impl super::super::PrepareChunk for SumChunk {
        fn prepare(
            &self,
            chunk: &RecordBatch,
        ) -> Result<super::super::PreparedChunk, OperatorError> {
            if let Ok(mut threads) = self.threads.lock() {
                threads.insert(std::thread::current().id());
            }
            let first_two = self
                .to_meet
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            if let Some(meeting) = self.meeting.as_ref().filter(|_| first_two) {
                let met = meeting.meet();
                if let Ok(mut all) = self.met.lock() {
                    all.push(met);
                }
            }
            Ok(Box::new(
                values(std::slice::from_ref(chunk))
                    .concat()
                    .iter()
                    .sum::<i64>(),
            ))
        }

        fn holds_all_it_reads(&self, _: &super::super::PreparedChunk) -> bool {
            self.holds_all
        }
    }

    /// A stateful stage with per-chunk preparation: yields (chunk number, the chunk's sum),
    /// taking the sum from the preparation when it has one.
    struct SumsInOrder {
        seen: i64,
        preparer: Arc<SumChunk>,
        /// The rows of each chunk `process_prepared` was given.
        given_rows: Arc<Mutex<Vec<usize>>>,
    }

    impl Operator for SumsInOrder {
        fn output_schema(&self) -> SchemaRef {
            schema()
        }

        fn process(
            &mut self,
            chunk: RecordBatch,
            _: &BatchContext,
        ) -> Result<Vec<RecordBatch>, OperatorError> {
            self.seen += 1;
            let sum: i64 = values(std::slice::from_ref(&chunk)).concat().iter().sum();
            Ok(vec![rows([self.seen, sum])])
        }

        fn chunk_preparer(&self) -> Option<Arc<dyn super::super::PrepareChunk>> {
            Some(self.preparer.clone())
        }

        fn process_prepared(
            &mut self,
            chunk: RecordBatch,
            prepared: super::super::PreparedChunk,
            _: &BatchContext,
        ) -> Result<Vec<RecordBatch>, OperatorError> {
            self.seen += 1;
            if let Ok(mut given) = self.given_rows.lock() {
                given.push(chunk.num_rows());
            }
            let sum = prepared.downcast::<i64>().map_err(|_| OperatorError {
                stage: "sums".into(),
                message: "prepared something else".into(),
                class: ErrorClass::Internal,
                retryable: false,
            })?;
            Ok(vec![rows([self.seen, *sum])])
        }
    }

    #[test]
    fn a_stateful_stage_s_chunks_are_prepared_on_two_threads_at_once_and_applied_in_chunk_order()
    -> TestResult {
        let sums = |meeting: Option<Meeting>| SumsInOrder {
            seen: 0,
            preparer: Arc::new(SumChunk {
                threads: Arc::default(),
                meeting,
                to_meet: 2.into(),
                met: Arc::default(),
                holds_all: false,
            }),
            given_rows: Arc::default(),
        };
        let mut one: Vec<Box<dyn Operator>> = vec![Box::new(sums(None))];
        let want = values(&Lanes::new(Spread::one()).run(&mut one, batch(), &CTX)?);
        assert_eq!(want.len(), 10);

        let stage = sums(Some(Meeting::default()));
        let (threads, met) = (stage.preparer.threads.clone(), stage.preparer.met.clone());
        let budget = CoreBudget::new(1);
        let mut two: Vec<Box<dyn Operator>> = vec![Box::new(stage)];
        let got = values(&Lanes::new(spread(2, budget.clone())).run(&mut two, batch(), &CTX)?);
        assert_eq!(
            got, want,
            "the same (chunk number, sum) pairs, in chunk order"
        );
        assert_eq!(read(&met), [true, true], "two chunks were prepared at once");
        assert_eq!(read(&threads).len(), 2);
        assert_eq!(budget.spare(), 1, "the core is back after the batch");
        Ok(())
    }

    #[test]
    fn a_chunk_whose_preparation_holds_all_the_stage_reads_reaches_it_without_its_rows()
    -> TestResult {
        for holds_all in [false, true] {
            let given_rows = Arc::new(Mutex::new(Vec::new()));
            let mut ops: Vec<Box<dyn Operator>> = vec![Box::new(SumsInOrder {
                seen: 0,
                preparer: Arc::new(SumChunk {
                    threads: Arc::default(),
                    meeting: None,
                    to_meet: 0.into(),
                    met: Arc::default(),
                    holds_all,
                }),
                given_rows: given_rows.clone(),
            })];
            let chunks = batch();
            let rows: Vec<usize> = chunks.iter().map(Chunk::rows).collect();
            let mut lanes = Lanes::new(spread(2, CoreBudget::new(1)));
            let got = values(&lanes.run(&mut ops, chunks, &CTX)?);
            assert_eq!(got.len(), 10, "every chunk's sum, from its preparation");
            let want = if holds_all { vec![0; 10] } else { rows };
            assert_eq!(read(&given_rows), want, "holds all: {holds_all}");
        }
        Ok(())
    }
}
