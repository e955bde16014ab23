//! Expressions: the small language of job files, compiled once and evaluated per record.
//!
//! This module owns the expression language used by `map`, `filter`, `flat_map`, `key_by` and
//! window aggregations: [`compile`] parses a source string, resolves field names against the
//! input [`Schema`], checks types where they are known, folds constant subtrees and returns an
//! [`Expr`]; [`Expr::eval`] evaluates it over one row. Window aggregates (`sum(v)`,
//! `reduce(acc + v, 0)`, ...) live in [`aggregate`].
//!
//! It promises: compiling never panics, whatever the input; evaluation never panics and never
//! wraps on overflow; evaluation is deterministic and reads nothing but the row; nothing is
//! looked up by name at run time.
//!
//! # Grammar
//!
//! From lowest to highest precedence; binary operators associate to the left, comparisons do
//! not chain (`a < b < c` is an error).
//!
//! ```text
//! expr           = or
//! or             = and { ("or" | "||") and }
//! and            = not { ("and" | "&&") not }
//! not            = ("not" | "!") not | comparison
//! comparison     = additive [ ("==" | "!=" | "<" | "<=" | ">" | ">=") additive ]
//! additive       = multiplicative { ("+" | "-") multiplicative }
//! multiplicative = unary { ("*" | "/" | "%") unary }
//! unary          = "-" unary | postfix
//! postfix        = primary { "[" expr "]" }
//! primary        = literal | name | name "(" [ expr { "," expr } ] ")" | "(" expr ")"
//! literal        = int | float | string | "true" | "false" | "null"
//! int            = digit { digit | "_" }                  each "_" between two digits: 1_000
//! float          = int "." int [ exponent ] | int exponent          1.5  1e3  2.5E-3
//! exponent       = ("e" | "E") [ "+" | "-" ] int
//! string         = "'" { char | escape } "'" | '"' { char | escape } '"'
//! escape         = "\\" | "\'" | "\"" | "\n" | "\t" | "\r"
//! name           = [A-Za-z_] { [A-Za-z0-9_] }      but not: and or not true false null
//! ```
//!
//! Whitespace (spaces, tabs, newlines) separates tokens and is otherwise ignored. `!` is the
//! same operator as `not`, at the same (low) precedence: `!a == b` means `!(a == b)`. Unary
//! minus binds tighter than `*`, so `-7 % 3` is `(-7) % 3`. A `name` followed by `(` is a
//! function call; any other `name` is a field of the input. Nesting is limited to 128 levels.
//!
//! # Types and values
//!
//! Values are `null`, `bool`, `int` (64-bit signed), `float` (64-bit IEEE), `str` (UTF-8) and
//! `list`. Every expression has a static type; a field whose type is unknown (`any`, such as an
//! untyped CSV column) is accepted everywhere and checked when the record arrives. Static types
//! do not track nullness: a field typed `int` may still hold `null` at run time.
//!
//! - Arithmetic: `int op int` gives `int`; with a `float` on either side, `float`. `/` on two
//!   ints is integer division truncating toward zero (`7 / 2 == 3`, `-7 / 2 == -3`); `%` takes
//!   the sign of the dividend (`-7 % 3 == -1`), as in Java and Flink. Int overflow is an error,
//!   never a wrap. Dividing by zero (int or float) is an error; a literal zero divisor is a
//!   compile error. `+` also joins two strings.
//! - Comparison: numbers compare numerically across int and float (`1 == 1.0`; a NaN is unequal
//!   to everything and unordered); strings by bytes, bools `false < true`, lists element-wise.
//!   `==` and `!=` accept any two values: values of different kinds are unequal and
//!   `null == null`; comparing two statically different kinds with `==` is a compile error
//!   since it is always false. `< <= > >=` need two numbers or two values of the same kind.
//! - `and`, `or`, `not` take bools and short-circuit. Conditions (`filter`, `if`, `and`, ...)
//!   must be bools: `null` is not false, it is an error.
//! - `null` is accepted only by `==`, `!=`, `is_null`, `coalesce`, `if` branches, `str`
//!   (`'null'`), `concat`, `hash`, and as the value looked for in `contains(list, v)`; any other
//!   operator or function given a `null` fails for that record.
//! - `list[i]` takes the item at `i` (0-based); a negative `i` counts from the end (`-1` is the
//!   last item); an index outside the list is an error.
//!
//! # Functions
//!
//! | function                  | arguments             | result | notes                                        |
//! |---------------------------|-----------------------|--------|----------------------------------------------|
//! | `lower(s)`, `upper(s)`    | str                   | str    | Unicode case mapping                         |
//! | `trim(s)`                 | str                   | str    | strips leading and trailing whitespace       |
//! | `len(v)`                  | str or list           | int    | characters (not bytes), or items             |
//! | `split(s, sep)`           | str, str              | list   | see below                                    |
//! | `concat(a, b, ...)`       | 1 or more, any        | str    | joins the `str(v)` forms of its arguments    |
//! | `substr(s, start[, len])` | str, int[, int]       | str    | in characters; see below                     |
//! | `contains(s, t)`          | str, str              | bool   | `t` occurs in `s`                            |
//! | `contains(l, v)`          | list, any             | bool   | some item of `l` is `==` to `v`              |
//! | `starts_with(s, t)`       | str, str              | bool   | `s` begins with `t`                          |
//! | `ends_with(s, t)`         | str, str              | bool   | `s` ends with `t`                            |
//! | `replace(s, from, to)`    | str, str, str         | str    | every occurrence, left to right              |
//! | `abs(n)`                  | number                | same   | `abs` of the smallest int overflows          |
//! | `min(a, b)`, `max(a, b)`  | two comparable values | same   | an int and a float give a float              |
//! | `int(v)`                  | int, float, str, bool | int    | see below                                    |
//! | `float(v)`                | int, float, str       | float  | strs parsed after trimming; must be finite   |
//! | `str(v)`                  | any                   | str    | as the print sink writes it: `1.0`, `[a, b]` |
//! | `if(c, a, b)`             | bool, any, any        | a or b | evaluates only the branch taken              |
//! | `coalesce(a, b, ...)`     | 1 or more, any        | any    | the first argument that is not null          |
//! | `is_null(v)`              | any                   | bool   | `v` is null                                  |
//! | `hash(v)`                 | any                   | int    | FNV-1a, the same on every machine            |
//!
//! - `split(s, sep)`: when `sep` is a single space `' '`, `s` is split on runs of any
//!   whitespace and empty pieces are dropped (`split('a  b ', ' ')` is `[a, b]`); when `sep` is
//!   empty, `s` is split into characters; otherwise `s` is split at every `sep` and empty
//!   pieces are kept (`split('a,,b', ',')` is `[a, , b]`).
//! - `substr(s, start[, len])`: `start` is a 0-based character index, negative counts from the
//!   end; both ends are clamped to the string (`substr('abc', 5)` is `''`); a negative `len`
//!   is an error.
//! - `int(v)`: floats are truncated toward zero (NaN, infinities and floats beyond 64 bits fail),
//!   bools give 0 or 1, strs are parsed as decimal integers after trimming (`int('1.5')` fails).
//! - `hash(v)`: 64-bit FNV-1a over a canonical encoding of the value (see [`stable_hash`]), as
//!   a signed int. `hash(1) != hash(1.0)`.
//!
//! The aggregate names (`count`, `sum`, `avg`, `first`, `last`, `reduce`) are not functions:
//! they are only valid as a whole window aggregate, see [`aggregate`].
//!
//! # Errors
//!
//! A compile error ([`ExprError`]) carries the byte offset and the 1-based column of the
//! problem and quotes the offending token. Run-time failures ([`EvalError`]) concern one
//! record; what to do with it (fail the task, skip the record) is the operator's decision.
//!
//! # Evaluation cost
//!
//! Evaluation walks a compact tree in which fields are positions and functions are resolved.
//! Fields and constants are lent, not cloned (a string field costs no reference-count
//! traffic); int, float and bool arithmetic and comparisons never allocate; subtrees without
//! fields are computed once at compile time; `field op int-literal` (`x % 1000`, `v > 10`, also
//! `10 < v`) is a single node, which operators over many int rows apply as an [`IntKernel`]
//! (division by a literal as a multiplication); conditions are answered without building
//! intermediate values.
//! Strings are allocated only for results that are new strings (`lower` of a word that is
//! already lower case returns the word itself). Run the micro-benchmark with
//! `cargo test -p weir-tests --release --test expr_bench -- --ignored --nocapture`.
//!
//! # Serialization
//!
//! An [`Expr`] serializes as its source text, its input schema and (for the step of a
//! `reduce`) the type of `acc`, and is compiled again on deserialization: the compiled tree
//! never travels, so it cannot be corrupted in transit, and a source that no longer compiles
//! is refused with the compile error.

pub mod aggregate;
mod check;
mod error;
mod functions;
mod kernel;
mod lexer;
mod node;
mod ops;
mod parser;

#[cfg(test)]
mod tests;

pub use aggregate::{Accumulator, AccumulatorState, AggregateKind, AggregateSpec, compile_aggregate};
pub use error::{EvalError, ExprError};
pub use kernel::IntKernel;
pub use ops::stable_hash;

use crate::row::{Schema, Type, Value};
use check::Checker;
use node::{Node, Scope};
use parser::Ast;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// A compiled expression: cheap to clone (shared), safe to share across threads.
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "ExprSource", try_from = "ExprSource")]
pub struct Expr {
    compiled: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    source: Box<str>,
    input: Schema,
    acc: Option<Type>,
    root: Node,
    ty: Type,
}

/// What an [`Expr`] serializes as: enough to compile it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ExprSource {
    source: String,
    input: Schema,
    acc: Option<Type>,
}

/// Compiles `source` against rows of schema `input`.
pub fn compile(source: &str, input: &Schema) -> Result<Expr, ExprError> {
    compile_scoped(source, input, None)
}

/// Compiles `source`; inside `reduce`, `acc` names the accumulated value of type `acc`.
fn compile_scoped(source: &str, input: &Schema, acc: Option<Type>) -> Result<Expr, ExprError> {
    let ast = parser::parse(source)?;
    Expr::build(source, source, &ast, input, acc)
}

impl Expr {
    /// Checks `ast`, whose spans index into `full_source`, and keeps `text` as its source.
    fn build(full_source: &str, text: &str, ast: &Ast, input: &Schema, acc: Option<Type>) -> Result<Expr, ExprError> {
        let checked = Checker { source: full_source, input, acc }.check(ast)?;
        let compiled = Compiled { source: text.into(), input: input.clone(), acc, root: checked.node, ty: checked.ty };
        Ok(Expr { compiled: Arc::new(compiled) })
    }

    /// Evaluates the expression over `row`, whose values follow the input schema.
    #[inline]
    pub fn eval(&self, row: &[Value]) -> Result<Value, EvalError> {
        self.compiled.root.eval_owned(&Scope { row, acc: None }).map_err(|fault| *fault)
    }

    /// Evaluates a condition: `Ok` only for a bool; `null` or any other value is an error.
    #[inline]
    pub fn eval_bool(&self, row: &[Value]) -> Result<bool, EvalError> {
        self.compiled.root.eval_bool(&Scope { row, acc: None }).map_err(|fault| *fault)
    }

    /// Evaluates with `acc` bound (inside `reduce`), lending fields and constants.
    fn eval_in<'a>(&'a self, row: &'a [Value], acc: Option<&'a Value>) -> Result<Cow<'a, Value>, EvalError> {
        self.compiled.root.eval(&Scope { row, acc }).map_err(|fault| *fault)
    }

    /// The static type of the result (`any` when only the record can tell).
    pub fn ty(&self) -> Type {
        self.compiled.ty
    }

    /// The source text it was compiled from.
    pub fn source(&self) -> &str {
        &self.compiled.source
    }

    /// The schema it was compiled against.
    pub fn input(&self) -> &Schema {
        &self.compiled.input
    }

    /// `Some(position)` when the whole expression is one field reference.
    pub fn field(&self) -> Option<usize> {
        match self.compiled.root {
            Node::Field(position) => Some(position),
            _ => None,
        }
    }

    /// The expression as an [`IntKernel`] when it is `field op int-literal` arithmetic.
    pub fn int_kernel(&self) -> Option<IntKernel> {
        match self.compiled.root {
            Node::FieldArithInt { op, position, literal } => Some(IntKernel::new(op, position, literal)),
            _ => None,
        }
    }

    /// The value, when the expression does not depend on the row (it was folded).
    pub fn constant(&self) -> Option<&Value> {
        self.compiled.root.as_const()
    }

    /// Positions of the fields it reads, ascending, each once.
    pub fn fields_used(&self) -> Vec<usize> {
        let mut used = BTreeSet::new();
        let mut pending = vec![&self.compiled.root];
        while let Some(node) = pending.pop() {
            used.extend(node.own_field());
            pending.extend(node.children());
        }
        used.into_iter().collect()
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expr").field("source", &self.source()).field("ty", &self.ty()).finish()
    }
}

impl PartialEq for Expr {
    /// Two expressions are equal when compiled from the same source against the same input.
    fn eq(&self, other: &Expr) -> bool {
        let (a, b) = (&self.compiled, &other.compiled);
        a.source == b.source && a.input == b.input && a.acc == b.acc
    }
}

impl From<Expr> for ExprSource {
    fn from(expr: Expr) -> ExprSource {
        let compiled = &expr.compiled;
        ExprSource { source: compiled.source.to_string(), input: compiled.input.clone(), acc: compiled.acc }
    }
}

impl TryFrom<ExprSource> for Expr {
    type Error = ExprError;

    fn try_from(repr: ExprSource) -> Result<Expr, ExprError> {
        compile_scoped(&repr.source, &repr.input, repr.acc)
    }
}
