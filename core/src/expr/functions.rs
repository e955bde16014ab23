//! The built-in functions: names, signatures, static result types and evaluation.
//!
//! [`Function`] is what a name resolves to; once the arity is checked it becomes a node of the
//! matching shape ([`Unary`], [`Binary`], [`Ternary`] or a variadic node), so evaluation never
//! looks at an argument count again.

use super::error::{EvalError, Fault};

use super::node::{Node, Scope};
use super::ops::{self, stable_hash};
use crate::row::{Type, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// A built-in function as named in source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Function {
    Lower,
    Upper,
    Trim,
    Len,
    Split,
    Concat,
    Substr,
    Contains,
    StartsWith,
    EndsWith,
    Replace,
    Abs,
    Min,
    Max,
    Int,
    Float,
    Str,
    If,
    Coalesce,
    IsNull,
    Hash,
}

/// Every function, in the order suggestions and listings use.
pub(super) const FUNCTIONS: [Function; 21] = [
    Function::Lower,
    Function::Upper,
    Function::Trim,
    Function::Len,
    Function::Split,
    Function::Concat,
    Function::Substr,
    Function::Contains,
    Function::StartsWith,
    Function::EndsWith,
    Function::Replace,
    Function::Abs,
    Function::Min,
    Function::Max,
    Function::Int,
    Function::Float,
    Function::Str,
    Function::If,
    Function::Coalesce,
    Function::IsNull,
    Function::Hash,
];

/// What one parameter accepts. [`Type::Any`] passes every check and is checked at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Accept {
    Str,
    Int,
    Bool,
    Number,
    StrOrList,
    Comparable,
    IntSource,
    FloatSource,
    Anything,
}

impl Accept {
    /// How the accepted types read in a message.
    pub fn describe(self) -> &'static str {
        match self {
            Accept::Str => "a str",
            Accept::Int => "an int",
            Accept::Bool => "a bool",
            Accept::Number => "a number",
            Accept::StrOrList => "a str or list",
            Accept::Comparable => "a number, str, bool or list",
            Accept::IntSource => "an int, float, str or bool",
            Accept::FloatSource => "an int, float or str",
            Accept::Anything => "any value",
        }
    }

    /// Whether a value of static type `ty` may be passed.
    pub fn accepts(self, ty: Type) -> bool {
        match (self, ty) {
            (_, Type::Any) | (Accept::Anything, _) => true,
            (_, Type::Null) => false,
            (Accept::Str, found) => found == Type::Str,
            (Accept::Int, found) => found == Type::Int,
            (Accept::Bool, found) => found == Type::Bool,
            (Accept::Number, found) => matches!(found, Type::Int | Type::Float),
            (Accept::StrOrList, found) => matches!(found, Type::Str | Type::List),
            (Accept::Comparable, _) => true,
            (Accept::IntSource, found) => found != Type::List,
            (Accept::FloatSource, found) => matches!(found, Type::Int | Type::Float | Type::Str),
        }
    }
}

/// The parameters of a function: the first `required` of `params` must be given; a variadic
/// function repeats its last parameter.
#[derive(Clone, Copy, Debug)]
pub(super) struct Signature {
    pub params: &'static [Accept],
    pub required: usize,
    pub variadic: bool,
}

impl Signature {
    const fn fixed(params: &'static [Accept]) -> Signature {
        Signature { params, required: params.len(), variadic: false }
    }

    /// Whether `count` arguments fit.
    pub fn allows(self, count: usize) -> bool {
        count >= self.required && (self.variadic || count <= self.params.len())
    }

    /// What argument `index` (0-based) accepts.
    pub fn param(self, index: usize) -> Accept {
        let last = self.params.len().saturating_sub(1);
        self.params.get(index.min(last)).copied().unwrap_or(Accept::Anything)
    }

    /// "1 argument", "2 or 3 arguments", "1 or more arguments".
    pub fn describe(self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match (self.variadic, self.params.len()) {
            (true, _) => format!("{} or more arguments", self.required),
            (false, max) if max == self.required => format!("{max} {}", plural(max)),
            (false, max) if max == self.required + 1 => format!("{} or {max} arguments", self.required),
            (false, max) => format!("{} to {max} arguments", self.required),
        }
    }
}

impl Function {
    /// The name as written in source.
    pub fn name(self) -> &'static str {
        match self {
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Trim => "trim",
            Function::Len => "len",
            Function::Split => "split",
            Function::Concat => "concat",
            Function::Substr => "substr",
            Function::Contains => "contains",
            Function::StartsWith => "starts_with",
            Function::EndsWith => "ends_with",
            Function::Replace => "replace",
            Function::Abs => "abs",
            Function::Min => "min",
            Function::Max => "max",
            Function::Int => "int",
            Function::Float => "float",
            Function::Str => "str",
            Function::If => "if",
            Function::Coalesce => "coalesce",
            Function::IsNull => "is_null",
            Function::Hash => "hash",
        }
    }

    /// The function called `name`.
    pub fn lookup(name: &str) -> Option<Function> {
        FUNCTIONS.into_iter().find(|function| function.name() == name)
    }

    /// Its parameters.
    pub fn signature(self) -> Signature {
        use Accept::*;
        match self {
            Function::Lower | Function::Upper | Function::Trim => Signature::fixed(&[Str]),
            Function::Len => Signature::fixed(&[StrOrList]),
            Function::Split | Function::StartsWith | Function::EndsWith => Signature::fixed(&[Str, Str]),
            Function::Concat | Function::Coalesce => Signature { params: &[Anything], required: 1, variadic: true },
            Function::Substr => Signature { params: &[Str, Int, Int], required: 2, variadic: false },
            Function::Contains => Signature::fixed(&[StrOrList, Anything]),
            Function::Replace => Signature::fixed(&[Str, Str, Str]),
            Function::Abs => Signature::fixed(&[Number]),
            Function::Min | Function::Max => Signature::fixed(&[Comparable, Comparable]),
            Function::Int => Signature::fixed(&[IntSource]),
            Function::Float => Signature::fixed(&[FloatSource]),
            Function::Str | Function::IsNull | Function::Hash => Signature::fixed(&[Anything]),
            Function::If => Signature::fixed(&[Bool, Anything, Anything]),
        }
    }

    /// The static result type for accepted argument types, or `None` when the arguments
    /// do not fit together (`min('a', 1)`, `contains('abc', 1)`).
    pub fn result_type(self, args: &[Type]) -> Option<Type> {
        match (self, args) {
            (Function::Abs, [number]) => Some(*number),
            (Function::Min | Function::Max, [a, b]) => comparable_join(*a, *b),
            (Function::Contains, [Type::Str, needle]) => matches!(needle, Type::Str | Type::Any).then_some(Type::Bool),
            (Function::If, [_, then, otherwise]) => Some(join(*then, *otherwise)),
            (Function::Coalesce, _) => Some(args.iter().copied().fold(Type::Null, join)),
            _ => Some(self.fixed_result_type()),
        }
    }

    fn fixed_result_type(self) -> Type {
        match self {
            Function::Lower | Function::Upper | Function::Trim => Type::Str,
            Function::Concat | Function::Substr | Function::Replace | Function::Str => Type::Str,
            Function::Len | Function::Int | Function::Hash => Type::Int,
            Function::Split => Type::List,
            Function::Contains | Function::StartsWith | Function::EndsWith | Function::IsNull => Type::Bool,
            Function::Float => Type::Float,
            Function::Abs | Function::Min | Function::Max | Function::If | Function::Coalesce => Type::Any,
        }
    }

    /// The node calling this function on `args`, whose count the caller has checked.
    pub fn node(self, args: Vec<Node>) -> Option<Node> {
        match self {
            Function::Coalesce => return Some(Node::Coalesce(args.into_boxed_slice())),
            Function::Concat => return Some(Node::Concat(args.into_boxed_slice())),
            _ => {}
        }
        let mut args = args.into_iter();
        Some(match (self, args.len()) {
            (Function::If, 3) => Node::If(Box::new([args.next()?, args.next()?, args.next()?])),
            (_, 1) => Node::Call1(Unary::of(self)?, Box::new(args.next()?)),
            (_, 2) => Node::Call2(Binary::of(self)?, Box::new([args.next()?, args.next()?])),
            (_, 3) => Node::Call3(Ternary::of(self)?, Box::new([args.next()?, args.next()?, args.next()?])),
            _ => return None,
        })
    }
}

/// The type of a value that is either an `a` or a `b` (null joins with anything).
pub(super) fn join(a: Type, b: Type) -> Type {
    match (a, b) {
        _ if a == b => a,
        (Type::Null, other) | (other, Type::Null) => other,
        _ => Type::Any,
    }
}

/// The result type of `min`/`max` of an `a` and a `b`, `None` if they cannot be compared.
pub(super) fn comparable_join(a: Type, b: Type) -> Option<Type> {
    let numeric = |t: Type| matches!(t, Type::Int | Type::Float);
    match (a, b) {
        (Type::Any, _) | (_, Type::Any) => Some(Type::Any),
        _ if a == b => Some(a),
        _ if numeric(a) && numeric(b) => Some(Type::Float),
        _ => None,
    }
}

/// One-argument functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unary {
    Lower,
    Upper,
    Trim,
    Len,
    Abs,
    Int,
    Float,
    Str,
    IsNull,
    Hash,
}

/// Two-argument functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Binary {
    Split,
    Substr,
    Contains,
    StartsWith,
    EndsWith,
    Min,
    Max,
}

/// Three-argument functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ternary {
    Substr,
    Replace,
}

impl Unary {
    fn of(function: Function) -> Option<Unary> {
        Some(match function {
            Function::Lower => Unary::Lower,
            Function::Upper => Unary::Upper,
            Function::Trim => Unary::Trim,
            Function::Len => Unary::Len,
            Function::Abs => Unary::Abs,
            Function::Int => Unary::Int,
            Function::Float => Unary::Float,
            Function::Str => Unary::Str,
            Function::IsNull => Unary::IsNull,
            Function::Hash => Unary::Hash,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Unary::Lower => "lower",
            Unary::Upper => "upper",
            Unary::Trim => "trim",
            Unary::Len => "len",
            Unary::Abs => "abs",
            Unary::Int => "int",
            Unary::Float => "float",
            Unary::Str => "str",
            Unary::IsNull => "is_null",
            Unary::Hash => "hash",
        }
    }

    /// Applies the function; `None` means the argument itself is the result (a word that
    /// is already lower case), which saves copying it.
    pub fn apply(self, arg: &Value) -> Result<Option<Value>, EvalError> {
        let name = self.name();
        Ok(Some(match self {
            Unary::Lower => return map_str(name, arg, lower),
            Unary::Upper => return map_str(name, arg, upper),
            Unary::Trim => return map_str(name, arg, trim),
            Unary::Str if matches!(arg, Value::Str(_)) => return Ok(None),
            Unary::Str => Value::str(&arg.to_string()),
            Unary::Len => Value::Int(len(arg)?),
            Unary::Abs => abs(arg)?,
            Unary::Int => Value::Int(to_int(arg)?),
            Unary::Float => Value::Float(to_float(arg)?),
            Unary::IsNull => Value::Bool(matches!(arg, Value::Null)),
            Unary::Hash => Value::Int(stable_hash(arg) as i64),
        }))
    }
}

impl Binary {
    fn of(function: Function) -> Option<Binary> {
        Some(match function {
            Function::Split => Binary::Split,
            Function::Substr => Binary::Substr,
            Function::Contains => Binary::Contains,
            Function::StartsWith => Binary::StartsWith,
            Function::EndsWith => Binary::EndsWith,
            Function::Min => Binary::Min,
            Function::Max => Binary::Max,
            _ => return None,
        })
    }

    /// Applies the function.
    pub fn apply(self, a: &Value, b: &Value) -> Result<Value, EvalError> {
        match self {
            Binary::Split => Ok(split(str_arg("split", 1, a)?, str_arg("split", 2, b)?)),
            Binary::Substr => substr(str_arg("substr", 1, a)?, int_arg("substr", 2, b)?, None),
            Binary::Contains => contains(a, b).map(Value::Bool),
            Binary::StartsWith => {
                let (text, prefix) = (str_arg("starts_with", 1, a)?, str_arg("starts_with", 2, b)?);
                Ok(Value::Bool(text.starts_with(prefix)))
            }
            Binary::EndsWith => {
                let (text, suffix) = (str_arg("ends_with", 1, a)?, str_arg("ends_with", 2, b)?);
                Ok(Value::Bool(text.ends_with(suffix)))
            }
            Binary::Min => ops::extreme("min", a, b, false),
            Binary::Max => ops::extreme("max", a, b, true),
        }
    }
}

impl Ternary {
    fn of(function: Function) -> Option<Ternary> {
        match function {
            Function::Substr => Some(Ternary::Substr),
            Function::Replace => Some(Ternary::Replace),
            _ => None,
        }
    }

    /// Applies the function.
    pub fn apply(self, a: &Value, b: &Value, c: &Value) -> Result<Value, EvalError> {
        match self {
            Ternary::Substr => {
                let text = str_arg("substr", 1, a)?;
                substr(text, int_arg("substr", 2, b)?, Some(int_arg("substr", 3, c)?))
            }
            Ternary::Replace => {
                let text = str_arg("replace", 1, a)?;
                let (from, to) = (str_arg("replace", 2, b)?, str_arg("replace", 3, c)?);
                Ok(Value::str(&text.replace(from, to)))
            }
        }
    }
}

fn argument_error(function: &'static str, index: usize, expected: Accept, found: &Value) -> EvalError {
    EvalError::Argument { function, index, expected: expected.describe(), found: found.ty() }
}

fn str_arg<'v>(function: &'static str, index: usize, value: &'v Value) -> Result<&'v str, EvalError> {
    match value {
        Value::Str(text) => Ok(text),
        _ => Err(argument_error(function, index, Accept::Str, value)),
    }
}

fn int_arg(function: &'static str, index: usize, value: &Value) -> Result<i64, EvalError> {
    match value {
        Value::Int(x) => Ok(*x),
        _ => Err(argument_error(function, index, Accept::Int, value)),
    }
}

/// Applies `change` to a str argument; `None` from it means "unchanged", which keeps the
/// argument (and avoids an allocation) when, say, a word is already lower case.
fn map_str(
    function: &'static str,
    arg: &Value,
    change: fn(&str) -> Option<String>,
) -> Result<Option<Value>, EvalError> {
    let changed = change(str_arg(function, 1, arg)?);
    Ok(changed.map(|text| Value::Str(Arc::from(text))))
}

fn lower(text: &str) -> Option<String> {
    if text.is_ascii() {
        return text.bytes().any(|b| b.is_ascii_uppercase()).then(|| text.to_ascii_lowercase());
    }
    let lowered = text.to_lowercase();
    (lowered != text).then_some(lowered)
}

fn upper(text: &str) -> Option<String> {
    if text.is_ascii() {
        return text.bytes().any(|b| b.is_ascii_lowercase()).then(|| text.to_ascii_uppercase());
    }
    let raised = text.to_uppercase();
    (raised != text).then_some(raised)
}

fn trim(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (trimmed.len() != text.len()).then(|| trimmed.to_string())
}

fn len(value: &Value) -> Result<i64, EvalError> {
    let count = match value {
        Value::Str(text) => text.chars().count(),
        Value::List(items) => items.len(),
        _ => return Err(argument_error("len", 1, Accept::StrOrList, value)),
    };
    i64::try_from(count).map_err(|_| EvalError::Overflow { op: "len" })
}

fn abs(value: &Value) -> Result<Value, EvalError> {
    match value {
        Value::Int(x) => x.checked_abs().map(Value::Int).ok_or(EvalError::Overflow { op: "abs" }),
        Value::Float(x) => Ok(Value::Float(x.abs())),
        _ => Err(argument_error("abs", 1, Accept::Number, value)),
    }
}

/// `int(v)`: ints as they are, floats truncated toward zero, bools as 0 or 1, strs parsed
/// as decimal integers after trimming whitespace.
fn to_int(value: &Value) -> Result<i64, EvalError> {
    match value {
        Value::Int(x) => Ok(*x),
        Value::Float(x) => ops::float_to_int(*x),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Str(text) => text.trim().parse::<i64>().map_err(|_| EvalError::parse(text, Type::Int)),
        _ => Err(argument_error("int", 1, Accept::IntSource, value)),
    }
}

/// `float(v)`: numbers converted, strs parsed after trimming; non-finite results fail.
fn to_float(value: &Value) -> Result<f64, EvalError> {
    match value {
        Value::Int(x) => Ok(*x as f64),
        Value::Float(x) => Ok(*x),
        Value::Str(text) => match text.trim().parse::<f64>() {
            Ok(parsed) if parsed.is_finite() => Ok(parsed),
            _ => Err(EvalError::parse(text, Type::Float)),
        },
        _ => Err(argument_error("float", 1, Accept::FloatSource, value)),
    }
}

/// `split(s, sep)`: a single space splits on runs of whitespace and drops empty pieces; an
/// empty separator splits into characters; any other separator splits exactly, keeping
/// empty pieces.
fn split(text: &str, separator: &str) -> Value {
    let pieces: Vec<Value> = match separator {
        " " => text.split_whitespace().map(Value::str).collect(),
        "" => text.chars().map(|c| Value::str(c.encode_utf8(&mut [0; 4]))).collect(),
        _ => text.split(separator).map(Value::str).collect(),
    };
    Value::List(Arc::from(pieces))
}

/// `substr(s, start[, len])` in characters: a negative `start` counts from the end, both
/// ends are clamped to the string, and a negative `len` is an error.
fn substr(text: &str, start: i64, len: Option<i64>) -> Result<Value, EvalError> {
    let count = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    let from = if start < 0 { count.saturating_add(start).max(0) } else { start.min(count) };
    let take = match len {
        None => count - from,
        Some(len) if len < 0 => return Err(EvalError::NegativeLength { len }),
        Some(len) => len.min(count - from),
    };
    let byte_at = |chars: i64| {
        let chars = usize::try_from(chars).unwrap_or(usize::MAX);
        text.char_indices().nth(chars).map_or(text.len(), |(offset, _)| offset)
    };
    let (begin, end) = (byte_at(from), byte_at(from + take));
    Ok(Value::str(&text[begin..end]))
}

/// `contains(s, t)` for a substring, `contains(list, v)` for an item equal to `v`.
fn contains(haystack: &Value, needle: &Value) -> Result<bool, EvalError> {
    match (haystack, needle) {
        (Value::Str(text), Value::Str(part)) => Ok(text.contains(&**part)),
        (Value::Str(_), _) => Err(argument_error("contains", 2, Accept::Str, needle)),
        (Value::List(items), _) => Ok(items.iter().any(|item| ops::equal(item, needle))),
        _ => Err(argument_error("contains", 1, Accept::StrOrList, haystack)),
    }
}

/// `concat(a, ...)`: the str forms of all arguments, joined.
pub(super) fn concat(args: &[Node], scope: &Scope<'_>) -> Result<Value, Fault> {
    let mut text = String::new();
    for arg in args {
        match &*arg.eval(scope)? {
            Value::Str(part) => text.push_str(part),
            other => {
                let _ = write!(text, "{other}");
            }
        }
    }
    Ok(Value::Str(Arc::from(text)))
}
