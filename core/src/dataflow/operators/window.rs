//! Keyed windows: count, tumbling, sliding and session windows in processing or event time,
//! with aggregates kept per key and window in keyed state.
//!
//! Behaviour is Flink's `WindowOperator` with its default triggers:
//! - count windows (`countWindow(size)`) fire and purge every `size` records of a key; a
//!   partial window is dropped at end of input;
//! - event-time windows fire when the watermark reaches `end - 1`; with allowed lateness the
//!   window is kept until the watermark reaches `end - 1 + lateness`, and a record arriving in
//!   that time updates it and fires it again at once; a record whose every window is past
//!   that point is dropped and counted ([`OperatorMetrics::late_records_dropped`]);
//! - processing-time windows use the processing time of the latest `on_processing_time` and
//!   fire once it passes `end - 1`; timers still pending at end of input do not fire;
//! - session windows merge a key's windows that overlap or touch; aggregates that cannot merge
//!   (`first`, `last`, `reduce`) keep the window's rows in arrival order and fold them when
//!   the window fires.
//!
//! Output: the key, the aggregates in order, then `window_start` and `window_end` (ms) for
//! time windows.
//!
//! Timers are not state of their own: every window in keyed state implies its timers (fire at
//! `end - 1` unless it already fired, clean up at `end - 1 + lateness`), so a restore rebuilds
//! them from the restored windows, at any parallelism. A timer whose window is gone (merged
//! away) finds no state and does nothing.

use super::aggregate::{Aggregates, Keys, Selector, Slots};
use super::{Collector, Operator, OperatorContext, OperatorError, OperatorErrorKind, OperatorMetrics};
use super::{OperatorSnapshot, RestoredState, decode_state, encode_state, millis};
use crate::dataflow::state::{
    KeyedStateBackend, Namespace, StateCodec, StateError, TimeWindow, ValueState, decode_exact, encode_into,
};
use crate::dataflow::{EVENT_TIME_MIN, EventTime};
use crate::expr::{AggregateSpec, EvalError, Expr};
use crate::ids::CheckpointId;
use crate::job::{TimeDomain, WindowAssigner};
use crate::row::{Row, RowBatch, Value};
use crate::time::{Duration, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The window operator's settings from the job.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WindowSettings {
    pub(crate) assigner: WindowAssigner,
    pub(crate) allowed_lateness: Duration,
}

/// Which windows a record falls into, with sizes in milliseconds.
#[derive(Clone, Copy, Debug)]
enum Assigner {
    Count { size: u64 },
    Tumbling { size: EventTime },
    Sliding { size: EventTime, slide: EventTime },
    Session { gap: EventTime },
}

/// The window a timestamp falls into when windows of `size` start at multiples of `size`.
fn window_start(timestamp: EventTime, size: EventTime) -> EventTime {
    timestamp - timestamp.rem_euclid(size)
}

/// What one key's window holds.
#[derive(Clone, Debug)]
struct Contents {
    /// Records added since the window opened (or since a count window last fired).
    count: u64,
    /// Whether an event-time window has fired (and is kept only for late records).
    fired: bool,
    aggregation: Aggregation,
}

#[derive(Clone, Debug)]
enum Aggregation {
    Slots(Slots),
    /// `(arrival number, row)`: for sessions whose aggregates cannot merge.
    Rows(Vec<(u64, Row)>),
}

impl Contents {
    fn new(aggregates: &Aggregates, keeps_rows: bool) -> Contents {
        let aggregation = match keeps_rows {
            true => Aggregation::Rows(Vec::new()),
            false => Aggregation::Slots(aggregates.fresh()),
        };
        Contents { count: 0, fired: false, aggregation }
    }

    #[inline(always)]
    fn add(&mut self, aggregates: &Aggregates, row: &[Value], arrival: u64) -> Result<(), EvalError> {
        match &mut self.aggregation {
            Aggregation::Slots(slots) => aggregates.add(slots, row)?,
            Aggregation::Rows(rows) => rows.push((arrival, row.to_vec())),
        }
        self.count += 1;
        Ok(())
    }

    /// Folds `other` in: values merge, rows join in arrival order.
    fn merge(&mut self, aggregates: &Aggregates, other: Contents) -> Result<(), EvalError> {
        match (&mut self.aggregation, other.aggregation) {
            (Aggregation::Slots(mine), Aggregation::Slots(theirs)) => aggregates.merge(mine, &theirs)?,
            (Aggregation::Rows(mine), Aggregation::Rows(theirs)) => {
                mine.extend(theirs);
                mine.sort_by_key(|(arrival, _)| *arrival);
            }
            _ => return Err(EvalError::NotMergeable { aggregate: "window contents" }),
        }
        self.count += other.count;
        Ok(())
    }

    /// Writes each aggregate's result into `out`.
    fn results(&self, aggregates: &Aggregates, out: &mut [Value]) -> Result<(), EvalError> {
        match &self.aggregation {
            Aggregation::Slots(slots) => aggregates.results(slots, out),
            Aggregation::Rows(rows) => {
                let rows: Vec<Row> = rows.iter().map(|(_, row)| row.clone()).collect();
                aggregates.fold(&rows, out)?;
            }
        }
        Ok(())
    }

    /// Starts the next count window.
    fn reset(&mut self, aggregates: &Aggregates) {
        self.count = 0;
        match &mut self.aggregation {
            Aggregation::Slots(slots) => *slots = aggregates.fresh(),
            Aggregation::Rows(rows) => rows.clear(),
        }
    }
}

/// How window contents are stored in a snapshot.
#[derive(Serialize, Deserialize)]
struct ContentsImage {
    count: u64,
    fired: bool,
    /// The encoded aggregate values, or `None` when the window keeps rows.
    slots: Option<Vec<u8>>,
    rows: Vec<(u64, Row)>,
}

struct ContentsCodec {
    aggregates: Aggregates,
}

impl StateCodec<Contents> for ContentsCodec {
    fn encode(&self, contents: &Contents, out: &mut Vec<u8>) -> Result<(), StateError> {
        let (slots, rows) = match &contents.aggregation {
            Aggregation::Slots(slots) => {
                let mut bytes = Vec::new();
                Aggregates::encode(slots, &mut bytes)?;
                (Some(bytes), Vec::new())
            }
            Aggregation::Rows(rows) => (None, rows.clone()),
        };
        let image = ContentsImage { count: contents.count, fired: contents.fired, slots, rows };
        encode_into(&image, out).map_err(|message| StateError::Codec { message })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Contents, StateError> {
        let image: ContentsImage = decode_exact(bytes).map_err(|message| StateError::Codec { message })?;
        let aggregation = match image.slots {
            Some(slots) => Aggregation::Slots(self.aggregates.decode(&slots)?),
            None => Aggregation::Rows(image.rows),
        };
        Ok(Contents { count: image.count, fired: image.fired, aggregation })
    }
}

/// A pending timer: at `time`, look at `window` of `key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    time: EventTime,
    key: Value,
    window: TimeWindow,
}

/// What the window operator keeps besides keyed state.
#[derive(Serialize, Deserialize)]
struct WindowScalars {
    watermark: EventTime,
    processing_now: EventTime,
    arrivals: u64,
    late_records_dropped: u64,
}

/// Keyed windows with aggregates.
pub(crate) struct WindowOperator<B> {
    context: OperatorContext,
    assigner: Assigner,
    time: Option<TimeDomain>,
    lateness: EventTime,
    keys: Keys,
    timestamps: Vec<Selector>,
    aggregates: Aggregates,
    keeps_rows: bool,
    backend: B,
    contents: ValueState<Contents>,
    watermark: EventTime,
    /// Processing time (ms) of the latest `on_processing_time`.
    processing_now: EventTime,
    /// Event-time or processing-time timers, by the window's time domain.
    timers: BTreeSet<Timer>,
    /// Records seen, numbering rows kept for sessions.
    arrivals: u64,
    late_records_dropped: u64,
    output: Row,
    /// Scratch: the windows of the record being processed.
    windows: Vec<TimeWindow>,
    namespaces: Vec<Namespace>,
    /// Scratch: the keys of a batch's rows.
    batch_keys: Vec<Value>,
}

impl<B: KeyedStateBackend> WindowOperator<B> {
    /// The window operator over `backend`, which holds no state yet.
    pub(crate) fn new(
        context: OperatorContext,
        settings: WindowSettings,
        (specs, keys, timestamps): (Vec<AggregateSpec>, Vec<Expr>, Vec<Expr>),
        mut backend: B,
    ) -> Self {
        let assigner = match settings.assigner {
            WindowAssigner::Count { size } => Assigner::Count { size: size.max(1) },
            WindowAssigner::Tumbling { size, .. } => Assigner::Tumbling { size: millis(size).max(1) },
            WindowAssigner::Sliding { size, slide, .. } => {
                Assigner::Sliding { size: millis(size).max(1), slide: millis(slide).max(1) }
            }
            WindowAssigner::Session { gap, .. } => Assigner::Session { gap: millis(gap).max(1) },
        };
        let time = settings.assigner.time();
        assert!(time != Some(TimeDomain::Event) || timestamps.len() == keys.len(), "a timestamp per input");
        let aggregates = Aggregates::new(specs);
        let keeps_rows = matches!(assigner, Assigner::Session { .. }) && !aggregates.can_merge();
        let contents = backend.register_value("window-contents", ContentsCodec { aggregates: aggregates.clone() });
        let width = 1 + aggregates.len() + if time.is_some() { 2 } else { 0 };
        WindowOperator {
            context,
            assigner,
            time,
            lateness: if time == Some(TimeDomain::Event) { millis(settings.allowed_lateness) } else { 0 },
            keys: Keys::new(&keys),
            timestamps: timestamps.iter().map(Selector::new).collect(),
            aggregates,
            keeps_rows,
            backend,
            contents,
            watermark: EVENT_TIME_MIN,
            processing_now: 0,
            timers: BTreeSet::new(),
            arrivals: 0,
            late_records_dropped: 0,
            output: vec![Value::Null; width],
            windows: Vec::new(),
            namespaces: Vec::new(),
            batch_keys: Vec::new(),
        }
    }

    fn is_event_time(&self) -> bool {
        self.time == Some(TimeDomain::Event)
    }

    /// When the window's state is dropped: `end - 1 + lateness` (event time), `end - 1` else.
    fn cleanup_time(&self, window: &TimeWindow) -> EventTime {
        window.max_timestamp().saturating_add(self.lateness)
    }

    /// Whether the window is past its allowed lateness (never in processing time).
    fn is_late(&self, window: &TimeWindow) -> bool {
        self.is_event_time() && self.cleanup_time(window) <= self.watermark
    }

    fn error(&self, error: impl Into<OperatorErrorKind>) -> OperatorError {
        self.context.error(error)
    }

    /// The record's time: its event timestamp, or the current processing time.
    fn timestamp(&self, input: usize, row: &[Value]) -> Result<EventTime, OperatorError> {
        if !self.is_event_time() {
            return Ok(self.processing_now);
        }
        match *self.timestamps[input].select(row).map_err(|error| self.error(error))? {
            Value::Int(timestamp) => Ok(timestamp),
            ref other => Err(self.error(OperatorErrorKind::Record(format!("the event timestamp is {}", other.ty())))),
        }
    }

    /// Registers the timers `window` of `key` implies: fire unless it fired, and clean up (one
    /// timer when both fall together).
    fn register_timers(&mut self, key: &Value, window: TimeWindow, fired: bool) {
        let fire = window.max_timestamp();
        if !fired {
            self.timers.insert(Timer { time: fire, key: key.clone(), window });
        }
        let cleanup = self.cleanup_time(&window);
        if cleanup != fire || fired {
            self.timers.insert(Timer { time: cleanup, key: key.clone(), window });
        }
    }

    /// Count windows: add, and fire and purge every `size` records.
    fn add_counted(&mut self, row: &[Value], size: u64, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let (aggregates, keeps_rows) = (&self.aggregates, self.keeps_rows);
        let new = || Contents::new(aggregates, keeps_rows);
        let contents = self.backend.entry(self.contents, Namespace::Global, new).map_err(|e| self.context.error(e))?;
        contents.add(aggregates, row, self.arrivals).map_err(|error| self.context.error(error))?;
        if contents.count < size {
            return Ok(());
        }
        let slots = &mut self.output[1..1 + aggregates.len()];
        contents.results(aggregates, slots).map_err(|error| self.context.error(error))?;
        contents.reset(aggregates);
        self.output[0] = self.backend.current_key().clone();
        out.collect(&self.output)
    }

    /// Count windows over a batch: `keys` are the keys of the first rows of `rows` (all of
    /// them unless a key failed), added in order as [`WindowOperator::add_counted`] does.
    fn add_counted_batch(
        &mut self,
        rows: &RowBatch,
        keys: &[Value],
        size: u64,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let (aggregates, keeps_rows, context) = (&self.aggregates, self.keeps_rows, &self.context);
        let output = &mut self.output;
        let (mut arrivals, mut index) = (self.arrivals, 0);
        let new = || Contents::new(aggregates, keeps_rows);
        let add = |key: &Value, contents: &mut Contents| {
            let row = rows.row(index);
            index += 1;
            arrivals += 1;
            contents.add(aggregates, row, arrivals).map_err(|error| context.error(error))?;
            if contents.count < size {
                return Ok(());
            }
            let slots = &mut output[1..1 + aggregates.len()];
            contents.results(aggregates, slots).map_err(|error| context.error(error))?;
            contents.reset(aggregates);
            output[0] = key.clone();
            out.collect(output)
        };
        let fail = |error: StateError| context.error(error);
        let result = self.backend.for_each_entry((self.contents, Namespace::Global), keys, new, add, fail);
        self.arrivals = arrivals;
        result
    }

    /// Adds the row to `window` of the current key, creating it (and its timers) if needed,
    /// and fires it at once when the watermark has passed its end (a late record).
    fn add_to_window(
        &mut self,
        window: TimeWindow,
        row: &[Value],
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let fire_now = self.is_event_time() && window.max_timestamp() <= self.watermark;
        let (aggregates, keeps_rows) = (&self.aggregates, self.keeps_rows);
        let mut created = false;
        let new = || {
            created = true;
            Contents::new(aggregates, keeps_rows)
        };
        let contents = self.backend.entry(self.contents, Namespace::Window(window), new);
        let contents = contents.map_err(|error| self.context.error(error))?;
        contents.add(aggregates, row, self.arrivals).map_err(|error| self.context.error(error))?;
        if fire_now {
            let slots = &mut self.output[1..1 + aggregates.len()];
            contents.results(aggregates, slots).map_err(|error| self.context.error(error))?;
            contents.fired = true;
        }
        if created {
            let key = self.backend.current_key().clone();
            self.register_timers(&key, window, fire_now);
        }
        if fire_now {
            self.emit_window(window, out)?;
        }
        Ok(())
    }

    /// Emits the output row whose aggregates are already in place, for the current key.
    fn emit_window(&mut self, window: TimeWindow, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let width = self.output.len();
        self.output[0] = self.backend.current_key().clone();
        self.output[width - 2] = Value::Int(window.start);
        self.output[width - 1] = Value::Int(window.end);
        out.collect(&self.output)
    }

    /// Tumbling and sliding windows.
    fn add_assigned(
        &mut self,
        row: &[Value],
        timestamp: EventTime,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let mut windows = std::mem::take(&mut self.windows);
        windows.clear();
        match self.assigner {
            Assigner::Tumbling { size } => {
                let start = window_start(timestamp, size);
                windows.push(TimeWindow { start, end: start.saturating_add(size) });
            }
            Assigner::Sliding { size, slide } => {
                let mut start = window_start(timestamp, slide);
                while start > timestamp.saturating_sub(size) {
                    windows.push(TimeWindow { start, end: start.saturating_add(size) });
                    start -= slide;
                }
            }
            Assigner::Count { .. } | Assigner::Session { .. } => unreachable!("assigned windows only"),
        }
        let mut accepted = false;
        let mut result = Ok(());
        for window in &windows {
            if self.is_late(window) {
                continue;
            }
            accepted = true;
            result = self.add_to_window(*window, row, out);
            if result.is_err() {
                break;
            }
        }
        self.windows = windows;
        if !accepted {
            self.late_records_dropped += 1;
        }
        result
    }

    /// Session windows: merge the record's window with the key's windows it overlaps.
    fn add_session(
        &mut self,
        row: &[Value],
        timestamp: EventTime,
        gap: EventTime,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let mut result = TimeWindow { start: timestamp, end: timestamp.saturating_add(gap) };
        self.backend.namespaces(self.contents, &mut self.namespaces).map_err(|error| self.context.error(error))?;
        let mut merged = Vec::new();
        let mut grew = true;
        while grew {
            grew = false;
            for namespace in &self.namespaces {
                if let Namespace::Window(window) = namespace
                    && !merged.contains(window)
                    && window.intersects(&result)
                {
                    result = result.cover(window);
                    merged.push(*window);
                    grew = true;
                }
            }
        }
        if merged.is_empty() && self.is_late(&result) {
            self.late_records_dropped += 1;
            return Ok(());
        }
        if !(merged.is_empty() || merged == [result]) {
            self.merge_windows(&merged, result)?;
        }
        self.add_to_window(result, row, out)
    }

    /// Moves the contents of `merged` into one window `result` and registers its timers.
    fn merge_windows(&mut self, merged: &[TimeWindow], result: TimeWindow) -> Result<(), OperatorError> {
        let mut combined: Option<Contents> = None;
        for window in merged {
            let taken = self.backend.take_value(self.contents, Namespace::Window(*window));
            let Some(contents) = taken.map_err(|error| self.context.error(error))? else {
                continue;
            };
            match &mut combined {
                None => combined = Some(contents),
                Some(into) => into.merge(&self.aggregates, contents).map_err(|error| self.context.error(error))?,
            }
        }
        let Some(mut combined) = combined else { return Ok(()) };
        combined.fired = false;
        let stored = self.backend.set_value(self.contents, Namespace::Window(result), combined);
        stored.map_err(|error| self.context.error(error))?;
        let key = self.backend.current_key().clone();
        self.register_timers(&key, result, false);
        Ok(())
    }

    /// Fires the due timers in order: `due(time)` says whether a timer's time has come.
    fn fire_due(&mut self, due: impl Fn(EventTime) -> bool, out: &mut dyn Collector) -> Result<(), OperatorError> {
        while self.timers.first().is_some_and(|timer| due(timer.time)) {
            let Some(timer) = self.timers.pop_first() else { break };
            self.on_timer(timer, out)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.backend.set_current_key(timer.key).map_err(|error| self.context.error(error))?;
        let (window, namespace) = (timer.window, Namespace::Window(timer.window));
        let cleanup = timer.time == self.cleanup_time(&window);
        let aggregates = &self.aggregates;
        let found = self.backend.value_mut(self.contents, namespace).map_err(|error| self.context.error(error))?;
        let Some(contents) = found else {
            return Ok(()); // merged away or already cleaned up
        };
        let fire = timer.time == window.max_timestamp() && !contents.fired;
        if fire {
            let slots = &mut self.output[1..1 + aggregates.len()];
            contents.results(aggregates, slots).map_err(|error| self.context.error(error))?;
            contents.fired = true;
        }
        if cleanup {
            self.backend.take_value(self.contents, namespace).map_err(|error| self.context.error(error))?;
        }
        if fire {
            self.emit_window(window, out)?;
        }
        Ok(())
    }

    fn scalars(&self) -> WindowScalars {
        let late_records_dropped = self.late_records_dropped;
        let (watermark, processing_now, arrivals) = (self.watermark, self.processing_now, self.arrivals);
        WindowScalars { watermark, processing_now, arrivals, late_records_dropped }
    }
}

impl<B: KeyedStateBackend + Send> Operator for WindowOperator<B> {
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.process_input(0, row, out)
    }

    #[inline]
    fn process_input(&mut self, input: usize, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        let key = self.keys.key(&self.context, input, row)?;
        self.backend.set_current_key(key).map_err(|error| self.context.error(error))?;
        self.arrivals += 1;
        match self.assigner {
            Assigner::Count { size } => self.add_counted(row, size, out),
            Assigner::Session { gap } => {
                let timestamp = self.timestamp(input, row)?;
                self.add_session(row, timestamp, gap, out)
            }
            Assigner::Tumbling { .. } | Assigner::Sliding { .. } => {
                let timestamp = self.timestamp(input, row)?;
                self.add_assigned(row, timestamp, out)
            }
        }
    }

    /// Count windows take a batch in two passes over keyed state (see
    /// [`KeyedStateBackend::for_each_entry`]); other windows record by record.
    fn process_batch(&mut self, input: usize, rows: &RowBatch, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let Assigner::Count { size } = self.assigner else {
            for row in rows.iter() {
                self.process_input(input, row, out)?;
            }
            return Ok(());
        };
        // The keys go into slots kept from batch to batch, an int written over an int in
        // place (see `put`): pushing a fresh `Value` copies it through memory and stalls.
        let mut keys = std::mem::take(&mut self.batch_keys);
        let (mut count, mut key_error) = (0, None);
        for row in rows.iter() {
            if keys.len() == count {
                keys.push(Value::Null);
            }
            if let Some(x) = self.keys.int_field(input, row) {
                super::put_int(&mut keys[count], x);
            } else {
                match self.keys.key(&self.context, input, row) {
                    Ok(key) => keys[count] = key,
                    Err(error) => {
                        key_error = Some(error);
                        break;
                    }
                }
            }
            count += 1;
        }
        let result = self.add_counted_batch(rows, &keys[..count], size, out);
        self.batch_keys = keys;
        result?;
        key_error.map_or(Ok(()), Err)
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut dyn Collector) -> Result<(), OperatorError> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        if self.is_event_time() {
            self.fire_due(|time| time <= watermark, out)?;
        }
        out.emit_watermark(watermark)
    }

    fn on_processing_time(&mut self, now: Time, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let now_millis = EventTime::try_from(now.as_millis()).unwrap_or(EventTime::MAX);
        self.processing_now = self.processing_now.max(now_millis);
        if self.time == Some(TimeDomain::Processing) {
            // A processing-time timer at t fires once the clock is past t (Flink, FLINK-9857).
            self.fire_due(|time| time < now_millis, out)?;
        }
        Ok(())
    }

    fn next_timer(&self) -> Option<Time> {
        if self.time != Some(TimeDomain::Processing) {
            return None;
        }
        let first = self.timers.first()?;
        let millis = u64::try_from(first.time.saturating_add(1)).unwrap_or(0);
        Some(Time(millis.saturating_mul(1_000)))
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let keyed = self.backend.snapshot().map_err(|error| self.error(error))?;
        let scalars = encode_state(&self.context, &self.scalars())?;
        Ok(OperatorSnapshot { keyed: Some(keyed), items: Vec::new(), scalars: Some(scalars) })
    }

    /// Restores the windows and rebuilds their timers; after a rescale the watermark is the
    /// lowest of the old subtasks'.
    fn set_native_snapshots(&mut self, native: bool) {
        self.backend.set_native_snapshots(native);
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        self.backend.restore(&state.keyed).map_err(|error| self.error(error))?;
        for (position, bytes) in state.scalars.iter().enumerate() {
            let scalars: WindowScalars = decode_state(&self.context, bytes)?;
            if position == 0 {
                self.watermark = scalars.watermark;
            }
            self.watermark = self.watermark.min(scalars.watermark);
            self.processing_now = self.processing_now.max(scalars.processing_now);
            self.arrivals = self.arrivals.max(scalars.arrivals);
            self.late_records_dropped += scalars.late_records_dropped;
        }
        let mut windows = Vec::new();
        self.backend
            .for_each_value(self.contents, &mut |key, namespace, contents| {
                if let Namespace::Window(window) = namespace {
                    windows.push((key.clone(), window, contents.fired));
                }
            })
            .map_err(|error| self.context.error(error))?;
        for (key, window, fired) in windows {
            self.register_timers(&key, window, fired);
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics { late_records_dropped: self.late_records_dropped }
    }
}
