//! Stateless transformations (`map`, `filter`, `flat_map`) and the watermark assigner.
//!
//! Each evaluates compiled expressions over the lent input row and writes into a scratch row
//! it reuses, so int and float rows cost no allocation. The assigner follows Flink's
//! bounded-out-of-orderness strategy: the watermark trails the highest timestamp seen by the
//! bound plus one millisecond, is emitted every `pipeline.auto-watermark-interval` (a
//! processing-time timer) when it has advanced, and at end of input jumps to `i64::MAX`.
//! Watermarks from upstream are dropped except the final one, as Flink's
//! `TimestampsAndWatermarksOperator` does.

use super::{Collector, Operator, OperatorContext, OperatorError, OperatorErrorKind, OperatorSnapshot};
use super::{RestoredState, decode_state, encode_state, millis};
use crate::dataflow::{EVENT_TIME_MIN, EventTime};
use crate::expr::{Expr, IntKernel};
use crate::ids::CheckpointId;
use crate::row::{Row, RowBatch, Value};
use crate::time::{Duration, Time};

/// Computes new fields from each record.
pub(crate) struct Map {
    context: OperatorContext,
    fields: Vec<Expr>,
    /// Per field, its int kernel if it has one.
    kernels: Vec<Option<IntKernel>>,
    /// Every field's kernel, when every field has one.
    all_kernels: Option<Vec<IntKernel>>,
    /// Scratch of the column path: one field's ints in, one result column out.
    column_in: Vec<i64>,
    column_out: Vec<i64>,
    output: Row,
    /// The output of a batch, its slots reused from batch to batch.
    batch: RowBatch,
}

impl Map {
    pub(crate) fn new(context: OperatorContext, fields: Vec<Expr>) -> Map {
        let output = vec![Value::Null; fields.len()];
        let kernels: Vec<Option<IntKernel>> = fields.iter().map(Expr::int_kernel).collect();
        let all_kernels = kernels.iter().copied().collect();
        let (column_in, column_out) = (Vec::new(), Vec::new());
        Map { context, fields, kernels, all_kernels, output, batch: RowBatch::new(), column_in, column_out }
    }
}

impl Operator for Map {
    #[inline]
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        for (slot, field) in self.output.iter_mut().zip(&self.fields) {
            super::put(slot, field.eval(row)).map_err(|error| self.context.error(error))?;
        }
        out.collect(&self.output)
    }

    /// One output batch for the input batch; on a failing record the rows before it still go
    /// out, as they would one by one. Fields that are `field op int-literal` over an int are
    /// computed by their kernel, the rest by `eval`.
    fn process_batch(&mut self, _input: usize, rows: &RowBatch, out: &mut dyn Collector) -> Result<(), OperatorError> {
        if self.by_columns(rows) {
            return out.collect_batch(&self.batch);
        }
        self.batch.start(self.fields.len());
        for row in rows.iter() {
            let slots = self.batch.push_slots();
            for ((slot, field), kernel) in slots.iter_mut().zip(&self.fields).zip(&self.kernels) {
                let result = match (kernel, kernel.and_then(|kernel| row.get(kernel.position()))) {
                    (Some(kernel), Some(Value::Int(x))) => kernel.apply(*x).map(|y| super::put_int(slot, y)),
                    _ => super::put(slot, field.eval(row)),
                };
                if let Err(error) = result {
                    self.batch.truncate(self.batch.len() - 1);
                    out.collect_batch(&self.batch)?;
                    return Err(self.context.error(error));
                }
            }
        }
        out.collect_batch(&self.batch)
    }
}

impl Map {
    /// The output batch computed column by column, when every field has an int kernel and
    /// every field it reads is an int; `false` (and the batch to be redone row by row) on
    /// anything else, an error included, so errors come in row order from the row path.
    fn by_columns(&mut self, rows: &RowBatch) -> bool {
        let Some(kernels) = &self.all_kernels else { return false };
        self.batch.start(self.fields.len());
        self.batch.set_len(rows.len());
        let (inputs, results) = (&mut self.column_in, &mut self.column_out);
        let mut gathered = None;
        for (field, kernel) in kernels.iter().enumerate() {
            // Kernels over the field just gathered (`x % 1000`, `x % 101`) reuse its ints.
            if gathered != Some(kernel.position()) {
                inputs.clear();
                for value in rows.column(kernel.position()) {
                    match value {
                        Value::Int(x) => inputs.push(*x),
                        _ => return false,
                    }
                }
                gathered = Some(kernel.position());
            }
            if inputs.len() != rows.len() || kernel.apply_all(inputs, results).is_err() {
                return false;
            }
            for (slot, &y) in self.batch.column_mut(field).zip(results.iter()) {
                super::put_int(slot, y);
            }
        }
        true
    }
}

/// Keeps the records for which the predicate holds.
pub(crate) struct Filter {
    context: OperatorContext,
    predicate: Expr,
}

impl Filter {
    pub(crate) fn new(context: OperatorContext, predicate: Expr) -> Filter {
        Filter { context, predicate }
    }
}

impl Operator for Filter {
    #[inline]
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        if self.predicate.eval_bool(row).map_err(|error| self.context.error(error))? {
            out.collect(row)?;
        }
        Ok(())
    }
}

/// Emits one record per item of a list.
pub(crate) struct FlatMap {
    context: OperatorContext,
    list: Expr,
    output: Row,
}

impl FlatMap {
    pub(crate) fn new(context: OperatorContext, list: Expr) -> FlatMap {
        FlatMap { context, list, output: vec![Value::Null] }
    }
}

impl Operator for FlatMap {
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        match self.list.eval(row).map_err(|error| self.context.error(error))? {
            Value::List(items) => {
                for item in items.iter() {
                    self.output[0] = item.clone();
                    out.collect(&self.output)?;
                }
                Ok(())
            }
            other => {
                let message = format!("`{}` gave {}, expected a list", self.list.source(), other.ty());
                Err(self.context.error(OperatorErrorKind::Record(message)))
            }
        }
    }
}

/// What the assigner keeps across a restore.
#[derive(serde::Serialize, serde::Deserialize)]
struct AssignerScalars {
    max_timestamp: EventTime,
    emitted: EventTime,
    next_emit: Option<Time>,
}

/// Assigns event timestamps and emits bounded-out-of-orderness watermarks.
pub(crate) struct WatermarkAssigner {
    context: OperatorContext,
    timestamp: Expr,
    bound: EventTime,
    interval: Duration,
    /// Highest timestamp seen, starting where the watermark is the lowest event time.
    max_timestamp: EventTime,
    /// Last watermark emitted.
    emitted: EventTime,
    /// When the next periodic watermark is due; `None` before the first timer.
    next_emit: Option<Time>,
}

impl WatermarkAssigner {
    pub(crate) fn new(
        context: OperatorContext,
        timestamp: Expr,
        out_of_orderness: Duration,
        interval: Duration,
    ) -> WatermarkAssigner {
        let bound = millis(out_of_orderness);
        let max_timestamp = EVENT_TIME_MIN.saturating_add(bound).saturating_add(1);
        WatermarkAssigner {
            context,
            timestamp,
            bound,
            interval,
            max_timestamp,
            emitted: EVENT_TIME_MIN,
            next_emit: None,
        }
    }

    /// The watermark the records so far allow.
    fn current(&self) -> EventTime {
        self.max_timestamp.saturating_sub(self.bound).saturating_sub(1)
    }

    fn emit(&mut self, watermark: EventTime, out: &mut dyn Collector) -> Result<(), OperatorError> {
        if watermark > self.emitted {
            self.emitted = watermark;
            out.emit_watermark(watermark)?;
        }
        Ok(())
    }
}

impl Operator for WatermarkAssigner {
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        match self.timestamp.eval(row).map_err(|error| self.context.error(error))? {
            Value::Int(timestamp) => self.max_timestamp = self.max_timestamp.max(timestamp),
            other => {
                let message = format!("the timestamp `{}` is {}, expected int", self.timestamp.source(), other.ty());
                return Err(self.context.error(OperatorErrorKind::Record(message)));
            }
        }
        out.collect(row)
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut dyn Collector) -> Result<(), OperatorError> {
        match watermark {
            EventTime::MAX => self.emit(EventTime::MAX, out),
            _ => Ok(()),
        }
    }

    fn on_processing_time(&mut self, now: Time, out: &mut dyn Collector) -> Result<(), OperatorError> {
        if self.interval == Duration::ZERO || self.next_emit.is_some_and(|due| now < due) {
            return Ok(());
        }
        self.next_emit = Some(now.after(self.interval));
        self.emit(self.current(), out)
    }

    fn next_timer(&self) -> Option<Time> {
        match self.interval {
            Duration::ZERO => None,
            _ => Some(self.next_emit.unwrap_or(Time::ZERO)),
        }
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let (max_timestamp, emitted, next_emit) = (self.max_timestamp, self.emitted, self.next_emit);
        let scalars = AssignerScalars { max_timestamp, emitted, next_emit };
        Ok(OperatorSnapshot { keyed: None, items: Vec::new(), scalars: Some(encode_state(&self.context, &scalars)?) })
    }

    /// Takes its own watermark and timer back; after a rescale the lowest of the old subtasks'.
    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        for (position, bytes) in state.scalars.iter().enumerate() {
            let scalars: AssignerScalars = decode_state(&self.context, bytes)?;
            if position == 0 {
                (self.max_timestamp, self.emitted) = (scalars.max_timestamp, scalars.emitted);
                self.next_emit = scalars.next_emit;
            } else {
                self.max_timestamp = self.max_timestamp.min(scalars.max_timestamp);
                self.emitted = self.emitted.min(scalars.emitted);
                self.next_emit = self.next_emit.min(scalars.next_emit);
            }
        }
        Ok(())
    }

    fn end_of_input(&mut self, out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.emit(EventTime::MAX, out)
    }
}
