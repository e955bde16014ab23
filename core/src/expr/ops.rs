//! Operators on values: arithmetic, comparison, indexing, and the stable hash.
//!
//! Everything here works on borrowed values and allocates only for results that are strings
//! (`+` on two strings), so int, float and bool arithmetic never touches the heap.

use super::error::EvalError;
use super::parser::{ArithOp, CompareOp};
use crate::row::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// `2^63` as a float: the first float above every `i64`.
const INT_LIMIT_AS_FLOAT: f64 = 9_223_372_036_854_775_808.0;

/// `a op b` for `+ - * / %`.
pub(super) fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => arith_int(op, *x, *y).map(Value::Int),
        (Value::Int(x), Value::Float(y)) => arith_float(op, *x as f64, *y).map(Value::Float),
        (Value::Float(x), Value::Int(y)) => arith_float(op, *x, *y as f64).map(Value::Float),
        (Value::Float(x), Value::Float(y)) => arith_float(op, *x, *y).map(Value::Float),
        (Value::Str(x), Value::Str(y)) if op == ArithOp::Add => Ok(Value::Str(concat_pair(x, y))),
        _ => Err(EvalError::Operands { op: op.symbol(), left: a.ty(), right: b.ty() }),
    }
}

/// Checked int arithmetic: overflow and a zero divisor are errors, `/` truncates toward
/// zero and `%` takes the sign of the dividend (as in Rust, Java and Flink).
#[inline]
pub(super) fn arith_int(op: ArithOp, x: i64, y: i64) -> Result<i64, EvalError> {
    let result = match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div | ArithOp::Rem if y == 0 => {
            return Err(EvalError::DivisionByZero { op: op.symbol() });
        }
        ArithOp::Div => x.checked_div(y),
        ArithOp::Rem => x.checked_rem(y),
    };
    result.ok_or(EvalError::Overflow { op: op.symbol() })
}

/// IEEE float arithmetic, except that a zero divisor is an error as it is for ints.
#[inline]
pub(super) fn arith_float(op: ArithOp, x: f64, y: f64) -> Result<f64, EvalError> {
    Ok(match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div | ArithOp::Rem if y == 0.0 => {
            return Err(EvalError::DivisionByZero { op: op.symbol() });
        }
        ArithOp::Div => x / y,
        ArithOp::Rem => x % y,
    })
}

fn concat_pair(x: &str, y: &str) -> Arc<str> {
    let mut text = String::with_capacity(x.len() + y.len());
    text.push_str(x);
    text.push_str(y);
    Arc::from(text)
}

/// `-v` for numbers.
pub(super) fn negate(value: &Value) -> Result<Value, EvalError> {
    match value {
        Value::Int(x) => x.checked_neg().map(Value::Int).ok_or(EvalError::Overflow { op: "-" }),
        Value::Float(x) => Ok(Value::Float(-x)),
        _ => Err(EvalError::Operand { op: "-", found: value.ty() }),
    }
}

/// `a op b` for `== != < <= > >=`.
pub(super) fn compare(op: CompareOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    let ordering = match op {
        CompareOp::Eq => return Ok(equal(a, b)),
        CompareOp::Ne => return Ok(!equal(a, b)),
        _ => order(op.symbol(), a, b)?,
    };
    let Some(ordering) = ordering else { return Ok(false) };
    Ok(match op {
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Eq | CompareOp::Ne => ordering.is_eq(),
    })
}

/// `cmp` on ints, for the `field op literal` fast path.
#[inline]
pub(super) fn compare_int(op: CompareOp, x: i64, y: i64) -> bool {
    match op {
        CompareOp::Eq => x == y,
        CompareOp::Ne => x != y,
        CompareOp::Lt => x < y,
        CompareOp::Le => x <= y,
        CompareOp::Gt => x > y,
        CompareOp::Ge => x >= y,
    }
}

/// Equality: numbers numerically (`1 == 1.0`, IEEE for floats), everything else by value;
/// values of different kinds are unequal, and `null == null`.
pub(super) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(x), Value::Float(y)) => (*x as f64) == *y,
        (Value::Float(x), Value::Int(y)) => *x == (*y as f64),
        (Value::Float(x), Value::Float(y)) => x == y,
        _ => a == b,
    }
}

/// Ordering of two values of the same kind (ints and floats mix); `None` when a NaN is
/// involved; an error for other mixes and for null.
pub(super) fn order(op: &'static str, a: &Value, b: &Value) -> Result<Option<Ordering>, EvalError> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::List(_), Value::List(_)) => Some(a.cmp(b)),
        _ => return Err(EvalError::Operands { op, left: a.ty(), right: b.ty() }),
    })
}

/// The smaller (`greater == false`) or larger of two values; an int and a float give a float.
pub(super) fn extreme(function: &'static str, a: &Value, b: &Value, greater: bool) -> Result<Value, EvalError> {
    let pick = |x: f64, y: f64| if greater { x.max(y) } else { x.min(y) };
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(Value::Int(if greater { *x.max(y) } else { *x.min(y) })),
        (Value::Int(x), Value::Float(y)) => Ok(Value::Float(pick(*x as f64, *y))),
        (Value::Float(x), Value::Int(y)) => Ok(Value::Float(pick(*x, *y as f64))),
        (Value::Float(x), Value::Float(y)) => Ok(Value::Float(pick(*x, *y))),
        _ => {
            let ordering = order(function, a, b)?.unwrap_or(Ordering::Equal);
            let take_b = if greater { ordering.is_lt() } else { ordering.is_gt() };
            Ok(if take_b { b.clone() } else { a.clone() })
        }
    }
}

/// `list[index]`; a negative index counts from the end.
pub(super) fn index<'v>(list: &'v Value, index: &Value) -> Result<&'v Value, EvalError> {
    let (Value::List(items), Value::Int(position)) = (list, index) else {
        return Err(EvalError::Operands { op: "[]", left: list.ty(), right: index.ty() });
    };
    let len = items.len();
    let resolved =
        if *position < 0 { i64::try_from(len).ok().and_then(|n| n.checked_add(*position)) } else { Some(*position) };
    resolved
        .and_then(|p| usize::try_from(p).ok())
        .and_then(|p| items.get(p))
        .ok_or(EvalError::IndexOutOfRange { index: *position, len })
}

/// The int with the float's integer part; NaN (outside every range), infinities and floats
/// beyond 64 bits fail.
pub(super) fn float_to_int(value: f64) -> Result<i64, EvalError> {
    let truncated = value.trunc();
    if !(-INT_LIMIT_AS_FLOAT..INT_LIMIT_AS_FLOAT).contains(&truncated) {
        return Err(EvalError::FloatToInt { value });
    }
    Ok(truncated as i64)
}

/// 64-bit FNV-1a over a canonical encoding of `value`: the same on every machine and build.
///
/// The encoding is a type tag byte (null 0, bool 1, int 2, float 3, str 4, list 5) then the
/// payload: bool as one byte, int and float (its IEEE bits) as 8 little-endian bytes, str
/// as its UTF-8 length (8 bytes LE) and bytes, list as its length (8 bytes LE) and items.
/// So `hash(1) != hash(1.0)` and `hash(0.0) != hash(-0.0)`.
pub fn stable_hash(value: &Value) -> u64 {
    let mut hasher = Fnv1a::new();
    hasher.value(value);
    hasher.state
}

/// 64-bit FNV-1a (Fowler–Noll–Vo), byte at a time.
pub(super) struct Fnv1a {
    pub state: u64,
}

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Fnv1a {
        Fnv1a { state: Fnv1a::OFFSET_BASIS }
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state ^= u64::from(byte);
            self.state = self.state.wrapping_mul(Fnv1a::PRIME);
        }
    }

    fn len(&mut self, len: usize) {
        self.bytes(&(len as u64).to_le_bytes());
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.bytes(&[0]),
            Value::Bool(b) => self.bytes(&[1, u8::from(*b)]),
            Value::Int(x) => {
                self.bytes(&[2]);
                self.bytes(&x.to_le_bytes());
            }
            Value::Float(x) => {
                self.bytes(&[3]);
                self.bytes(&x.to_bits().to_le_bytes());
            }
            Value::Str(text) => {
                self.bytes(&[4]);
                self.len(text.len());
                self.bytes(text.as_bytes());
            }
            Value::List(items) => {
                self.bytes(&[5]);
                self.len(items.len());
                items.iter().for_each(|item| self.value(item));
            }
        }
    }
}
