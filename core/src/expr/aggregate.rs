//! Window aggregates: `count()`, `sum(e)`, `min(e)`, `max(e)`, `avg(e)`, `first(e)`,
//! `last(e)` and `reduce(e, init)`, and the accumulators that compute them.
//!
//! | aggregate        | argument        | result                     | empty group | mergeable |
//! |------------------|-----------------|----------------------------|-------------|-----------|
//! | `count()`        | none            | int: rows added            | `0`         | yes       |
//! | `sum(e)`         | number          | int if `e` is int, else float | `0` (`0.0` for float) | yes |
//! | `avg(e)`         | number          | float                      | `null`      | yes       |
//! | `min(e)`, `max(e)` | comparable    | type of `e`                | `null`      | yes       |
//! | `first(e)`, `last(e)` | any        | type of `e`                | `null`      | no        |
//! | `reduce(e, init)` | any, constant  | type of `init`             | `init`      | no        |
//!
//! `sum`, `avg`, `min` and `max` skip rows where `e` is `null` (as SQL does); `count()` counts
//! every row; `first` and `last` keep the value of the first or last row added, `null`
//! included; `reduce` sees every row. An error while adding a row leaves the accumulator as
//! it was. A sum of ints stays an int and overflow is an error; once a float is added it
//! becomes a float. `avg` sums in floating point. In `reduce(e, init)`, `init` is an expression
//! without fields (usually a literal) and `e` is evaluated for each row with the extra name
//! `acc` bound to the value so far (`reduce(acc + v, 0)`, `reduce(max(acc, len(w)), 0)`); `acc`
//! shadows a field of that name. `e` must have the type of `init`.
//!
//! `merge` combines two partial accumulators of the same aggregate (for merging windows or
//! pre-aggregation). It is refused for `first`, `last` and `reduce`, whose result depends on
//! the order of rows; [`AggregateSpec::can_merge`] lets a planner check ahead.
//!
//! Serialization: an [`AggregateSpec`] serializes as its source and input schema and is
//! recompiled when read back; an [`Accumulator`] serializes as its spec and its state. Keyed
//! state with many accumulators of one spec should store only [`Accumulator::state`] per key
//! and [`Accumulator::restore`] it against the spec held once.

use super::Expr;
use super::check::{AGGREGATE_NAMES, suggest};
use super::error::{EvalError, ExprError, quote};
use super::functions::join;
use super::ops;
use super::parser::{self, ArithOp, Ast, AstKind};
use crate::row::{Schema, Type, Value};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// Which aggregate a spec computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AggregateKind {
    /// `count()`
    Count,
    /// `sum(e)`
    Sum,
    /// `min(e)`
    Min,
    /// `max(e)`
    Max,
    /// `avg(e)`
    Avg,
    /// `first(e)`
    First,
    /// `last(e)`
    Last,
    /// `reduce(e, init)`, with the folded value of `init`.
    Reduce {
        /// The starting value of `acc`.
        init: Value,
    },
}

impl AggregateKind {
    /// The aggregate's name as written.
    pub fn name(&self) -> &'static str {
        match self {
            AggregateKind::Count => "count",
            AggregateKind::Sum => "sum",
            AggregateKind::Min => "min",
            AggregateKind::Max => "max",
            AggregateKind::Avg => "avg",
            AggregateKind::First => "first",
            AggregateKind::Last => "last",
            AggregateKind::Reduce { .. } => "reduce",
        }
    }
}

/// A compiled aggregate: what to compute, over which expression, with what result type.
/// Cheap to clone (shared).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "AggregateSource", try_from = "AggregateSource")]
pub struct AggregateSpec {
    inner: Arc<SpecInner>,
}

#[derive(Debug)]
struct SpecInner {
    source: Box<str>,
    input: Schema,
    kind: AggregateKind,
    arg: Option<Expr>,
    ty: Type,
}

/// What an [`AggregateSpec`] serializes as.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AggregateSource {
    source: String,
    input: Schema,
}

impl AggregateSpec {
    /// The aggregate.
    pub fn kind(&self) -> &AggregateKind {
        &self.inner.kind
    }

    /// The expression evaluated per row (`None` for `count()`; the step `e` for `reduce`).
    pub fn arg(&self) -> Option<&Expr> {
        self.inner.arg.as_ref()
    }

    /// The static type of the result.
    pub fn ty(&self) -> Type {
        self.inner.ty
    }

    /// The source text it was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Whether partial accumulators of this aggregate can be merged.
    pub fn can_merge(&self) -> bool {
        !matches!(self.inner.kind, AggregateKind::First | AggregateKind::Last | AggregateKind::Reduce { .. })
    }
}

impl PartialEq for AggregateSpec {
    /// Equal when compiled from the same source against the same input.
    fn eq(&self, other: &AggregateSpec) -> bool {
        self.inner.source == other.inner.source && self.inner.input == other.inner.input
    }
}

impl From<AggregateSpec> for AggregateSource {
    fn from(spec: AggregateSpec) -> AggregateSource {
        AggregateSource { source: spec.inner.source.to_string(), input: spec.inner.input.clone() }
    }
}

impl TryFrom<AggregateSource> for AggregateSpec {
    type Error = ExprError;

    fn try_from(repr: AggregateSource) -> Result<AggregateSpec, ExprError> {
        compile_aggregate(&repr.source, &repr.input)
    }
}

/// Compiles an aggregate such as `sum(v)` or `reduce(acc + v, 0)` against rows of `input`.
pub fn compile_aggregate(source: &str, input: &Schema) -> Result<AggregateSpec, ExprError> {
    let ast = parser::parse(source)?;
    let AstKind::Call { name, name_offset, args } = &ast.kind else {
        let found = quote(source.trim());
        let message = format!("expected an aggregate such as `sum(v)` or `count()`, found {found}");
        return Err(ExprError::new(source, ast.start, message));
    };
    let kind_name = aggregate_name(source, name, *name_offset)?;
    let arity = match kind_name {
        "count" => 0,
        "reduce" => 2,
        _ => 1,
    };
    if args.len() != arity {
        let wanted = ["no arguments", "1 argument", "2 arguments"][arity];
        let message = format!("`{kind_name}` takes {wanted}, found {}", args.len());
        return Err(ExprError::new(source, *name_offset, message));
    }
    let (kind, arg, ty) = match (kind_name, args.as_slice()) {
        ("reduce", [step, init]) => reduce(source, input, step, init)?,
        (_, [arg]) => unary_aggregate(source, input, kind_name, arg)?,
        _ => (AggregateKind::Count, None, Type::Int),
    };
    let inner = SpecInner { source: source.into(), input: input.clone(), kind, arg, ty };
    Ok(AggregateSpec { inner: Arc::new(inner) })
}

fn aggregate_name(source: &str, name: &str, offset: usize) -> Result<&'static str, ExprError> {
    if let Some(known) = AGGREGATE_NAMES.iter().find(|known| **known == name) {
        return Ok(known);
    }
    let message = match suggest(name, AGGREGATE_NAMES.into_iter()) {
        Some(close) => format!("unknown aggregate {}; did you mean `{close}`?", quote(name)),
        None => format!(
            "unknown aggregate {}; the aggregates are: count(), sum(e), min(e), max(e), avg(e), \
             first(e), last(e), reduce(e, init)",
            quote(name)
        ),
    };
    Err(ExprError::new(source, offset, message))
}

type Compiled = (AggregateKind, Option<Expr>, Type);

fn sub_expr(source: &str, ast: &Ast, input: &Schema, acc: Option<Type>) -> Result<Expr, ExprError> {
    let text = source.get(ast.start..ast.end).unwrap_or_default();
    Expr::build(source, text, ast, input, acc)
}

fn unary_aggregate(source: &str, input: &Schema, name: &str, ast: &Ast) -> Result<Compiled, ExprError> {
    let arg = sub_expr(source, ast, input, None)?;
    let arg_ty = arg.ty();
    let numeric = matches!(arg_ty, Type::Int | Type::Float | Type::Any);
    let (kind, fits, ty) = match name {
        "sum" => (AggregateKind::Sum, numeric, arg_ty),
        "avg" => (AggregateKind::Avg, numeric, Type::Float),
        "min" => (AggregateKind::Min, arg_ty != Type::Null, arg_ty),
        "max" => (AggregateKind::Max, arg_ty != Type::Null, arg_ty),
        "first" => (AggregateKind::First, true, arg_ty),
        _ => (AggregateKind::Last, true, arg_ty),
    };
    if !fits {
        let wanted = if matches!(name, "sum" | "avg") { "a number" } else { "comparable values" };
        let message = format!("`{name}` needs {wanted}, but {} is {arg_ty}", quote(arg.source()));
        return Err(ExprError::new(source, ast.start, message));
    }
    Ok((kind, Some(arg), ty))
}

fn reduce(source: &str, input: &Schema, step: &Ast, init: &Ast) -> Result<Compiled, ExprError> {
    let init_expr = sub_expr(source, init, input, None)?;
    let Some(init_value) = init_expr.constant().cloned() else {
        let message =
            format!("the initial value of `reduce` must not read the row, but {} does", quote(init_expr.source()));
        return Err(ExprError::new(source, init.start, message));
    };
    let init_ty = init_value.ty();
    let acc_ty = if init_ty == Type::Null { Type::Any } else { init_ty };
    let step_expr = sub_expr(source, step, input, Some(acc_ty))?;
    let step_ty = step_expr.ty();
    let ty = join(init_ty, step_ty);
    if ty == Type::Any && init_ty != Type::Any && step_ty != Type::Any {
        let message = format!(
            "the step {} of `reduce` is {step_ty} but the initial value {} is {init_ty}; make them the same type",
            quote(step_expr.source()),
            quote(init_expr.source()),
        );
        return Err(ExprError::new(source, step.start, message));
    }
    Ok((AggregateKind::Reduce { init: init_value }, Some(step_expr), ty))
}

/// The running state of one aggregate over one group of rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "AccumulatorRepr", try_from = "AccumulatorRepr")]
pub struct Accumulator {
    spec: AggregateSpec,
    state: State,
}

/// An accumulator's state without its spec: what keyed state stores per key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccumulatorState(State);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum State {
    Count(i64),
    Sum(Value),
    Avg { sum: f64, count: i64 },
    Min(Value),
    Max(Value),
    First(Option<Value>),
    Last(Option<Value>),
    Reduce(Value),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AccumulatorRepr {
    spec: AggregateSpec,
    state: AccumulatorState,
}

impl State {
    fn new(spec: &AggregateSpec) -> State {
        match spec.kind() {
            AggregateKind::Count => State::Count(0),
            AggregateKind::Sum if spec.ty() == Type::Float => State::Sum(Value::Float(0.0)),
            AggregateKind::Sum => State::Sum(Value::Int(0)),
            AggregateKind::Avg => State::Avg { sum: 0.0, count: 0 },
            AggregateKind::Min => State::Min(Value::Null),
            AggregateKind::Max => State::Max(Value::Null),
            AggregateKind::First => State::First(None),
            AggregateKind::Last => State::Last(None),
            AggregateKind::Reduce { init } => State::Reduce(init.clone()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            State::Count(_) => "count",
            State::Sum(_) => "sum",
            State::Avg { .. } => "avg",
            State::Min(_) => "min",
            State::Max(_) => "max",
            State::First(_) => "first",
            State::Last(_) => "last",
            State::Reduce(_) => "reduce",
        }
    }
}

impl Accumulator {
    /// An empty accumulator for `spec`.
    pub fn new(spec: &AggregateSpec) -> Accumulator {
        Accumulator { spec: spec.clone(), state: State::new(spec) }
    }

    /// An accumulator for `spec` continuing from `state`; refused if the state is of
    /// another aggregate.
    pub fn restore(spec: &AggregateSpec, state: AccumulatorState) -> Result<Accumulator, EvalError> {
        let expected = spec.kind().name();
        if state.0.name() != expected {
            return Err(EvalError::StateMismatch { expected, found: state.0.name() });
        }
        Ok(Accumulator { spec: spec.clone(), state: state.0 })
    }

    /// Its state, to store without the spec.
    pub fn state(&self) -> AccumulatorState {
        AccumulatorState(self.state.clone())
    }

    /// The spec it computes.
    pub fn spec(&self) -> &AggregateSpec {
        &self.spec
    }

    /// Adds one row; on error the accumulator is unchanged.
    pub fn add(&mut self, row: &[Value]) -> Result<(), EvalError> {
        let Some(arg) = self.spec.inner.arg.as_ref() else {
            return add_count(&mut self.state);
        };
        match &mut self.state {
            State::First(Some(_)) => Ok(()),
            State::Reduce(acc) => {
                let next = arg.eval_in(row, Some(&*acc))?.into_owned();
                *acc = next;
                Ok(())
            }
            state => {
                let value = arg.eval_in(row, None)?;
                add_value(state, value)
            }
        }
    }

    /// Folds `other`, an accumulator of the same aggregate, into this one.
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), EvalError> {
        let (expected, found) = (self.state.name(), other.state.name());
        if expected != found {
            return Err(EvalError::StateMismatch { expected, found });
        }
        let merged = match (&self.state, &other.state) {
            (State::Count(a), State::Count(b)) => State::Count(a.checked_add(*b).ok_or(overflow("count"))?),
            (State::Sum(a), State::Sum(b)) => State::Sum(add_number("sum", a, b)?),
            (State::Avg { sum, count }, State::Avg { sum: other_sum, count: other_count }) => {
                State::Avg { sum: sum + other_sum, count: count.checked_add(*other_count).ok_or(overflow("avg"))? }
            }
            (State::Min(a), State::Min(b)) => State::Min(extreme("min", a, b.clone(), false)?),
            (State::Max(a), State::Max(b)) => State::Max(extreme("max", a, b.clone(), true)?),
            _ => return Err(EvalError::NotMergeable { aggregate: expected }),
        };
        self.state = merged;
        Ok(())
    }

    /// The aggregate's value for the rows added so far.
    pub fn result(&self) -> Value {
        match &self.state {
            State::Count(count) => Value::Int(*count),
            State::Avg { count: 0, .. } => Value::Null,
            State::Avg { sum, count } => Value::Float(sum / *count as f64),
            State::Sum(value) | State::Min(value) | State::Max(value) | State::Reduce(value) => value.clone(),
            State::First(value) | State::Last(value) => value.clone().unwrap_or(Value::Null),
        }
    }
}

fn overflow(op: &'static str) -> EvalError {
    EvalError::Overflow { op }
}

fn add_count(state: &mut State) -> Result<(), EvalError> {
    let State::Count(count) = state else {
        return Err(EvalError::StateMismatch { expected: "count", found: state.name() });
    };
    *count = count.checked_add(1).ok_or(overflow("count"))?;
    Ok(())
}

/// Adds one evaluated value to a state that takes values (all but count and reduce).
fn add_value(state: &mut State, value: Cow<'_, Value>) -> Result<(), EvalError> {
    let skips_null = matches!(state, State::Sum(_) | State::Avg { .. } | State::Min(_) | State::Max(_));
    if skips_null && matches!(*value, Value::Null) {
        return Ok(());
    }
    match state {
        State::Sum(sum) => *sum = add_number("sum", sum, &value)?,
        State::Avg { sum, count } => {
            let next_count = count.checked_add(1).ok_or(overflow("avg"))?;
            *sum += as_float("avg", &value)?;
            *count = next_count;
        }
        State::Min(current) => *current = extreme("min", current, value.into_owned(), false)?,
        State::Max(current) => *current = extreme("max", current, value.into_owned(), true)?,
        State::First(first) => *first = Some(value.into_owned()),
        State::Last(last) => *last = Some(value.into_owned()),
        State::Count(_) | State::Reduce(_) => {
            return Err(EvalError::StateMismatch { expected: "a value aggregate", found: state.name() });
        }
    }
    Ok(())
}

fn not_a_number(aggregate: &'static str, value: &Value) -> EvalError {
    EvalError::Argument { function: aggregate, index: 1, expected: "a number", found: value.ty() }
}

fn add_number(aggregate: &'static str, sum: &Value, value: &Value) -> Result<Value, EvalError> {
    if !matches!(value, Value::Int(_) | Value::Float(_)) {
        return Err(not_a_number(aggregate, value));
    }
    ops::arith(ArithOp::Add, sum, value).map_err(|error| match error {
        EvalError::Overflow { .. } => overflow(aggregate),
        other => other,
    })
}

fn as_float(aggregate: &'static str, value: &Value) -> Result<f64, EvalError> {
    match value {
        Value::Int(x) => Ok(*x as f64),
        Value::Float(x) => Ok(*x),
        _ => Err(not_a_number(aggregate, value)),
    }
}

/// The smaller or larger of the current extreme and `value`; `null` stands for "none yet".
fn extreme(aggregate: &'static str, current: &Value, value: Value, greater: bool) -> Result<Value, EvalError> {
    match (current, &value) {
        (_, Value::Null) => Ok(current.clone()),
        (Value::Null, _) => Ok(value),
        _ => ops::extreme(aggregate, current, &value, greater),
    }
}

impl From<Accumulator> for AccumulatorRepr {
    fn from(accumulator: Accumulator) -> AccumulatorRepr {
        AccumulatorRepr { state: AccumulatorState(accumulator.state), spec: accumulator.spec }
    }
}

impl TryFrom<AccumulatorRepr> for Accumulator {
    type Error = EvalError;

    fn try_from(repr: AccumulatorRepr) -> Result<Accumulator, EvalError> {
        Accumulator::restore(&repr.spec, repr.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k str, v int, f float, w str, a any.
    fn schema() -> Schema {
        Schema::new([("k", Type::Str), ("v", Type::Int), ("f", Type::Float), ("w", Type::Str), ("a", Type::Any)])
    }

    fn row(v: i64, f: f64, w: &str) -> Vec<Value> {
        vec![Value::str("key"), Value::Int(v), Value::Float(f), Value::str(w), Value::Int(v)]
    }

    fn spec(source: &str) -> AggregateSpec {
        compile_aggregate(source, &schema()).unwrap_or_else(|error| panic!("`{source}`: {error}"))
    }

    fn error(source: &str) -> ExprError {
        match compile_aggregate(source, &schema()) {
            Ok(spec) => panic!("`{source}` compiled to {spec:?}"),
            Err(error) => error,
        }
    }

    /// The accumulator of `source` after adding `rows`.
    fn run(source: &str, rows: &[Vec<Value>]) -> Accumulator {
        let mut accumulator = Accumulator::new(&spec(source));
        for row in rows {
            accumulator.add(row).unwrap_or_else(|error| panic!("`{source}`: {error}"));
        }
        accumulator
    }

    fn rows() -> Vec<Vec<Value>> {
        vec![row(3, 1.5, "b"), row(-1, 0.25, "a"), row(10, 2.0, "c")]
    }

    #[test]
    fn count_counts_rows() {
        assert_eq!(run("count()", &rows()).result(), Value::Int(3));
        assert_eq!(run("count()", &[]).result(), Value::Int(0));
        assert_eq!(spec("count()").ty(), Type::Int);
    }

    #[test]
    fn sum_of_ints_stays_int_and_of_floats_is_float() {
        assert_eq!(run("sum(v)", &rows()).result(), Value::Int(12));
        assert_eq!(spec("sum(v)").ty(), Type::Int);
        assert_eq!(run("sum(f)", &rows()).result(), Value::Float(3.75));
        assert_eq!(run("sum(f)", &[]).result(), Value::Float(0.0));
        assert_eq!(run("sum(v * 2)", &[]).result(), Value::Int(0));
        assert_eq!(run("sum(v + f)", &rows()).result(), Value::Float(15.75));
    }

    #[test]
    fn sum_overflow_is_an_error_and_leaves_the_sum_unchanged() {
        let mut accumulator = run("sum(v)", &[row(i64::MAX, 0.0, "x")]);
        assert_eq!(accumulator.add(&row(1, 0.0, "x")), Err(EvalError::Overflow { op: "sum" }));
        assert_eq!(accumulator.result(), Value::Int(i64::MAX));
    }

    #[test]
    fn sum_avg_min_max_skip_nulls() {
        let mut with_null = rows();
        with_null.push(vec![Value::Null, Value::Null, Value::Null, Value::Null, Value::Null]);
        assert_eq!(run("sum(v)", &with_null).result(), Value::Int(12));
        assert_eq!(run("avg(v)", &with_null).result(), Value::Float(4.0));
        assert_eq!(run("min(v)", &with_null).result(), Value::Int(-1));
        assert_eq!(run("max(w)", &with_null).result(), Value::str("c"));
        assert_eq!(run("count()", &with_null).result(), Value::Int(4));
        assert_eq!(run("last(v)", &with_null).result(), Value::Null);
    }

    #[test]
    fn avg_is_float_and_null_when_empty() {
        assert_eq!(run("avg(v)", &rows()).result(), Value::Float(4.0));
        assert_eq!(spec("avg(v)").ty(), Type::Float);
        assert_eq!(run("avg(v)", &[]).result(), Value::Null);
    }

    #[test]
    fn min_and_max_of_an_empty_group_are_null() {
        assert_eq!(run("min(v)", &rows()).result(), Value::Int(-1));
        assert_eq!(run("max(v)", &rows()).result(), Value::Int(10));
        assert_eq!(run("min(w)", &rows()).result(), Value::str("a"));
        assert_eq!(run("min(v)", &[]).result(), Value::Null);
        assert_eq!(run("max(f)", &[]).result(), Value::Null);
    }

    #[test]
    fn first_and_last_keep_the_first_and_last_row() {
        assert_eq!(run("first(w)", &rows()).result(), Value::str("b"));
        assert_eq!(run("last(w)", &rows()).result(), Value::str("c"));
        assert_eq!(run("first(w)", &[]).result(), Value::Null);
    }

    #[test]
    fn reduce_folds_each_row_into_acc() {
        assert_eq!(run("reduce(acc + v, 0)", &rows()).result(), Value::Int(12));
        assert_eq!(run("reduce(acc * 10 + v, 0)", &rows()).result(), Value::Int(300));
        assert_eq!(run("reduce(concat(acc, w), '')", &rows()).result(), Value::str("bac"));
        assert_eq!(run("reduce(max(acc, len(w)), 0)", &rows()).result(), Value::Int(1));
        assert_eq!(run("reduce(acc + v, 100)", &[]).result(), Value::Int(100));
        assert_eq!(run("reduce(acc + 1, -1 + 1)", &rows()).result(), Value::Int(3));
        assert_eq!(spec("reduce(acc + f, 0.0)").ty(), Type::Float);
        let spec = spec("reduce(coalesce(acc, 0) + v, null)");
        assert_eq!(spec.ty(), Type::Any);
        assert_eq!(spec.kind(), &AggregateKind::Reduce { init: Value::Null });
    }

    #[test]
    fn reduce_errors_are_compile_errors_at_the_part() {
        let mismatch = error("reduce(acc + f, 0)");
        assert_eq!(mismatch.column(), 8);
        assert!(mismatch.message.contains("the step `acc + f` of `reduce` is float but the initial value `0` is int"));
        let reads_row = error("reduce(acc + v, v)");
        assert_eq!(reads_row.column(), 17);
        assert!(reads_row.message.contains("the initial value of `reduce` must not read the row, but `v` does"));
        let outside = error("sum(acc)");
        assert!(outside.message.contains("unknown field `acc`"), "{outside}");
    }

    #[test]
    fn sum_and_avg_of_a_non_number_are_compile_errors() {
        let error_sum = error("sum(w)");
        assert_eq!((error_sum.column(), error_sum.message.as_str()), (5, "`sum` needs a number, but `w` is str"));
        assert_eq!(error("avg(lower(w))").message, "`avg` needs a number, but `lower(w)` is str");
        assert_eq!(error("min(null)").message, "`min` needs comparable values, but `null` is null");
        let mut any = Accumulator::new(&spec("sum(a)"));
        let found_str = any.add(&[Value::Null, Value::Null, Value::Null, Value::Null, Value::str("x")]);
        let expected = EvalError::Argument { function: "sum", index: 1, expected: "a number", found: Type::Str };
        assert_eq!(found_str, Err(expected));
    }

    #[test]
    fn malformed_aggregates_are_compile_errors() {
        assert_eq!(error("count(v)").message, "`count` takes no arguments, found 1");
        assert_eq!(error("sum()").message, "`sum` takes 1 argument, found 0");
        assert_eq!(error("reduce(acc)").message, "`reduce` takes 2 arguments, found 1");
        assert_eq!(error("summ(v)").message, "unknown aggregate `summ`; did you mean `sum`?");
        assert!(error("median(v)").message.contains("the aggregates are: count(), sum(e)"));
        assert_eq!(error("v + 1").message, "expected an aggregate such as `sum(v)` or `count()`, found `v + 1`");
        assert_eq!(error("sum(sum(v))").column(), 5);
        assert!(error("sum(sum(v))").message.contains("`sum` is a window aggregate"));
        assert!(error("sum(v").message.contains("expected `)`"));
    }

    #[test]
    fn merge_combines_partial_accumulators() {
        let all = rows();
        let (front, back) = all.split_at(1);
        for (source, expected) in [
            ("count()", Value::Int(3)),
            ("sum(v)", Value::Int(12)),
            ("sum(f)", Value::Float(3.75)),
            ("avg(v)", Value::Float(4.0)),
            ("min(v)", Value::Int(-1)),
            ("max(w)", Value::str("c")),
        ] {
            let mut merged = run(source, front);
            assert!(merged.spec().can_merge());
            assert_eq!(merged.merge(&run(source, back)), Ok(()));
            assert_eq!(merged.result(), expected, "{source}");
            let mut with_empty = run(source, &rows());
            assert_eq!(with_empty.merge(&run(source, &[])), Ok(()));
            assert_eq!(with_empty.result(), expected, "{source} merged with an empty group");
        }
    }

    #[test]
    fn order_dependent_aggregates_refuse_to_merge() {
        for (source, name) in [("first(v)", "first"), ("last(v)", "last"), ("reduce(acc + v, 0)", "reduce")] {
            let mut accumulator = run(source, &rows());
            assert!(!accumulator.spec().can_merge());
            let refused = accumulator.merge(&run(source, &rows()));
            assert_eq!(refused, Err(EvalError::NotMergeable { aggregate: name }));
        }
        let mut count = run("count()", &rows());
        let mismatch = count.merge(&run("sum(v)", &rows()));
        assert_eq!(mismatch, Err(EvalError::StateMismatch { expected: "count", found: "sum" }));
    }

    #[test]
    fn accumulator_survives_serialization_and_keeps_accumulating() {
        let accumulator = run("reduce(acc * 10 + v, 0)", &rows()[..2]);
        let json = serde_json::to_string(&accumulator).unwrap_or_else(|error| panic!("{error}"));
        let mut back: Accumulator = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(back.spec(), accumulator.spec());
        assert_eq!(back.add(&rows()[2]), Ok(()));
        assert_eq!(back.result(), run("reduce(acc * 10 + v, 0)", &rows()).result());
    }

    #[test]
    fn state_restores_against_its_own_spec_only() {
        let sum = run("sum(v)", &rows());
        let state_json = serde_json::to_string(&sum.state()).unwrap_or_else(|error| panic!("{error}"));
        let state: AccumulatorState = serde_json::from_str(&state_json).unwrap_or_else(|error| panic!("{error}"));
        let restored = Accumulator::restore(&spec("sum(v)"), state.clone());
        assert_eq!(restored.map(|accumulator| accumulator.result()), Ok(Value::Int(12)));
        let refused = Accumulator::restore(&spec("avg(v)"), state).map(|accumulator| accumulator.result());
        assert_eq!(refused, Err(EvalError::StateMismatch { expected: "avg", found: "sum" }));
    }
}
