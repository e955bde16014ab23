//! Placeholder with the agreed interface; replaced by the expression module.
use crate::row::{Schema, Type, Value};
pub mod aggregate {
    use super::*;
    #[derive(Debug, Clone)]
    pub struct AggregateSpec {
        pub ty: Type,
    }
    pub fn compile_aggregate(_source: &str, _input: &Schema) -> Result<AggregateSpec, ExprError> {
        Ok(AggregateSpec { ty: Type::Any })
    }
}
#[derive(Debug, Clone, thiserror::Error)]
#[error("column {offset}: {message}")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
}
pub fn compile(source: &str, input: &Schema) -> Result<Expr, ExprError> {
    if source.trim().is_empty() {
        return Err(ExprError { offset: 0, message: "empty expression".into() });
    }
    let _ = input;
    Ok(Expr { source: source.to_string() })
}
impl Expr {
    pub fn ty(&self) -> Type {
        Type::Any
    }
    pub fn field(&self) -> Option<usize> {
        None
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn eval(&self, _row: &[Value]) -> Result<Value, ExprError> {
        Ok(Value::Null)
    }
}
