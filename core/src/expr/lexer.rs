//! Lexer: source text to tokens, each with its byte span.
//!
//! Integer literals are kept as unsigned magnitudes so the parser can accept
//! `-9223372036854775808` (whose magnitude alone does not fit in an `i64`).

use super::error::{ExprError, quote};

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum TokenKind {
    /// An integer literal's magnitude, `_` separators removed.
    Int(u64),
    /// A float literal.
    Float(f64),
    /// A string literal with escapes resolved.
    Str(String),
    /// A name: a field, `acc`, or a function when followed by `(`.
    Ident,
    True,
    False,
    Null,
    And,
    Or,
    Not,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// The end of the source.
    End,
}

/// One token and the bytes it covers.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// Splits `source` into tokens, ending with one [`TokenKind::End`].
pub(super) fn tokenize(source: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer { source, bytes: source.as_bytes(), pos: 0 };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace();
        let start = lexer.pos;
        let kind = lexer.token()?;
        let end = lexer.pos;
        let last = kind == TokenKind::End;
        tokens.push(Token { kind, start, end });
        if last {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    source: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.source, offset, message)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// The token starting at `self.pos`, advancing past it.
    fn token(&mut self) -> Result<TokenKind, ExprError> {
        let Some(byte) = self.peek() else { return Ok(TokenKind::End) };
        if byte.is_ascii_digit() {
            return self.number();
        }
        if byte.is_ascii_alphabetic() || byte == b'_' {
            return Ok(self.word());
        }
        if byte == b'\'' || byte == b'"' {
            return self.string(byte);
        }
        self.symbol(byte)
    }

    fn symbol(&mut self, byte: u8) -> Result<TokenKind, ExprError> {
        let start = self.pos;
        let next = self.peek_at(1);
        let (kind, len) = match (byte, next) {
            (b'=', Some(b'=')) => (TokenKind::EqEq, 2),
            (b'!', Some(b'=')) => (TokenKind::NotEq, 2),
            (b'<', Some(b'=')) => (TokenKind::Le, 2),
            (b'>', Some(b'=')) => (TokenKind::Ge, 2),
            (b'&', Some(b'&')) => (TokenKind::And, 2),
            (b'|', Some(b'|')) => (TokenKind::Or, 2),
            (b'<', _) => (TokenKind::Lt, 1),
            (b'>', _) => (TokenKind::Gt, 1),
            (b'!', _) => (TokenKind::Not, 1),
            (b'+', _) => (TokenKind::Plus, 1),
            (b'-', _) => (TokenKind::Minus, 1),
            (b'*', _) => (TokenKind::Star, 1),
            (b'/', _) => (TokenKind::Slash, 1),
            (b'%', _) => (TokenKind::Percent, 1),
            (b'(', _) => (TokenKind::LParen, 1),
            (b')', _) => (TokenKind::RParen, 1),
            (b'[', _) => (TokenKind::LBracket, 1),
            (b']', _) => (TokenKind::RBracket, 1),
            (b',', _) => (TokenKind::Comma, 1),
            (b'=', _) => return Err(self.error(start, "unexpected `=`; did you mean `==`?")),
            (b'&', _) => return Err(self.error(start, "unexpected `&`; did you mean `&&` (or `and`)?")),
            (b'|', _) => return Err(self.error(start, "unexpected `|`; did you mean `||` (or `or`)?")),
            _ => return Err(self.unexpected_character(start)),
        };
        self.pos += len;
        Ok(kind)
    }

    fn unexpected_character(&self, start: usize) -> ExprError {
        let character = self.source.get(start..).and_then(|rest| rest.chars().next()).unwrap_or('?');
        self.error(start, format!("unexpected character {}", quote(&character.to_string())))
    }

    fn word(&mut self) -> TokenKind {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.pos += 1;
        }
        match &self.source[start..self.pos] {
            "true" => TokenKind::True,
            "false" => TokenKind::False,
            "null" => TokenKind::Null,
            "and" => TokenKind::And,
            "or" => TokenKind::Or,
            "not" => TokenKind::Not,
            _ => TokenKind::Ident,
        }
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit() || b == b'_') {
            self.pos += 1;
        }
    }

    /// An integer `123`, `1_000`, or a float `1.5`, `1e3`, `2.5E-3`.
    fn number(&mut self) -> Result<TokenKind, ExprError> {
        let start = self.pos;
        self.skip_digits();
        let mut is_float = false;
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            is_float = true;
            self.pos += 1;
            self.skip_digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) && self.exponent_follows() {
            is_float = true;
            self.pos += if matches!(self.peek_at(1), Some(b'+' | b'-')) { 2 } else { 1 };
            self.skip_digits();
        }
        let literal_end = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
            self.pos += 1;
        }
        let text = &self.source[start..self.pos];
        if self.pos != literal_end {
            return Err(self.error(start, format!("invalid number {}", quote(text))));
        }
        if !underscores_between_digits(text) {
            return Err(self.error(start, format!("misplaced `_` in number {}", quote(text))));
        }
        let digits: String = text.chars().filter(|&c| c != '_').collect();
        if is_float { self.float(start, text, &digits) } else { self.integer(start, text, &digits) }
    }

    fn exponent_follows(&self) -> bool {
        let digit_at = if matches!(self.peek_at(1), Some(b'+' | b'-')) { 2 } else { 1 };
        self.peek_at(digit_at).is_some_and(|b| b.is_ascii_digit())
    }

    fn integer(&self, start: usize, text: &str, digits: &str) -> Result<TokenKind, ExprError> {
        match digits.parse::<u64>() {
            Ok(magnitude) => Ok(TokenKind::Int(magnitude)),
            Err(_) => Err(self.error(start, format!("integer {} is out of range for int", quote(text)))),
        }
    }

    fn float(&self, start: usize, text: &str, digits: &str) -> Result<TokenKind, ExprError> {
        match digits.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Float(value)),
            _ => Err(self.error(start, format!("float {} is out of range", quote(text)))),
        }
    }

    /// A string in `quote_byte` quotes; escapes `\\ \' \" \n \t \r`.
    fn string(&mut self, quote_byte: u8) -> Result<TokenKind, ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            let rest = &self.source[self.pos..];
            let Some(character) = rest.chars().next() else {
                return Err(self.error(start, "unterminated string: no closing quote"));
            };
            if character == char::from(quote_byte) {
                self.pos += 1;
                return Ok(TokenKind::Str(text));
            }
            if character == '\\' {
                text.push(self.escape()?);
                continue;
            }
            text.push(character);
            self.pos += character.len_utf8();
        }
    }

    fn escape(&mut self) -> Result<char, ExprError> {
        let start = self.pos;
        let escaped = self.source[start + 1..].chars().next();
        let resolved = match escaped {
            Some('\\') => '\\',
            Some('\'') => '\'',
            Some('"') => '"',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some(other) => {
                let token = format!("\\{other}");
                return Err(self.error(start, format!("unknown escape {} in string", quote(&token))));
            }
            None => return Err(self.error(start, "unterminated string: it ends in `\\`")),
        };
        self.pos += 1 + resolved.len_utf8();
        Ok(resolved)
    }
}

/// Whether each `_` in a number sits between two digits.
fn underscores_between_digits(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().filter(|&(_, &byte)| byte == b'_').all(|(index, _)| {
        let before = index.checked_sub(1).and_then(|i| bytes.get(i));
        let after = bytes.get(index + 1);
        before.is_some_and(u8::is_ascii_digit) && after.is_some_and(u8::is_ascii_digit)
    })
}
