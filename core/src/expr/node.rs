//! The compiled form of an expression and its evaluation.
//!
//! A [`Node`] tree has fields resolved to positions, functions resolved to their shape, and
//! literal-only subtrees folded to [`Node::Const`]. Evaluation returns `Cow<Value>` so a field
//! or a constant is lent, not cloned: reading a string field costs no reference-count traffic.

use super::error::EvalError;
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
    fn field(&self, position: usize) -> Result<&'a Value, EvalError> {
        self.row.get(position).ok_or(EvalError::RowTooShort { position, len: self.row.len() })
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
    pub fn eval<'a>(&'a self, scope: &Scope<'a>) -> Result<Cow<'a, Value>, EvalError> {
        match self {
            Node::Const(value) => Ok(Cow::Borrowed(value)),
            Node::Field(position) => scope.field(*position).map(Cow::Borrowed),
            Node::Acc => scope.acc.map(Cow::Borrowed).ok_or(EvalError::NoAccumulator),
            Node::FieldArithInt { op, position, literal } => {
                field_arith_int(*op, scope.field(*position)?, *literal).map(Cow::Owned)
            }
            Node::FieldCompareInt { op, position, literal } => {
                field_compare_int(*op, scope.field(*position)?, *literal).map(bool_value)
            }
            Node::Neg(operand) => ops::negate(&*operand.eval(scope)?).map(Cow::Owned),
            Node::Not(operand) => ops::not(&*operand.eval(scope)?).map(bool_value),
            Node::Arith(op, pair) => {
                let [left, right] = &**pair;
                ops::arith(*op, &*left.eval(scope)?, &*right.eval(scope)?).map(Cow::Owned)
            }
            Node::Compare(op, pair) => {
                let [left, right] = &**pair;
                ops::compare(*op, &*left.eval(scope)?, &*right.eval(scope)?).map(bool_value)
            }
            Node::And(pair) => Ok(bool_value(pair[0].eval_bool(scope)? && pair[1].eval_bool(scope)?)),
            Node::Or(pair) => Ok(bool_value(pair[0].eval_bool(scope)? || pair[1].eval_bool(scope)?)),
            Node::Index(pair) => eval_index(pair, scope),
            Node::Call1(function, arg) => function.apply(arg.eval(scope)?),
            Node::Call2(function, args) => {
                let [a, b] = &**args;
                function.apply(&*a.eval(scope)?, &*b.eval(scope)?).map(Cow::Owned)
            }
            Node::Call3(function, args) => {
                let [a, b, c] = &**args;
                function.apply(&*a.eval(scope)?, &*b.eval(scope)?, &*c.eval(scope)?).map(Cow::Owned)
            }
            Node::If(args) => {
                let [condition, then, otherwise] = &**args;
                if condition.eval_bool(scope)? { then.eval(scope) } else { otherwise.eval(scope) }
            }
            Node::Coalesce(args) => coalesce(args, scope),
            Node::Concat(args) => functions::concat(args, scope).map(Cow::Owned),
        }
    }

    /// Evaluates a condition: a bool, or an error naming what came instead (null included).
    pub fn eval_bool(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match &*self.eval(scope)? {
            Value::Bool(b) => Ok(*b),
            other => Err(EvalError::NotBool { found: other.ty() }),
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
        other => ops::arith(op, other, &Value::Int(literal)),
    }
}

#[inline]
fn field_compare_int(op: CompareOp, field: &Value, literal: i64) -> Result<bool, EvalError> {
    match field {
        Value::Int(x) => Ok(ops::compare_int(op, *x, literal)),
        other => ops::compare(op, other, &Value::Int(literal)),
    }
}

fn eval_index<'a>(pair: &'a [Node; 2], scope: &Scope<'a>) -> Result<Cow<'a, Value>, EvalError> {
    let [list, index] = pair;
    let list = list.eval(scope)?;
    let index = index.eval(scope)?;
    match list {
        Cow::Borrowed(list) => ops::index(list, &index).map(Cow::Borrowed),
        Cow::Owned(list) => ops::index(&list, &index).map(|item| Cow::Owned(item.clone())),
    }
}

fn coalesce<'a>(args: &'a [Node], scope: &Scope<'a>) -> Result<Cow<'a, Value>, EvalError> {
    for arg in args {
        let value = arg.eval(scope)?;
        if !matches!(*value, Value::Null) {
            return Ok(value);
        }
    }
    Ok(Cow::Owned(Value::Null))
}
