//! The two error types of expressions: [`ExprError`] when compiling, [`EvalError`] when running.

use crate::row::Type;

/// The longest operand text quoted in a message before it is cut with `…`.
const QUOTE_CHARS_MAX: usize = 40;

/// A compile error: what is wrong and where in the source.
///
/// Messages are self-contained and quote the offending token, so job-file validation can
/// prefix them with the file, line and field without adding context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    /// Byte offset in the source where the problem starts.
    pub offset: usize,
    /// What is wrong, with the offending token quoted.
    pub message: String,
    /// 1-based character column of `offset`, computed once from the source.
    column: usize,
}

impl ExprError {
    /// An error at byte `offset` of `source`.
    pub(super) fn new(source: &str, offset: usize, message: impl Into<String>) -> ExprError {
        debug_assert!(offset <= source.len());
        let prefix = source.get(..offset).unwrap_or(source);
        ExprError { offset, message: message.into(), column: prefix.chars().count() + 1 }
    }

    /// The 1-based character (not byte) column where the problem starts.
    pub fn column(&self) -> usize {
        self.column
    }
}

/// `text` in backticks, cut to [`QUOTE_CHARS_MAX`] characters.
pub(super) fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_CHARS_MAX {
        return format!("`{text}`");
    }
    let cut: String = text.chars().take(QUOTE_CHARS_MAX).collect();
    format!("`{cut}…`")
}

/// A run-time error of one evaluation; the record that caused it is the caller's to report.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// An integer or float division or remainder with a zero divisor.
    #[error("division by zero in `{op}`")]
    DivisionByZero {
        /// The operator or function.
        op: &'static str,
    },
    /// An integer result that does not fit in 64 bits.
    #[error("integer overflow in `{op}`")]
    Overflow {
        /// The operator or function.
        op: &'static str,
    },
    /// A binary operator given values it cannot combine.
    #[error("`{op}` cannot take {left} and {right}")]
    Operands {
        /// The operator.
        op: &'static str,
        /// The left value's type.
        left: Type,
        /// The right value's type.
        right: Type,
    },
    /// A unary operator given a value it cannot take.
    #[error("`{op}` cannot take {found}")]
    Operand {
        /// The operator.
        op: &'static str,
        /// The value's type.
        found: Type,
    },
    /// A function argument of the wrong type.
    #[error("`{function}` expects {expected} as argument {index}, found {found}")]
    Argument {
        /// The function.
        function: &'static str,
        /// 1-based argument position.
        index: usize,
        /// What the function accepts there.
        expected: &'static str,
        /// What it got.
        found: Type,
    },
    /// Text that `int` or `float` could not parse.
    #[error("cannot parse {text} as {target}")]
    Parse {
        /// The text, quoted and cut to a readable length.
        text: String,
        /// The type asked for.
        target: Type,
    },
    /// A float that has no integer value (NaN, infinite, or beyond 64 bits).
    #[error("float {value} has no int value")]
    FloatToInt {
        /// The float.
        value: f64,
    },
    /// A list index outside the list.
    #[error("index {index} is out of range for a list of {len} values")]
    IndexOutOfRange {
        /// The index as written (negative counts from the end).
        index: i64,
        /// The list's length.
        len: usize,
    },
    /// A negative length given to `substr`.
    #[error("`substr` length {len} is negative")]
    NegativeLength {
        /// The length.
        len: i64,
    },
    /// A row shorter than the schema the expression was compiled against.
    #[error("the row has {len} values, but the expression reads field {position}")]
    RowTooShort {
        /// The field position read.
        position: usize,
        /// The row's length.
        len: usize,
    },
    /// A condition that did not produce a bool (null included).
    #[error("expected a bool, found {found}")]
    NotBool {
        /// The value's type.
        found: Type,
    },
    /// `acc` evaluated outside a `reduce` accumulator.
    #[error("`acc` is only defined inside `reduce`")]
    NoAccumulator,
    /// `merge` on an aggregate whose result depends on the order of rows.
    #[error("`{aggregate}` accumulators cannot be merged")]
    NotMergeable {
        /// The aggregate.
        aggregate: &'static str,
    },
    /// `merge` or restore given state of a different aggregate.
    #[error("accumulator state of `{found}` does not fit aggregate `{expected}`")]
    StateMismatch {
        /// The aggregate of the accumulator.
        expected: &'static str,
        /// The aggregate the state belongs to.
        found: &'static str,
    },
}

/// An [`EvalError`] in a box: evaluation returns `Result<Cow<Value>, Fault>`, which stays
/// three aligned words, where an unboxed error would make every intermediate result wider and
/// its moves slower. Errors are rare, so the allocation is paid only when one happens.
pub(super) type Fault = Box<EvalError>;

impl EvalError {
    /// A [`EvalError::Parse`] quoting `text`.
    pub(super) fn parse(text: &str, target: Type) -> EvalError {
        EvalError::Parse { text: quote(text), target }
    }
}
