//! Checking: a syntax tree to a typed, resolved and folded [`Node`].
//!
//! Names become field positions (or `acc`), calls become function nodes of a fixed shape, and
//! every operator's operand types are checked where they are known. Subtrees without fields
//! are evaluated once here ("folded"), so a literal-only subtree that always fails (such as
//! `int('x')`) is a compile error, and `x / 0` is refused outright.

use super::error::{ExprError, quote};
use super::functions::{FUNCTIONS, Function};
use super::node::{Node, Scope};
use super::parser::{ArithOp, Ast, AstKind, BinaryOp, CompareOp, UnaryOp};
use crate::row::{Schema, Type, Value};

/// Names of the window aggregates, refused inside plain expressions with a pointed message.
pub(super) const AGGREGATE_NAMES: [&str; 8] = ["count", "sum", "min", "max", "avg", "first", "last", "reduce"];

/// A checked node and its static type.
#[derive(Clone, Debug)]
pub(super) struct Checked {
    pub node: Node,
    pub ty: Type,
}

/// Resolves and types syntax against one input schema.
pub(super) struct Checker<'a> {
    /// The full source the spans index into.
    pub source: &'a str,
    /// The input rows' schema.
    pub input: &'a Schema,
    /// The type of `acc` when checking the expression of a `reduce`.
    pub acc: Option<Type>,
}

impl Checker<'_> {
    /// Checks `ast` and everything below it.
    pub fn check(&self, ast: &Ast) -> Result<Checked, ExprError> {
        match &ast.kind {
            AstKind::Literal(value) => Ok(Checked { node: Node::Const(value.clone()), ty: value.ty() }),
            AstKind::Name(name) => self.name(ast, name),
            AstKind::Unary(op, operand) => self.unary(ast, *op, operand),
            AstKind::Binary { op, op_offset, left, right } => self.binary(ast, *op, *op_offset, left, right),
            AstKind::Index(list, index) => self.index(ast, list, index),
            AstKind::Call { name, name_offset, args } => self.call(ast, name, *name_offset, args),
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.source, offset, message)
    }

    /// The source text of `ast`, quoted for a message.
    fn quoted(&self, ast: &Ast) -> String {
        quote(self.source.get(ast.start..ast.end).unwrap_or_default())
    }

    /// "int `x`": a type and the text that has it.
    fn typed(&self, ty: Type, ast: &Ast) -> String {
        format!("{ty} {}", self.quoted(ast))
    }

    fn name(&self, ast: &Ast, name: &str) -> Result<Checked, ExprError> {
        if let (Some(ty), "acc") = (self.acc, name) {
            return Ok(Checked { node: Node::Acc, ty });
        }
        if let Some(position) = self.input.position(name) {
            let ty = self.input.fields[position].ty;
            return Ok(Checked { node: Node::Field(position), ty });
        }
        Err(self.error(ast.start, self.unknown_field_message(name)))
    }

    fn unknown_field_message(&self, name: &str) -> String {
        let mut message = format!("unknown field {}", quote(name));
        let names = self.input.fields.iter().map(|field| field.name.as_str());
        if let Some(close) = suggest(name, names) {
            message.push_str(&format!(" (did you mean `{close}`?)"));
        }
        if self.input.fields.is_empty() {
            message.push_str("; the input has no fields");
        } else {
            message.push_str(&format!("; the input has: {}", self.input.names()));
        }
        if Function::lookup(name).is_some() {
            message.push_str(&format!("; to call the function, write `{name}(...)`"));
        }
        message
    }

    fn unary(&self, ast: &Ast, op: UnaryOp, operand: &Ast) -> Result<Checked, ExprError> {
        let inner = self.check(operand)?;
        let (symbol, wanted, fits) = match op {
            UnaryOp::Neg => ("-", "a number", matches!(inner.ty, Type::Int | Type::Float | Type::Any)),
            UnaryOp::Not => ("not", "a bool", matches!(inner.ty, Type::Bool | Type::Any)),
        };
        if !fits {
            let message = format!("`{symbol}` needs {wanted}, but {} is {}", self.quoted(operand), inner.ty);
            return Err(self.error(ast.start, message));
        }
        let (node, ty) = match op {
            UnaryOp::Neg => (Node::Neg(Box::new(inner.node)), inner.ty),
            UnaryOp::Not => (Node::Not(Box::new(inner.node)), Type::Bool),
        };
        self.fold(ast, node, ty)
    }

    fn binary(&self, ast: &Ast, op: BinaryOp, op_offset: usize, left: &Ast, right: &Ast) -> Result<Checked, ExprError> {
        let (a, b) = (self.check(left)?, self.check(right)?);
        let operands = format!("{} and {}", self.typed(a.ty, left), self.typed(b.ty, right));
        match op {
            BinaryOp::Arith(op) => {
                let Some(ty) = arith_type(op, a.ty, b.ty) else {
                    let message = format!("cannot apply `{}` to {operands}", op.symbol());
                    return Err(self.error(op_offset, message));
                };
                self.refuse_zero_divisor(op, &b, right)?;
                self.fold(ast, arith_node(op, a.node, b.node), ty)
            }
            BinaryOp::Compare(op) => {
                if !comparable(op, a.ty, b.ty) {
                    let message = format!("cannot compare {operands} with `{}`", op.symbol());
                    return Err(self.error(op_offset, message));
                }
                self.fold(ast, compare_node(op, a.node, b.node), Type::Bool)
            }
            BinaryOp::And | BinaryOp::Or => self.logic(ast, op, [(a, left), (b, right)]),
        }
    }

    fn refuse_zero_divisor(&self, op: ArithOp, divisor: &Checked, right: &Ast) -> Result<(), ExprError> {
        let is_division = matches!(op, ArithOp::Div | ArithOp::Rem);
        let is_zero = matches!(divisor.node.as_const(), Some(Value::Int(0))) || float_zero(&divisor.node);
        if is_division && is_zero {
            let message = format!("division by zero: the divisor {} is zero", self.quoted(right));
            return Err(self.error(right.start, message));
        }
        Ok(())
    }

    fn logic(&self, ast: &Ast, op: BinaryOp, operands: [(Checked, &Ast); 2]) -> Result<Checked, ExprError> {
        for (operand, operand_ast) in &operands {
            if !matches!(operand.ty, Type::Bool | Type::Any) {
                let shown = self.typed(operand.ty, operand_ast);
                let message = format!("`{}` needs bools on both sides, but {shown} is not", op.symbol());
                return Err(self.error(operand_ast.start, message));
            }
        }
        let [(left, _), (right, _)] = operands;
        let short_circuit = op == BinaryOp::Or;
        if left.node.as_const() == Some(&Value::Bool(short_circuit)) {
            return Ok(Checked { node: left.node, ty: Type::Bool });
        }
        let pair = Box::new([left.node, right.node]);
        let node = if short_circuit { Node::Or(pair) } else { Node::And(pair) };
        self.fold(ast, node, Type::Bool)
    }

    fn index(&self, ast: &Ast, list: &Ast, index: &Ast) -> Result<Checked, ExprError> {
        let (items, position) = (self.check(list)?, self.check(index)?);
        if !matches!(items.ty, Type::List | Type::Any) {
            let message = format!("only lists can be indexed, but {} is {}", self.quoted(list), items.ty);
            return Err(self.error(list.start, message));
        }
        if !matches!(position.ty, Type::Int | Type::Any) {
            let message = format!("a list index must be an int, but {} is {}", self.quoted(index), position.ty);
            return Err(self.error(index.start, message));
        }
        self.fold(ast, Node::Index(Box::new([items.node, position.node])), Type::Any)
    }

    fn call(&self, ast: &Ast, name: &str, name_offset: usize, args: &[Ast]) -> Result<Checked, ExprError> {
        let function = Function::lookup(name).ok_or_else(|| self.error(name_offset, unknown_function(name)))?;
        let signature = function.signature();
        if !signature.allows(args.len()) {
            let message = format!("`{name}` takes {}, found {}", signature.describe(), args.len());
            return Err(self.error(name_offset, message));
        }
        let mut nodes = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for (index, arg) in args.iter().enumerate() {
            let checked = self.check(arg)?;
            let accept = signature.param(index);
            if !accept.accepts(checked.ty) {
                let shown = self.typed(checked.ty, arg);
                let message =
                    format!("`{name}` needs {} as argument {}, but got {shown}", accept.describe(), index + 1);
                return Err(self.error(arg.start, message));
            }
            nodes.push(checked.node);
            types.push(checked.ty);
        }
        let Some(ty) = function.result_type(&types) else {
            let shown: Vec<String> = args.iter().zip(&types).map(|(arg, ty)| self.typed(*ty, arg)).collect();
            let message = format!("`{name}` cannot take {} together", shown.join(" and "));
            return Err(self.error(name_offset, message));
        };
        let node = function.node(nodes).ok_or_else(|| self.error(name_offset, "internal error: bad arity"))?;
        self.fold(ast, node, ty)
    }

    /// Replaces a node whose operands are all constants by its value; a failure is a
    /// compile error since it would fail for every row.
    fn fold(&self, ast: &Ast, node: Node, ty: Type) -> Result<Checked, ExprError> {
        let node = fold_if(node);
        if let Some(value) = node.as_const() {
            let ty = if value.ty() == Type::Null { ty } else { value.ty() };
            return Ok(Checked { node, ty });
        }
        let children = node.children();
        let foldable = !children.is_empty() && children.iter().all(|child| child.as_const().is_some());
        if !foldable {
            return Ok(Checked { node, ty });
        }
        let scope = Scope { row: &[], acc: None };
        match node.eval(&scope) {
            Ok(value) => {
                let value = value.into_owned();
                let ty = if value.ty() == Type::Null { ty } else { value.ty() };
                Ok(Checked { node: Node::Const(value), ty })
            }
            Err(error) => Err(self.error(ast.start, format!("{} always fails: {error}", self.quoted(ast)))),
        }
    }
}

/// `if` with a constant condition becomes the branch it takes.
fn fold_if(node: Node) -> Node {
    let Node::If(args) = node else { return node };
    let [condition, then, otherwise] = *args;
    match condition.as_const() {
        Some(Value::Bool(true)) => then,
        Some(Value::Bool(false)) => otherwise,
        _ => Node::If(Box::new([condition, then, otherwise])),
    }
}

fn float_zero(node: &Node) -> bool {
    matches!(node.as_const(), Some(Value::Float(x)) if *x == 0.0)
}

fn arith_node(op: ArithOp, left: Node, right: Node) -> Node {
    match (&left, right.as_const()) {
        (Node::Field(position), Some(Value::Int(literal))) => {
            Node::FieldArithInt { op, position: *position, literal: *literal }
        }
        _ => Node::Arith(op, Box::new([left, right])),
    }
}

fn compare_node(op: CompareOp, left: Node, right: Node) -> Node {
    match (&left, &right) {
        (Node::Field(position), Node::Const(Value::Int(literal))) => {
            Node::FieldCompareInt { op, position: *position, literal: *literal }
        }
        (Node::Const(Value::Int(literal)), Node::Field(position)) => {
            Node::FieldCompareInt { op: flip(op), position: *position, literal: *literal }
        }
        _ => Node::Compare(op, Box::new([left, right])),
    }
}

/// The operator that gives the same answer with the operands swapped.
fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
        CompareOp::Eq | CompareOp::Ne => op,
    }
}

fn is_numeric(ty: Type) -> bool {
    matches!(ty, Type::Int | Type::Float)
}

/// The static result of `l op r`, `None` if no values of these types can be combined.
fn arith_type(op: ArithOp, l: Type, r: Type) -> Option<Type> {
    let operand = |t: Type| is_numeric(t) || t == Type::Any || (op == ArithOp::Add && t == Type::Str);
    if !operand(l) || !operand(r) {
        return None;
    }
    Some(match (l, r) {
        (Type::Int, Type::Int) => Type::Int,
        (Type::Str, Type::Str | Type::Any) | (Type::Any, Type::Str) => Type::Str,
        (Type::Any, _) | (_, Type::Any) => Type::Any,
        _ if is_numeric(l) && is_numeric(r) => Type::Float,
        _ => return None,
    })
}

/// Whether `l op r` can ever be true: equality needs types that can be equal (null goes
/// with anything), ordering needs two numbers or two values of the same kind.
fn comparable(op: CompareOp, l: Type, r: Type) -> bool {
    let both_numeric = is_numeric(l) && is_numeric(r);
    match (l, r) {
        (Type::Any, _) | (_, Type::Any) => true,
        _ if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
            l == r || l == Type::Null || r == Type::Null || both_numeric
        }
        _ => both_numeric || (l == r && matches!(l, Type::Str | Type::Bool | Type::List)),
    }
}

fn unknown_function(name: &str) -> String {
    if AGGREGATE_NAMES.contains(&name) {
        return format!("`{name}` is a window aggregate, not a function usable inside an expression");
    }
    let names = FUNCTIONS.iter().map(|function| function.name());
    match suggest(name, names.clone()) {
        Some(close) => format!("unknown function {}; did you mean `{close}`?", quote(name)),
        None => {
            let all: Vec<&str> = names.collect();
            format!("unknown function {}; the functions are: {}", quote(name), all.join(", "))
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub(super) fn suggest<'n>(name: &str, candidates: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    let limit = 1 + name.chars().count() / 4;
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(name, candidate);
        let better = best.is_none_or(|(best_distance, _)| distance < best_distance);
        if distance <= limit && distance < name.chars().count() && better {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
