//! The compiled form of an expression and its evaluation.
//!
//! A [`Node`] tree has fields resolved to positions, functions resolved to their shape, and
//! literal-only subtrees folded to [`Node::Const`]. Evaluation returns `Cow<Value>` so a field
//! or a constant is lent, not cloned: reading a string field costs no reference-count traffic.

use super::error::{EvalError, Fault};
use super::functions::{self, Binary, Ternary, Unary};
use super::ops;
use super::parser::{ArithOp, CompareOp};
use crate::row::Value;
use std::borrow::Cow;

/// What an evaluation reads: the row, and inside `reduce` the accumulated value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scope<'a> {
    /// The input row, in schema order.
    pub row: &'a [Value],
    /// The value of `acc`, present only inside a `reduce` accumulator.
    pub acc: Option<&'a Value>,
}

impl<'a> Scope<'a> {
    /// The value at `position`; a row shorter than the schema is an error, not a panic.
    #[inline]
    fn field(&self, position: usize) -> Result<&'a Value, Fault> {
        match self.row.get(position) {
            Some(value) => Ok(value),
            None => Err(Box::new(EvalError::RowTooShort { position, len: self.row.len() })),
        }
    }
}

/// A compiled expression node.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    /// A literal or folded constant.
    Const(Value),
    /// The field at this position of the row.
    Field(usize),
    /// `acc` inside `reduce`.
    Acc,
    /// `-e`
    Neg(Box<Node>),
    /// `not e`
    Not(Box<Node>),
    /// `a op b` for `+ - * / %`.
    Arith(ArithOp, Box<[Node; 2]>),
    /// `a op b` for comparisons.
    Compare(CompareOp, Box<[Node; 2]>),
    /// `a and b`, short-circuiting.
    And(Box<[Node; 2]>),
    /// `a or b`, short-circuiting.
    Or(Box<[Node; 2]>),
    /// `list[index]`
    Index(Box<[Node; 2]>),
    /// A one-argument function.
    Call1(Unary, Box<Node>),
    /// A two-argument function.
    Call2(Binary, Box<[Node; 2]>),
    /// A three-argument function.
    Call3(Ternary, Box<[Node; 3]>),
    /// `if(cond, then, otherwise)`, evaluating only the branch taken.
    If(Box<[Node; 3]>),
    /// `coalesce(...)`, evaluating arguments until one is not null.
    Coalesce(Box<[Node]>),
    /// `concat(...)`
    Concat(Box<[Node]>),
    /// Fast path for `field op int-literal` arithmetic (`x % 1000`).
    FieldArithInt { op: ArithOp, position: usize, literal: i64 },
    /// Fast path for `field op int-literal` comparisons (`v > 10`).
    FieldCompareInt { op: CompareOp, position: usize, literal: i64 },
}

impl Node {
    /// Evaluates the node; fields and constants come back borrowed.
    ///
    /// The leaves and the `field op int-literal` shapes are handled here, small enough to
    /// inline; everything else goes through [`Node::eval_tree`], kept out of line so the
    /// common cases do not pay for its stack frame.
    #[inline]
    pub fn eval<'a>(&'a self, scope: &Scope<'a>) -> Result<Cow<'a, Value>, Fault> {
        match self {
            Node::Const(value) => Ok(Cow::Borrowed(value)),
            Node::Field(position) => scope.field(*position).map(Cow::Borrowed),
            Node::FieldArithInt { op, position, literal } => {
                Ok(Cow::Owned(field_arith_int(*op, scope.field(*position)?, *literal)?))
            }
            Node::FieldCompareInt { op, position, literal } => {
                Ok(bool_value(field_compare_int(*op, scope.field(*position)?, *literal)?))
            }
            _ => self.eval_tree(scope),
        }
    }

    /// Evaluates to an owned value; the `field op int-literal` shapes skip the `Cow`.
    #[inline]
    pub fn eval_owned(&self, scope: &Scope<'_>) -> Result<Value, Fault> {
        match self {
            Node::FieldArithInt { op, position, literal } => {
                Ok(field_arith_int(*op, scope.field(*position)?, *literal)?)
            }
            Node::FieldCompareInt { op, position, literal } => {
                Ok(Value::Bool(field_compare_int(*op, scope.field(*position)?, *literal)?))
            }
            _ => self.eval(scope).map(Cow::into_owned),
        }
    }

    /// Evaluates an inner node (an operator or a call) by evaluating its children first.
    #[inline(never)]
    fn eval_tree<'a>(&'a self, scope: &Scope<'a>) -> Result<Cow<'a, Value>, Fault> {
        match self {
            Node::Const(_) | Node::Field(_) | Node::FieldArithInt { .. } | Node::FieldCompareInt { .. } => {
                self.eval(scope)
            }
            Node::Acc => scope.acc.map(Cow::Borrowed).ok_or_else(|| Box::new(EvalError::NoAccumulator)),
            Node::Neg(operand) => Ok(Cow::Owned(ops::negate(&*operand.eval(scope)?)?)),
            Node::Not(operand) => Ok(bool_value(!operand.eval_bool(scope)?)),
            Node::Arith(op, pair) => {
                let [left, right] = &**pair;
                Ok(Cow::Owned(ops::arith(*op, &*left.eval(scope)?, &*right.eval(scope)?)?))
            }
            Node::Compare(..) | Node::And(_) | Node::Or(_) => Ok(bool_value(self.eval_bool(scope)?)),
            Node::Index(pair) => eval_index(pair, scope),
            Node::Call1(function, arg) => {
                let arg = arg.eval(scope)?;
                Ok(function.apply(&arg)?.map_or(arg, Cow::Owned))
            }
            Node::Call2(function, args) => {
                let [a, b] = &**args;
                Ok(Cow::Owned(function.apply(&*a.eval(scope)?, &*b.eval(scope)?)?))
            }
            Node::Call3(function, args) => {
                let [a, b, c] = &**args;
                Ok(Cow::Owned(function.apply(&*a.eval(scope)?, &*b.eval(scope)?, &*c.eval(scope)?)?))
            }
            Node::If(args) => {
                let [condition, then, otherwise] = &**args;
                if condition.eval_bool(scope)? { then.eval(scope) } else { otherwise.eval(scope) }
            }
            Node::Coalesce(args) => coalesce(args, scope),
            Node::Concat(args) => Ok(Cow::Owned(functions::concat(args, scope)?)),
        }
    }

    /// Evaluates a condition: a bool, or an error naming what came instead (null included).
    ///
    /// Boolean operators are answered here directly, without building a `Value` for each
    /// intermediate result: filters are the hottest expressions.
    pub fn eval_bool(&self, scope: &Scope<'_>) -> Result<bool, Fault> {
        match self {
            Node::FieldCompareInt { op, position, literal } => {
                Ok(field_compare_int(*op, scope.field(*position)?, *literal)?)
            }
            Node::Compare(op, pair) => {
                let [left, right] = &**pair;
                Ok(ops::compare(*op, &*left.eval(scope)?, &*right.eval(scope)?)?)
            }
            Node::And(pair) => Ok(pair[0].eval_bool(scope)? && pair[1].eval_bool(scope)?),
            Node::Or(pair) => Ok(pair[0].eval_bool(scope)? || pair[1].eval_bool(scope)?),
            Node::Not(operand) => Ok(!operand.eval_bool(scope)?),
            _ => match &*self.eval(scope)? {
                Value::Bool(b) => Ok(*b),
                other => Err(Box::new(EvalError::NotBool { found: other.ty() })),
            },
        }
    }

    /// The constant, if this node is one.
    pub fn as_const(&self) -> Option<&Value> {
        match self {
            Node::Const(value) => Some(value),
            _ => None,
        }
    }

    /// Direct children, for walks such as collecting the fields used.
    pub fn children(&self) -> &[Node] {
        match self {
            Node::Const(_) | Node::Field(_) | Node::Acc => &[],
            Node::FieldArithInt { .. } | Node::FieldCompareInt { .. } => &[],
            Node::Neg(operand) | Node::Not(operand) | Node::Call1(_, operand) => std::slice::from_ref(&**operand),
            Node::Arith(_, pair) | Node::Compare(_, pair) => &**pair,
            Node::And(pair) | Node::Or(pair) | Node::Index(pair) | Node::Call2(_, pair) => &**pair,
            Node::Call3(_, triple) | Node::If(triple) => &**triple,
            Node::Coalesce(args) | Node::Concat(args) => args,
        }
    }

    /// The field position this node reads directly, if any.
    pub fn own_field(&self) -> Option<usize> {
        match self {
            Node::Field(position) => Some(*position),
            Node::FieldArithInt { position, .. } | Node::FieldCompareInt { position, .. } => Some(*position),
            _ => None,
        }
    }
}

#[inline]
fn bool_value<'a>(b: bool) -> Cow<'a, Value> {
    Cow::Owned(Value::Bool(b))
}

#[inline]
fn field_arith_int(op: ArithOp, field: &Value, literal: i64) -> Result<Value, EvalError> {
    match field {
        Value::Int(x) => ops::arith_int(op, *x, literal).map(Value::Int),
        other => field_arith_other(op, other, literal),
    }
}

/// The fast path's fallback for a field that is not an int (a float, or an `any` column).
#[cold]
#[inline(never)]
fn field_arith_other(op: ArithOp, field: &Value, literal: i64) -> Result<Value, EvalError> {
    ops::arith(op, field, &Value::Int(literal))
}

#[inline]
fn field_compare_int(op: CompareOp, field: &Value, literal: i64) -> Result<bool, EvalError> {
    match field {
        Value::Int(x) => Ok(ops::compare_int(op, *x, literal)),
        other => field_compare_other(op, other, literal),
    }
}

/// The fast path's fallback for a field that is not an int.
#[cold]
#[inline(never)]
fn field_compare_other(op: CompareOp, field: &Value, literal: i64) -> Result<bool, EvalError> {
    ops::compare(op, field, &Value::Int(literal))
}

fn eval_index<'a>(pair: &'a [Node; 2], scope: &Scope<'a>) -> Result<Cow<'a, Value>, Fault> {
    let [list, index] = pair;
    let list = list.eval(scope)?;
    let index = index.eval(scope)?;
    match list {
        Cow::Borrowed(list) => Ok(Cow::Borrowed(ops::index(list, &index)?)),
        Cow::Owned(list) => Ok(Cow::Owned(ops::index(&list, &index)?.clone())),
    }
}

fn coalesce<'a>(args: &'a [Node], scope: &Scope<'a>) -> Result<Cow<'a, Value>, Fault> {
    for arg in args {
        let value = arg.eval(scope)?;
        if !matches!(*value, Value::Null) {
            return Ok(value);
        }
    }
    Ok(Cow::Owned(Value::Null))
}
