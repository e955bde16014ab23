//! Parser: tokens to a syntax tree ([`Ast`]) that still names fields and functions.
//!
//! Recursive descent, one function per precedence level (lowest first): `or`, `and`, `not`,
//! comparison (not chainable), additive, multiplicative, unary minus, postfix `[i]`, primary.
//! Both the descent and the finished tree are bounded by [`DEPTH_MAX`], so no input can
//! overflow the stack while parsing, checking, evaluating or dropping.

use super::error::{ExprError, quote};
use super::lexer::{Token, TokenKind, tokenize};
use crate::row::Value;

/// The deepest nesting accepted, counting both parentheses and operator chains.
pub(super) const DEPTH_MAX: u32 = 128;

/// A syntax tree node with the byte span of its source text.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Ast {
    /// What the node is.
    pub kind: AstKind,
    /// Byte offset of the node's first character.
    pub start: usize,
    /// Byte offset just past the node.
    pub end: usize,
    /// Height of the tree below and including this node (a leaf has 1).
    pub depth: u32,
}

/// The shapes of syntax.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum AstKind {
    /// A literal value (negative numbers come from folding unary minus).
    Literal(Value),
    /// A field name, or `acc` inside `reduce`.
    Name(String),
    /// `-e`, `not e`.
    Unary(UnaryOp, Box<Ast>),
    /// `a op b`; `op_offset` locates the operator for messages.
    Binary { op: BinaryOp, op_offset: usize, left: Box<Ast>, right: Box<Ast> },
    /// `list[index]`.
    Index(Box<Ast>, Box<Ast>),
    /// `name(args)`; `name_offset` locates the name for messages.
    Call { name: String, name_offset: usize, args: Vec<Ast> },
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnaryOp {
    /// `-`
    Neg,
    /// `not` or `!`
    Not,
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Infix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BinaryOp {
    Arith(ArithOp),
    Compare(CompareOp),
    And,
    Or,
}

impl ArithOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

impl CompareOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

impl BinaryOp {
    /// The operator as written (`and`/`or` in their word form).
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Arith(op) => op.symbol(),
            BinaryOp::Compare(op) => op.symbol(),
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }
}

impl Ast {
    /// A node over `start..end` whose children are `children`, refused if it nests too deep.
    fn new(source: &str, kind: AstKind, start: usize, end: usize) -> Result<Ast, ExprError> {
        let depth = 1 + kind.children().iter().map(|child| child.depth).max().unwrap_or(0);
        if depth > DEPTH_MAX {
            let message = format!("expression nests deeper than {DEPTH_MAX} levels");
            return Err(ExprError::new(source, start, message));
        }
        Ok(Ast { kind, start, end, depth })
    }
}

impl AstKind {
    /// Direct children in source order.
    pub fn children(&self) -> Vec<&Ast> {
        match self {
            AstKind::Literal(_) | AstKind::Name(_) => Vec::new(),
            AstKind::Unary(_, operand) => vec![operand],
            AstKind::Binary { left, right, .. } => vec![left, right],
            AstKind::Index(list, index) => vec![list, index],
            AstKind::Call { args, .. } => args.iter().collect(),
        }
    }
}

/// Parses a whole expression.
pub(super) fn parse(source: &str) -> Result<Ast, ExprError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser { source, tokens, next: 0, nesting: 0 };
    if parser.peek().kind == TokenKind::End {
        return Err(ExprError::new(source, parser.peek().start, "empty expression"));
    }
    let ast = parser.expression()?;
    let token = parser.peek();
    if token.kind != TokenKind::End {
        let message = format!("unexpected {} after a complete expression", parser.describe(token));
        return Err(ExprError::new(source, token.start, message));
    }
    Ok(ast)
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    next: usize,
    nesting: u32,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[self.next.min(last)]
    }

    fn peek_kind_at(&self, ahead: usize) -> Option<&TokenKind> {
        self.tokens.get(self.next + ahead).map(|token| &token.kind)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.next += 1;
        }
        token
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.source, offset, message)
    }

    /// How a token reads in a message: its text quoted, or "the end of the expression".
    fn describe(&self, token: &Token) -> String {
        if token.kind == TokenKind::End {
            return "end of expression".to_string();
        }
        quote(&self.source[token.start..token.end])
    }

    fn node(&self, kind: AstKind, start: usize, end: usize) -> Result<Ast, ExprError> {
        Ast::new(self.source, kind, start, end)
    }

    /// Counts one level of recursive descent; refuses input nested past [`DEPTH_MAX`].
    fn descend(&mut self) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > DEPTH_MAX {
            let message = format!("expression nests deeper than {DEPTH_MAX} levels");
            return Err(self.error(self.peek().start, message));
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<Ast, ExprError> {
        self.descend()?;
        let ast = self.or()?;
        self.nesting -= 1;
        Ok(ast)
    }

    fn binary(&self, op: BinaryOp, op_offset: usize, left: Ast, right: Ast) -> Result<Ast, ExprError> {
        let (start, end) = (left.start, right.end);
        let kind = AstKind::Binary { op, op_offset, left: Box::new(left), right: Box::new(right) };
        self.node(kind, start, end)
    }

    fn or(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.and()?;
        while self.peek().kind == TokenKind::Or {
            let op_offset = self.advance().start;
            let right = self.and()?;
            left = self.binary(BinaryOp::Or, op_offset, left, right)?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.not()?;
        while self.peek().kind == TokenKind::And {
            let op_offset = self.advance().start;
            let right = self.not()?;
            left = self.binary(BinaryOp::And, op_offset, left, right)?;
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Ast, ExprError> {
        if self.peek().kind != TokenKind::Not {
            return self.comparison();
        }
        self.descend()?;
        let start = self.advance().start;
        let operand = self.not()?;
        self.nesting -= 1;
        let end = operand.end;
        self.node(AstKind::Unary(UnaryOp::Not, Box::new(operand)), start, end)
    }

    fn comparison(&mut self) -> Result<Ast, ExprError> {
        let left = self.additive()?;
        let Some(op) = compare_op(&self.peek().kind) else { return Ok(left) };
        let op_offset = self.advance().start;
        let right = self.additive()?;
        let token = self.peek();
        if compare_op(&token.kind).is_some() {
            let message = format!(
                "comparisons cannot be chained: {} follows another comparison; join them with `and`",
                self.describe(token)
            );
            return Err(self.error(token.start, message));
        }
        self.binary(BinaryOp::Compare(op), op_offset, left, right)
    }

    fn additive(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => ArithOp::Add,
                TokenKind::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            let op_offset = self.advance().start;
            let right = self.multiplicative()?;
            left = self.binary(BinaryOp::Arith(op), op_offset, left, right)?;
        }
    }

    fn multiplicative(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => ArithOp::Mul,
                TokenKind::Slash => ArithOp::Div,
                TokenKind::Percent => ArithOp::Rem,
                _ => return Ok(left),
            };
            let op_offset = self.advance().start;
            let right = self.unary()?;
            left = self.binary(BinaryOp::Arith(op), op_offset, left, right)?;
        }
    }

    fn unary(&mut self) -> Result<Ast, ExprError> {
        if self.peek().kind != TokenKind::Minus {
            return self.postfix();
        }
        if let Some(literal) = self.int_min_literal()? {
            return Ok(literal);
        }
        self.descend()?;
        let start = self.advance().start;
        let operand = self.unary()?;
        self.nesting -= 1;
        let end = operand.end;
        self.node(AstKind::Unary(UnaryOp::Neg, Box::new(operand)), start, end)
    }

    /// `-9223372036854775808`, whose magnitude is only an int when negated.
    fn int_min_literal(&mut self) -> Result<Option<Ast>, ExprError> {
        let magnitude = i64::MIN.unsigned_abs();
        let is_int_min = self.peek_kind_at(1) == Some(&TokenKind::Int(magnitude))
            && self.peek_kind_at(2) != Some(&TokenKind::LBracket);
        if !is_int_min {
            return Ok(None);
        }
        let start = self.advance().start;
        let end = self.advance().end;
        self.node(AstKind::Literal(Value::Int(i64::MIN)), start, end).map(Some)
    }

    fn postfix(&mut self) -> Result<Ast, ExprError> {
        let mut ast = self.primary()?;
        while self.peek().kind == TokenKind::LBracket {
            let open = self.advance();
            let index = self.expression()?;
            let end = self.expect_closing(TokenKind::RBracket, "]", &open)?;
            let start = ast.start;
            ast = self.node(AstKind::Index(Box::new(ast), Box::new(index)), start, end)?;
        }
        Ok(ast)
    }

    /// Consumes the `closing` token matching `open`, returning the end of it.
    fn expect_closing(&mut self, closing: TokenKind, text: &str, open: &Token) -> Result<usize, ExprError> {
        let token = self.peek();
        if token.kind == closing {
            return Ok(self.advance().end);
        }
        let opening = quote(&self.source[open.start..open.end]);
        let column = self.source[..open.start].chars().count() + 1;
        let message =
            format!("expected `{text}` to close {opening} at column {column}, found {}", self.describe(token));
        Err(self.error(token.start, message))
    }

    fn primary(&mut self) -> Result<Ast, ExprError> {
        let token = self.advance();
        let literal = match token.kind {
            TokenKind::Int(magnitude) => match i64::try_from(magnitude) {
                Ok(value) => Value::Int(value),
                Err(_) => {
                    let text = quote(&self.source[token.start..token.end]);
                    return Err(self.error(token.start, format!("integer {text} is out of range for int")));
                }
            },
            TokenKind::Float(value) => Value::Float(value),
            TokenKind::Str(ref text) => Value::str(text),
            TokenKind::True => Value::Bool(true),
            TokenKind::False => Value::Bool(false),
            TokenKind::Null => Value::Null,
            TokenKind::Ident => return self.name_or_call(&token),
            TokenKind::LParen => return self.parenthesized(&token),
            _ => {
                let message = format!("expected an expression, found {}", self.describe(&token));
                return Err(self.error(token.start, message));
            }
        };
        self.node(AstKind::Literal(literal), token.start, token.end)
    }

    fn parenthesized(&mut self, open: &Token) -> Result<Ast, ExprError> {
        let mut inner = self.expression()?;
        let end = self.expect_closing(TokenKind::RParen, ")", open)?;
        inner.start = open.start;
        inner.end = end;
        Ok(inner)
    }

    fn name_or_call(&mut self, name_token: &Token) -> Result<Ast, ExprError> {
        let name = self.source[name_token.start..name_token.end].to_string();
        if self.peek().kind != TokenKind::LParen {
            return self.node(AstKind::Name(name), name_token.start, name_token.end);
        }
        let open = self.advance();
        let mut args = Vec::new();
        if self.peek().kind != TokenKind::RParen {
            args.push(self.expression()?);
            while self.peek().kind == TokenKind::Comma {
                self.advance();
                args.push(self.expression()?);
            }
        }
        let end = self.expect_closing(TokenKind::RParen, ")", &open)?;
        let name_offset = name_token.start;
        self.node(AstKind::Call { name, name_offset, args }, name_offset, end)
    }
}

fn compare_op(kind: &TokenKind) -> Option<CompareOp> {
    Some(match kind {
        TokenKind::EqEq => CompareOp::Eq,
        TokenKind::NotEq => CompareOp::Ne,
        TokenKind::Lt => CompareOp::Lt,
        TokenKind::Le => CompareOp::Le,
        TokenKind::Gt => CompareOp::Gt,
        TokenKind::Ge => CompareOp::Ge,
        _ => return None,
    })
}
