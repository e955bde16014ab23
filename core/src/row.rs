//! Rows: the records that job-file operators exchange.
//!
//! A row is a `Vec<Value>` whose meaning comes from a [`Schema`] known at planning time, so
//! expressions resolve field names to positions once, not per record. Values are a small closed
//! set of types; `Float` compares and hashes by its bit pattern so rows can be keys.
//!
//! A [`RowBatch`] holds many rows of one width back to back in one vector: the data plane moves
//! records between the gate, the operators and the writers in batches, so per-record calls
//! through trait objects happen once per batch. Its slots are reused: an int written over an
//! int slot of an earlier batch neither allocates nor drops anything.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// One field's value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    /// Absent or unknown.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text; shared so copying a row does not copy its strings.
    Str(Arc<str>),
    /// A list, produced by functions such as `split` and consumed by `flat_map`.
    List(Arc<[Value]>),
}

/// A record of a job-file operator: values in the order of the edge's [`Schema`].
pub type Row = Vec<Value>;

/// The static type of a field or an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Type {
    /// Only `null` has this type.
    Null,
    /// Boolean.
    Bool,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// Text.
    Str,
    /// A list of values.
    List,
    /// Not known until run time (for example a CSV column without a declared type).
    Any,
}

impl Type {
    /// The name used in job files and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::Str => "str",
            Type::List => "list",
            Type::Any => "any",
        }
    }

    /// Parses a type name as written in a job file (`int`, `float`, `str`, `bool`).
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "float" => Type::Float,
            "str" | "string" => Type::Str,
            "list" => Type::List,
            "any" => Type::Any,
            _ => return None,
        })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One named, typed field of a schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The name expressions use.
    pub name: String,
    /// Its static type.
    pub ty: Type,
}

/// The fields of the rows on one edge, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Fields in row order.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of `(name, type)` pairs.
    pub fn new<'a>(fields: impl IntoIterator<Item = (&'a str, Type)>) -> Schema {
        Schema { fields: fields.into_iter().map(|(name, ty)| Field { name: name.to_string(), ty }).collect() }
    }

    /// Position of the field called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field.name == name)
    }

    /// Whether rows of `self` and `other` may meet on one input: same names, and types equal
    /// or one of them `any`.
    pub fn is_compatible(&self, other: &Schema) -> bool {
        self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|(a, b)| a.name == b.name && (a.ty == b.ty || a.ty == Type::Any || b.ty == Type::Any))
    }

    /// The fields as `name: type` joined by `, ` for error messages.
    pub fn describe(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(|field| format!("{}: {}", field.name, field.ty)).collect();
        fields.join(", ")
    }

    /// The field names joined by `, ` for error messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|field| field.name.as_str()).collect();
        names.join(", ")
    }
}

/// Rows of one width stored one after another, with their slots kept for reuse (see the module
/// doc). Invariant: the first `len · width` values are the rows; values beyond them are stale
/// slots of earlier batches, kept so the next rows overwrite them in place.
#[derive(Clone, Debug, Default)]
pub struct RowBatch {
    values: Vec<Value>,
    width: usize,
    len: usize,
}

impl RowBatch {
    /// An empty batch of rows of no fields (the first [`RowBatch::start`] sets the width).
    pub fn new() -> RowBatch {
        RowBatch::default()
    }

    /// Empties the batch for rows of `width` fields; slots are kept when the width is the same.
    #[inline]
    pub fn start(&mut self, width: usize) {
        self.len = 0;
        if width != self.width {
            self.values.clear();
            self.width = width;
        }
    }

    /// Number of rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no row.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fields per row.
    #[inline]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Row `index`; panics beyond [`RowBatch::len`].
    #[inline]
    pub fn row(&self, index: usize) -> &[Value] {
        assert!(index < self.len, "row {index} of {}", self.len);
        &self.values[index * self.width..(index + 1) * self.width]
    }

    /// The rows in order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &[Value]> + '_ {
        let width = self.width;
        (0..self.len).map(move |index| &self.values[index * width..(index + 1) * width])
    }

    /// Appends a row and returns its slots to fill: they hold whatever an earlier batch left
    /// there (or `null`), to be overwritten in place.
    #[inline]
    pub fn push_slots(&mut self) -> &mut [Value] {
        let (start, end) = (self.len * self.width, (self.len + 1) * self.width);
        if self.values.len() < end {
            self.values.resize(end, Value::Null);
        }
        self.len += 1;
        &mut self.values[start..end]
    }

    /// Field `field` of every row, in order (nothing for a field beyond the width).
    #[inline]
    pub fn column(&self, field: usize) -> impl Iterator<Item = &Value> + '_ {
        let rows = if field < self.width { self.len } else { 0 };
        self.values.get(field..).unwrap_or(&[]).iter().step_by(self.width.max(1)).take(rows)
    }

    /// Field `field` of every row, to overwrite in place.
    #[inline]
    pub fn column_mut(&mut self, field: usize) -> impl Iterator<Item = &mut Value> + '_ {
        let rows = if field < self.width { self.len } else { 0 };
        self.values.get_mut(field..).unwrap_or(&mut []).iter_mut().step_by(self.width.max(1)).take(rows)
    }

    /// Sets the number of rows to `rows`, new rows holding whatever slots an earlier batch left
    /// (or `null`), to be overwritten.
    #[inline]
    pub fn set_len(&mut self, rows: usize) {
        if self.values.len() < rows * self.width {
            self.values.resize(rows * self.width, Value::Null);
        }
        self.len = rows;
    }

    /// Appends a copy of `row`, which must have the batch's width.
    pub fn push(&mut self, row: &[Value]) {
        assert_eq!(row.len(), self.width, "a row of {} fields in a batch of {}", row.len(), self.width);
        self.push_slots().clone_from_slice(row);
    }

    /// Keeps the first `len` rows (no-op when there are not more).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Value {
    /// The value's dynamic type.
    pub fn ty(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Str(_) => Type::Str,
            Value::List(_) => Type::List,
        }
    }

    /// A string value.
    pub fn str(text: &str) -> Value {
        Value::Str(Arc::from(text))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// A total order so values can be keys: by type first, floats by IEEE total order.
    fn cmp(&self, other: &Value) -> std::cmp::Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => std::cmp::Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            (List(a), List(b)) => a.cmp(b),
            _ => self.ty().cmp(&other.ty()),
        }
    }
}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(x) => x.to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::List(items) => items.hash(state),
        }
    }
}

impl fmt::Display for Value {
    /// The form the print and file sinks write: strings bare, lists in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_order_totally_even_with_nan() {
        let mut values = [Value::Float(f64::NAN), Value::Int(2), Value::Null, Value::Float(1.0)];
        values.sort();
        assert_eq!(values[0], Value::Null);
        assert_eq!(values[1], Value::Int(2));
        assert_eq!(values[2], Value::Float(1.0));
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    }

    #[test]
    fn a_batch_reuses_its_slots_and_keeps_rows_apart() {
        let mut batch = RowBatch::new();
        batch.start(2);
        batch.push(&[Value::Int(1), Value::str("a")]);
        batch.push_slots().clone_from_slice(&[Value::Int(2), Value::Null]);
        assert_eq!(
            batch.iter().collect::<Vec<_>>(),
            vec![&[Value::Int(1), Value::str("a")][..], &[Value::Int(2), Value::Null]]
        );
        batch.start(2);
        assert!(batch.is_empty());
        assert_eq!(batch.push_slots(), &[Value::Int(1), Value::str("a")], "the old slots come back for reuse");
        batch.set_len(1);
        assert_eq!(batch.column(1).collect::<Vec<_>>(), [&Value::str("a")]);
        batch.column_mut(0).for_each(|value| *value = Value::Int(7));
        assert_eq!(batch.row(0), &[Value::Int(7), Value::str("a")]);
        assert_eq!(batch.column(2).count(), 0, "no field beyond the width");
        batch.truncate(0);
        batch.start(0);
        batch.push(&[]);
        assert_eq!((batch.len(), batch.width(), batch.row(0).len()), (1, 0, 0));
    }

    #[test]
    fn schema_finds_fields_by_name() {
        let schema = Schema::new([("k", Type::Int), ("v", Type::Int)]);
        assert_eq!(schema.position("v"), Some(1));
        assert_eq!(schema.position("w"), None);
        assert_eq!(schema.names(), "k, v");
    }
}
