//! Tests of the expression language: syntax, types, functions, errors, and properties.

use super::check::Checker;
use super::node::{Node, Scope};
use super::parser::{ArithOp, Ast, AstKind, BinaryOp, CompareOp, UnaryOp};
use super::*;
use crate::row::{Row, Schema, Type, Value};
use proptest::prelude::*;

/// x int, y float, s str, b bool, l list, a any, n int (null in the test row), w str.
fn schema() -> Schema {
    Schema::new([
        ("x", Type::Int),
        ("y", Type::Float),
        ("s", Type::Str),
        ("b", Type::Bool),
        ("l", Type::List),
        ("a", Type::Any),
        ("n", Type::Int),
        ("w", Type::Str),
    ])
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|item| Value::str(item)).collect::<Vec<_>>().into())
}

fn row() -> Row {
    vec![
        Value::Int(7),
        Value::Float(2.5),
        Value::str("Hello World"),
        Value::Bool(true),
        list(&["p", "q", "r"]),
        Value::str("12"),
        Value::Null,
        Value::str("the"),
    ]
}

fn eval(source: &str) -> Value {
    let expr = compile(source, &schema()).unwrap_or_else(|error| panic!("`{source}`: {error}"));
    expr.eval(&row()).unwrap_or_else(|error| panic!("`{source}`: {error}"))
}

fn eval_error(source: &str) -> EvalError {
    let expr = compile(source, &schema()).unwrap_or_else(|error| panic!("`{source}`: {error}"));
    match expr.eval(&row()) {
        Ok(value) => panic!("`{source}` gave {value:?}, expected an error"),
        Err(error) => error,
    }
}

fn compile_error(source: &str) -> ExprError {
    match compile(source, &schema()) {
        Ok(expr) => panic!("`{source}` compiled to {expr:?}, expected an error"),
        Err(error) => error,
    }
}

/// Asserts a compile error at `column` whose message contains `needle`.
fn assert_compile_error(source: &str, column: usize, needle: &str) {
    let error = compile_error(source);
    assert!(error.message.contains(needle), "`{source}`: {:?} lacks {needle:?}", error.message);
    assert_eq!(error.column(), column, "`{source}`: {error}");
}

fn int(value: i64) -> Value {
    Value::Int(value)
}

fn text(value: &str) -> Value {
    Value::str(value)
}

// ---------------------------------------------------------------- precedence

#[test]
fn multiplication_binds_tighter_than_addition() {
    assert_eq!(eval("1 + 2 * 3"), int(7));
    assert_eq!(eval("(1 + 2) * 3"), int(9));
    assert_eq!(eval("2 * 3 % 4"), int(2));
    assert_eq!(eval("1 + 7 % 4"), int(4));
}

#[test]
fn binary_operators_associate_left() {
    assert_eq!(eval("10 - 4 - 3"), int(3));
    assert_eq!(eval("100 / 10 / 5"), int(2));
    assert_eq!(eval("100 % 7 % 3"), int(2));
    assert_eq!(eval("'a' + 'b' + 'c'"), text("abc"));
}

#[test]
fn unary_minus_binds_tighter_than_multiplication() {
    assert_eq!(eval("-2 * 3"), int(-6));
    assert_eq!(eval("-7 % 3"), int(-1));
    assert_eq!(eval("- - 3"), int(3));
    assert_eq!(eval("-x * 2"), int(-14));
}

#[test]
fn logic_precedence_is_or_then_and_then_not_then_comparison() {
    assert_eq!(eval("true or false and false"), Value::Bool(true));
    assert_eq!(eval("not true or true"), Value::Bool(true));
    assert_eq!(eval("not false and false"), Value::Bool(false));
    assert_eq!(eval("not 1 == 2"), Value::Bool(true));
    assert_eq!(eval("! x == 7"), Value::Bool(false));
    assert_eq!(eval("1 + 2 == 3 and 2 < 3 || false"), Value::Bool(true));
    assert_eq!(eval("x > 5 && s != 'x'"), Value::Bool(true));
}

#[test]
fn comparisons_do_not_chain() {
    assert_compile_error("1 < 2 < 3", 7, "comparisons cannot be chained: `<`");
    assert_compile_error("x == 1 == true", 8, "`==` follows another comparison");
}

#[test]
fn indexing_binds_tighter_than_unary_minus() {
    assert_eq!(eval("-int(split('5 6', ' ')[1])"), int(-6));
    // The operand of `-` is the indexed item, not the list.
    assert_compile_error("-split('5 6', ' ')[1]", 1, "`-` needs a number, but `split('5 6', ' ')[1]` is str");
    assert_eq!(eval_error("-split(s, ' ')[1]"), EvalError::Operand { op: "-", found: Type::Str });
}

// ---------------------------------------------------------------- literals

#[test]
fn integer_literals_allow_underscores_between_digits() {
    assert_eq!(eval("1_000_000"), int(1_000_000));
    assert_eq!(eval("0"), int(0));
    assert_eq!(eval("9223372036854775807"), int(i64::MAX));
    assert_eq!(eval("-9223372036854775808"), int(i64::MIN));
    assert_compile_error("1__0", 1, "misplaced `_` in number `1__0`");
    assert_compile_error("x + 10_", 5, "misplaced `_` in number `10_`");
    assert_compile_error("9223372036854775808", 1, "integer `9223372036854775808` is out of range");
    assert_compile_error("99999999999999999999", 1, "out of range for int");
    assert_compile_error("12abc", 1, "invalid number `12abc`");
}

#[test]
fn float_literals_take_a_fraction_or_an_exponent() {
    assert_eq!(eval("1.5"), Value::Float(1.5));
    assert_eq!(eval("1e3"), Value::Float(1000.0));
    assert_eq!(eval("2.5E-3"), Value::Float(0.0025));
    assert_eq!(eval("1e+2"), Value::Float(100.0));
    assert_eq!(eval("-0.5"), Value::Float(-0.5));
    assert_compile_error("1e999", 1, "float `1e999` is out of range");
    assert_compile_error("1.5.2", 1, "invalid number `1.5.2`");
}

#[test]
fn string_literals_take_either_quote_and_resolve_escapes() {
    assert_eq!(eval("'abc'"), text("abc"));
    assert_eq!(eval("\"abc\""), text("abc"));
    assert_eq!(eval(r"'it\'s'"), text("it's"));
    assert_eq!(eval(r#""say \"hi\"""#), text("say \"hi\""));
    assert_eq!(eval(r"'a\\b'"), text("a\\b"));
    assert_eq!(eval(r"'\n\t\r'"), text("\n\t\r"));
    assert_eq!(eval(r#""'""#), text("'"));
    assert_eq!(eval(r#"'"'"#), text("\""));
    assert_eq!(eval("'héllo'"), text("héllo"));
    assert_eq!(eval("''"), text(""));
}

#[test]
fn bad_strings_are_compile_errors_at_the_token() {
    assert_compile_error("x + 'abc", 5, "unterminated string");
    assert_compile_error(r"'a\qb'", 3, r"unknown escape `\q`");
    assert_compile_error(r"'abc\", 5, "unterminated string");
}

#[test]
fn keyword_literals_are_bool_and_null() {
    assert_eq!(eval("true"), Value::Bool(true));
    assert_eq!(eval("false"), Value::Bool(false));
    assert_eq!(eval("null"), Value::Null);
}

// ---------------------------------------------------------------- functions

#[test]
fn case_functions_map_unicode() {
    assert_eq!(eval("lower('HeLLo')"), text("hello"));
    assert_eq!(eval("lower('ÄÖÜ')"), text("äöü"));
    assert_eq!(eval("upper('straße')"), text("STRASSE"));
    assert_eq!(eval("upper(w)"), text("THE"));
    assert_eq!(eval("lower(w)"), text("the"));
}

#[test]
fn trim_strips_whitespace_at_both_ends() {
    assert_eq!(eval("trim('  a b \t')"), text("a b"));
    assert_eq!(eval("trim(w)"), text("the"));
}

#[test]
fn len_counts_characters_and_items() {
    assert_eq!(eval("len('héllo')"), int(5));
    assert_eq!(eval("len('日本語')"), int(3));
    assert_eq!(eval("len('')"), int(0));
    assert_eq!(eval("len(l)"), int(3));
}

#[test]
fn split_on_a_space_drops_empty_pieces_and_other_separators_keep_them() {
    assert_eq!(eval("split('a  b ', ' ')"), list(&["a", "b"]));
    assert_eq!(eval("split('a\tb\nc', ' ')"), list(&["a", "b", "c"]));
    assert_eq!(eval("split('a,,b', ',')"), list(&["a", "", "b"]));
    assert_eq!(eval("split('héj', '')"), list(&["h", "é", "j"]));
    assert_eq!(eval("split(lower(s), ' ')"), list(&["hello", "world"]));
    assert_eq!(eval("split('a::b', '::')"), list(&["a", "b"]));
}

#[test]
fn concat_joins_the_str_forms_of_its_arguments() {
    assert_eq!(eval("concat('a', 1, 2.5, true, null)"), text("a12.5truenull"));
    assert_eq!(eval("concat(s)"), text("Hello World"));
    assert_eq!(eval("concat(w, '-', x)"), text("the-7"));
}

#[test]
fn substr_counts_characters_and_clamps() {
    assert_eq!(eval("substr('héllo wörld', 6)"), text("wörld"));
    assert_eq!(eval("substr('héllo', 1, 3)"), text("éll"));
    assert_eq!(eval("substr('abc', -2)"), text("bc"));
    assert_eq!(eval("substr('abc', 5)"), text(""));
    assert_eq!(eval("substr('abc', 1, 100)"), text("bc"));
    assert_eq!(eval("substr('abc', -10, 2)"), text("ab"));
    assert_eq!(eval("substr('日本語', 2, 1)"), text("語"));
    assert_eq!(eval_error("substr(s, 0, x - 10)"), EvalError::NegativeLength { len: -3 });
}

#[test]
fn contains_finds_substrings_and_list_items() {
    assert_eq!(eval("contains('hello', 'ell')"), Value::Bool(true));
    assert_eq!(eval("contains('hello', 'xyz')"), Value::Bool(false));
    assert_eq!(eval("contains(l, 'q')"), Value::Bool(true));
    assert_eq!(eval("contains(l, 1)"), Value::Bool(false));
    assert_eq!(eval("contains(split('1 2', ' '), '2')"), Value::Bool(true));
}

#[test]
fn starts_with_and_ends_with_test_affixes() {
    assert_eq!(eval("starts_with(s, 'Hell')"), Value::Bool(true));
    assert_eq!(eval("starts_with(s, 'World')"), Value::Bool(false));
    assert_eq!(eval("ends_with(s, 'World')"), Value::Bool(true));
}

#[test]
fn replace_replaces_every_occurrence() {
    assert_eq!(eval("replace('a-b-c', '-', '+')"), text("a+b+c"));
    assert_eq!(eval("replace(s, 'o', '0')"), text("Hell0 W0rld"));
}

#[test]
fn abs_keeps_the_number_type() {
    assert_eq!(eval("abs(-3)"), int(3));
    assert_eq!(eval("abs(-2.5)"), Value::Float(2.5));
    assert_eq!(eval("abs(x)"), int(7));
}

#[test]
fn min_and_max_promote_mixed_numbers_to_float() {
    assert_eq!(eval("min(1, 2)"), int(1));
    assert_eq!(eval("max(1, 2)"), int(2));
    assert_eq!(eval("max(1, 2.5)"), Value::Float(2.5));
    assert_eq!(eval("min(1, 2.0)"), Value::Float(1.0));
    assert_eq!(eval("max('a', 'b')"), text("b"));
    assert_eq!(eval("min(x, y)"), Value::Float(2.5));
}

#[test]
fn int_truncates_floats_and_parses_strings() {
    assert_eq!(eval("int(2.9)"), int(2));
    assert_eq!(eval("int(-2.9)"), int(-2));
    assert_eq!(eval("int(' 42 ')"), int(42));
    assert_eq!(eval("int('-17')"), int(-17));
    assert_eq!(eval("int(true)"), int(1));
    assert_eq!(eval("int(a) + 1"), int(13));
    assert_eq!(eval_error("int(s)"), EvalError::Parse { text: "`Hello World`".into(), target: Type::Int });
    assert_compile_error("int('1.5')", 1, "`int('1.5')` always fails: cannot parse `1.5` as int");
    assert_compile_error("int(1e300)", 1, "has no int value");
}

#[test]
fn float_converts_numbers_and_parses_strings() {
    assert_eq!(eval("float(3)"), Value::Float(3.0));
    assert_eq!(eval("float(' 2.5 ')"), Value::Float(2.5));
    assert_eq!(eval("float(a)"), Value::Float(12.0));
    assert_compile_error("float('nan')", 1, "cannot parse `nan` as float");
}

#[test]
fn str_formats_values_as_the_print_sink_does() {
    assert_eq!(eval("str(1.0)"), text("1.0"));
    assert_eq!(eval("str(x)"), text("7"));
    assert_eq!(eval("str(null)"), text("null"));
    assert_eq!(eval("str(l)"), text("[p, q, r]"));
    assert_eq!(eval("str(s)"), text("Hello World"));
}

#[test]
fn if_evaluates_only_the_branch_taken() {
    assert_eq!(eval("if(x > 5, 'big', 'small')"), text("big"));
    assert_eq!(eval("if(x > 10, 'big', 'small')"), text("small"));
    assert_eq!(eval("if(x > 0, 1, int(s))"), int(1));
    assert_eq!(eval_error("if(n == null, int(s), 1)"), EvalError::parse("Hello World", Type::Int));
}

#[test]
fn coalesce_takes_the_first_non_null() {
    assert_eq!(eval("coalesce(null, n, 3)"), int(3));
    assert_eq!(eval("coalesce(x, 3)"), int(7));
    assert_eq!(eval("coalesce(null)"), Value::Null);
    assert_eq!(eval("coalesce(x, int(s))"), int(7));
    assert_eq!(eval_error("coalesce(n, int(s))"), EvalError::parse("Hello World", Type::Int));
}

#[test]
fn is_null_tells_null_apart() {
    assert_eq!(eval("is_null(n)"), Value::Bool(true));
    assert_eq!(eval("is_null(x)"), Value::Bool(false));
    assert_eq!(eval("n == null"), Value::Bool(true));
    assert_eq!(eval("x != null"), Value::Bool(true));
}

#[test]
fn hash_is_fnv1a_over_a_canonical_encoding() {
    let mut fnv = super::ops::Fnv1a::new();
    fnv.bytes(b"a");
    assert_eq!(fnv.state, 0xaf63_dc4c_8601_ec8c, "the FNV-1a test vector for \"a\"");
    let mut expected = super::ops::Fnv1a::new();
    expected.bytes(&[4, 1, 0, 0, 0, 0, 0, 0, 0, b'a']);
    assert_eq!(eval("hash('a')"), int(expected.state as i64));
    assert_eq!(stable_hash(&Value::str("a")), expected.state);
    assert_ne!(eval("hash(1)"), eval("hash(1.0)"));
    assert_eq!(eval("hash(x)"), eval("hash(7)"));
}

#[test]
fn hash_values_are_pinned_across_builds() {
    // Computed independently (Python) from the documented encoding.
    assert_eq!(stable_hash(&Value::Null), 0xaf63_bd4c_8601_b7df);
    assert_eq!(stable_hash(&Value::Int(42)), 0x21fd_d471_1908_3f4f);
    assert_eq!(stable_hash(&Value::Float(1.0)), 0x7938_4a97_b8fc_a0cb);
    assert_eq!(stable_hash(&Value::str("weir")), 0x205e_6359_79f3_38d0);
    assert_eq!(stable_hash(&list(&["a"])), 0xf826_38f3_e458_1eed);
}

// ---------------------------------------------------------------- arithmetic and comparison

#[test]
fn int_division_truncates_and_remainder_follows_the_dividend() {
    assert_eq!(eval("7 / 2"), int(3));
    assert_eq!(eval("-7 / 2"), int(-3));
    assert_eq!(eval("7 % -3"), int(1));
    assert_eq!(eval("-7 % 3"), int(-1));
    assert_eq!(eval("x / 2"), int(3));
    assert_eq!(eval("7.0 / 2"), Value::Float(3.5));
}

#[test]
fn mixed_int_and_float_arithmetic_gives_float() {
    assert_eq!(eval("x + y"), Value::Float(9.5));
    assert_eq!(eval("x * 1.0"), Value::Float(7.0));
    assert_eq!(compile("x + y", &schema()).map(|expr| expr.ty()), Ok(Type::Float));
}

#[test]
fn numbers_compare_across_int_and_float() {
    assert_eq!(eval("1 == 1.0"), Value::Bool(true));
    assert_eq!(eval("x < y * 10"), Value::Bool(true));
    assert_eq!(eval("'abc' < 'abd'"), Value::Bool(true));
    assert_eq!(eval("false < true"), Value::Bool(true));
    assert_eq!(eval("a == 12"), Value::Bool(false));
    assert_eq!(eval("a == '12'"), Value::Bool(true));
}

#[test]
fn list_index_counts_negative_from_the_end() {
    assert_eq!(eval("l[0]"), text("p"));
    assert_eq!(eval("l[-1]"), text("r"));
    assert_eq!(eval("split(s, ' ')[1]"), text("World"));
    assert_eq!(eval("split(s, ' ')[-2]"), text("Hello"));
}

// ---------------------------------------------------------------- compile errors

#[test]
fn operator_type_errors_quote_both_operands() {
    assert_compile_error("'a' - 1", 5, "cannot apply `-` to str `'a'` and int `1`");
    assert_compile_error("x + s", 3, "cannot apply `+` to int `x` and str `s`");
    assert_compile_error("s == 1", 3, "cannot compare str `s` and int `1` with `==`");
    assert_compile_error("s < x", 3, "cannot compare str `s` and int `x` with `<`");
    assert_compile_error("null + 1", 6, "cannot apply `+` to null `null`");
    assert_compile_error("x and b", 1, "`and` needs bools on both sides, but int `x` is not");
    assert_compile_error("b or 'y'", 6, "`or` needs bools on both sides, but str `'y'` is not");
}

#[test]
fn unary_type_errors_name_the_operand() {
    assert_compile_error("not 5", 1, "`not` needs a bool, but `5` is int");
    assert_compile_error("!s", 1, "`not` needs a bool, but `s` is str");
    assert_compile_error("-'a'", 1, "`-` needs a number, but `'a'` is str");
}

#[test]
fn function_argument_errors_point_at_the_argument() {
    assert_compile_error("lower(3)", 7, "`lower` needs a str as argument 1, but got int `3`");
    assert_compile_error("substr(s, '1')", 11, "`substr` needs an int as argument 2, but got str `'1'`");
    assert_compile_error("if(x, 1, 2)", 4, "`if` needs a bool as argument 1, but got int `x`");
    assert_compile_error("min(s, 1)", 1, "`min` cannot take str `s` and int `1` together");
    assert_compile_error("contains(s, 1)", 1, "`contains` cannot take str `s` and int `1` together");
}

#[test]
fn wrong_arity_states_what_the_function_takes() {
    assert_compile_error("lower(s, s)", 1, "`lower` takes 1 argument, found 2");
    assert_compile_error("x + substr(s)", 5, "`substr` takes 2 or 3 arguments, found 1");
    assert_compile_error("concat()", 1, "`concat` takes 1 or more arguments, found 0");
    assert_compile_error("if(b, 1)", 1, "`if` takes 3 arguments, found 2");
}

#[test]
fn unknown_function_suggests_a_close_name() {
    assert_compile_error("lowr(s)", 1, "unknown function `lowr`; did you mean `lower`?");
    assert_compile_error("x + starts_wth(s, 'a')", 5, "did you mean `starts_with`?");
    let error = compile_error("frobnicate(s)");
    assert!(error.message.contains("the functions are: lower, upper, trim"), "{error}");
    assert_compile_error("sum(x)", 1, "`sum` is a window aggregate");
}

#[test]
fn unknown_field_lists_the_input_fields() {
    let input = Schema::new([("x", Type::Int), ("k", Type::Str)]);
    let error = compile("x + y", &input).err();
    let expected = "unknown field `y`; the input has: x, k";
    assert_eq!(error.as_ref().map(|e| e.message.as_str()), Some(expected));
    assert_eq!(error.map(|e| e.to_string()), Some(format!("column 5: {expected}")));
    let error = compile("wrod", &Schema::new([("word", Type::Str)])).err().map(|e| e.message);
    assert_eq!(error.as_deref(), Some("unknown field `wrod` (did you mean `word`?); the input has: word"));
    let error = compile("x", &Schema::default()).err().map(|e| e.message);
    assert_eq!(error.as_deref(), Some("unknown field `x`; the input has no fields"));
}

#[test]
fn literal_zero_divisor_is_a_compile_error() {
    assert_compile_error("x / 0", 5, "division by zero: the divisor `0` is zero");
    assert_compile_error("x % (1 - 1)", 5, "the divisor `(1 - 1)` is zero");
    assert_compile_error("y / 0.0", 5, "division by zero");
}

#[test]
fn literal_subtrees_that_always_fail_are_compile_errors() {
    assert_compile_error("x + (9223372036854775807 + 1)", 5, "always fails: integer overflow in `+`");
    assert_compile_error("abs(-9223372036854775808)", 1, "integer overflow in `abs`");
    assert_compile_error("split('a', ' ')[3]", 1, "index 3 is out of range for a list of 1 values");
}

#[test]
fn syntax_errors_say_what_was_expected() {
    assert_compile_error("", 1, "empty expression");
    assert_compile_error("   ", 4, "empty expression");
    assert_compile_error("1 +", 4, "expected an expression, found end of expression");
    assert_compile_error("1 2", 3, "unexpected `2` after a complete expression");
    assert_compile_error("(1 + 2", 7, "expected `)` to close `(` at column 1, found end of expression");
    assert_compile_error("lower(s", 8, "expected `)` to close `(` at column 6");
    assert_compile_error("l[0", 4, "expected `]` to close `[` at column 2");
    assert_compile_error("lower(s,)", 9, "expected an expression, found `)`");
    assert_compile_error("x = 1", 3, "unexpected `=`; did you mean `==`?");
    assert_compile_error("b & b", 3, "did you mean `&&`");
    assert_compile_error("x # 1", 3, "unexpected character `#`");
}

#[test]
fn columns_count_characters_not_bytes() {
    let error = compile_error("'é' + é");
    assert_eq!(error.offset, 7);
    assert_eq!(error.column(), 7);
    assert!(error.message.contains("unexpected character `é`"), "{error}");
}

#[test]
fn index_type_errors_are_compile_errors() {
    assert_compile_error("x[0]", 1, "only lists can be indexed, but `x` is int");
    assert_compile_error("l['a']", 3, "a list index must be an int, but `'a'` is str");
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(compile_error(&parens).message.contains("nests deeper than 128 levels"));
    let negations = format!("{}1", "-".repeat(10_000));
    assert!(compile_error(&negations).message.contains("nests deeper"));
    let nots = format!("{}true", "not ".repeat(10_000));
    assert!(compile_error(&nots).message.contains("nests deeper"));
    let chain = vec!["x"; 10_000].join(" + ");
    assert!(compile_error(&chain).message.contains("nests deeper"));
    let shallow = vec!["x"; 100].join(" + ");
    assert_eq!(compile(&shallow, &schema()).map(|expr| expr.eval(&row())), Ok(Ok(int(700))));
}

// ---------------------------------------------------------------- eval errors

/// One int column `x` holding `value`.
fn eval_on_int(source: &str, value: i64) -> Result<Value, EvalError> {
    let input = Schema::new([("x", Type::Int), ("z", Type::Int)]);
    let expr = compile(source, &input).unwrap_or_else(|error| panic!("`{source}`: {error}"));
    expr.eval(&[Value::Int(value), Value::Int(0)])
}

#[test]
fn division_by_a_zero_field_is_an_eval_error() {
    assert_eq!(eval_on_int("x / z", 5), Err(EvalError::DivisionByZero { op: "/" }));
    assert_eq!(eval_on_int("x % z", 5), Err(EvalError::DivisionByZero { op: "%" }));
    assert_eq!(eval_on_int("1.5 / z", 5), Err(EvalError::DivisionByZero { op: "/" }));
}

#[test]
fn int_overflow_is_an_eval_error_not_a_wrap() {
    assert_eq!(eval_on_int("x + 1", i64::MAX), Err(EvalError::Overflow { op: "+" }));
    assert_eq!(eval_on_int("1 + x", i64::MAX), Err(EvalError::Overflow { op: "+" }));
    assert_eq!(eval_on_int("x * x", i64::MAX), Err(EvalError::Overflow { op: "*" }));
    assert_eq!(eval_on_int("x - 1", i64::MIN), Err(EvalError::Overflow { op: "-" }));
    assert_eq!(eval_on_int("-x", i64::MIN), Err(EvalError::Overflow { op: "-" }));
    assert_eq!(eval_on_int("x % -1", i64::MIN), Err(EvalError::Overflow { op: "%" }));
    assert_eq!(eval_on_int("x / -1", i64::MIN), Err(EvalError::Overflow { op: "/" }));
    assert_eq!(eval_on_int("abs(x)", i64::MIN), Err(EvalError::Overflow { op: "abs" }));
}

#[test]
fn index_out_of_range_is_an_eval_error() {
    assert_eq!(eval_error("split(s, ' ')[2]"), EvalError::IndexOutOfRange { index: 2, len: 2 });
    assert_eq!(eval_error("l[-4]"), EvalError::IndexOutOfRange { index: -4, len: 3 });
    assert_eq!(eval_error("l[x]"), EvalError::IndexOutOfRange { index: 7, len: 3 });
}

#[test]
fn null_in_arithmetic_is_an_eval_error() {
    let expected = EvalError::Operands { op: "+", left: Type::Null, right: Type::Int };
    assert_eq!(eval_error("n + 1"), expected);
    assert_eq!(eval_error("lower(a + 1)"), EvalError::Operands { op: "+", left: Type::Str, right: Type::Int });
    assert_eq!(eval_error("n < 1"), EvalError::Operands { op: "<", left: Type::Null, right: Type::Int });
}

#[test]
fn eval_bool_refuses_null_and_non_bools() {
    let input = schema();
    let condition = |source: &str| compile(source, &input).map(|expr| expr.eval_bool(&row()));
    assert_eq!(condition("x > 5"), Ok(Ok(true)));
    assert_eq!(condition("coalesce(n, null) == 1"), Ok(Ok(false)));
    assert_eq!(condition("a"), Ok(Err(EvalError::NotBool { found: Type::Str })));
    assert_eq!(condition("if(b, null, true)"), Ok(Err(EvalError::NotBool { found: Type::Null })));
    assert_eq!(condition("x"), Ok(Err(EvalError::NotBool { found: Type::Int })));
}

#[test]
fn short_row_is_an_eval_error_not_a_panic() {
    let expr = compile("w", &schema());
    assert_eq!(expr.map(|expr| expr.eval(&[])), Ok(Err(EvalError::RowTooShort { position: 7, len: 0 })));
}

// ---------------------------------------------------------------- the Expr API

#[test]
fn field_is_some_only_for_a_lone_field_reference() {
    let field = |source: &str| compile(source, &schema()).map(|expr| expr.field());
    assert_eq!(field("s"), Ok(Some(2)));
    assert_eq!(field("(s)"), Ok(Some(2)));
    assert_eq!(field("x + 1"), Ok(None));
    assert_eq!(field("1"), Ok(None));
}

#[test]
fn fields_used_are_sorted_and_unique() {
    let used = compile("w + str(x) + str(x % 3) + if(b, s, w)", &schema()).map(|expr| expr.fields_used());
    assert_eq!(used, Ok(vec![0, 2, 3, 7]));
    assert_eq!(compile("1 + 2", &schema()).map(|expr| expr.fields_used()), Ok(vec![]));
}

#[test]
fn static_types_follow_the_operands() {
    let ty = |source: &str| compile(source, &schema()).map(|expr| expr.ty());
    assert_eq!(ty("x % 1000"), Ok(Type::Int));
    assert_eq!(ty("x / 2.0"), Ok(Type::Float));
    assert_eq!(ty("a + 1"), Ok(Type::Any));
    assert_eq!(ty("a + 'x'"), Ok(Type::Str));
    assert_eq!(ty("if(b, 1, null)"), Ok(Type::Int));
    assert_eq!(ty("if(b, 1, 'a')"), Ok(Type::Any));
    assert_eq!(ty("split(s, ' ')"), Ok(Type::List));
    assert_eq!(ty("l[0]"), Ok(Type::Any));
    assert_eq!(ty("x > 1 and b"), Ok(Type::Bool));
}

#[test]
fn literal_only_subtrees_are_folded() {
    let expr = compile("1 + 2 * 3", &schema());
    assert_eq!(expr.as_ref().map(|expr| expr.constant().cloned()), Ok(Some(int(7))));
    let expr = compile("lower('AB') + 'c'", &schema());
    assert_eq!(expr.as_ref().map(|expr| expr.constant().cloned()), Ok(Some(text("abc"))));
    let expr = compile("if(true, x, 1 / 0.5)", &schema());
    assert_eq!(expr.map(|expr| expr.field()), Ok(Some(0)));
    let expr = compile("false and b", &schema());
    assert_eq!(expr.map(|expr| expr.constant().cloned()), Ok(Some(Value::Bool(false))));
}

#[test]
fn field_op_int_literal_takes_the_fast_path_with_the_same_results() {
    let input = Schema::new([("x", Type::Int)]);
    for source in ["x % 1000", "x + 3", "x > 10", "10 < x", "x == -3"] {
        let expr = compile(source, &input).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            matches!(expr.compiled.root, Node::FieldArithInt { .. } | Node::FieldCompareInt { .. }),
            "`{source}` compiled to {:?}",
            expr.compiled.root
        );
        let general = general_form(&expr.compiled.root);
        for x in [-2001, -3, 0, 3, 10, 11, 999, 1000, 123_456] {
            let row = [Value::Int(x)];
            let general_value =
                general.eval(&Scope { row: &row, acc: None }).map(|value| value.into_owned()).map_err(|fault| *fault);
            assert_eq!(expr.eval(&row), general_value, "`{source}` at x = {x}");
        }
    }
}

/// The tree the fast path replaces.
fn general_form(node: &Node) -> Node {
    match node {
        Node::FieldArithInt { op, position, literal } => {
            Node::Arith(*op, Box::new([Node::Field(*position), Node::Const(Value::Int(*literal))]))
        }
        Node::FieldCompareInt { op, position, literal } => {
            Node::Compare(*op, Box::new([Node::Field(*position), Node::Const(Value::Int(*literal))]))
        }
        other => other.clone(),
    }
}

#[test]
fn expr_serializes_as_source_and_recompiles() {
    let expr = compile("lower(s) != 'the' and len(w) > 2", &schema()).unwrap_or_else(|error| panic!("{error}"));
    let json = serde_json::to_string(&expr).unwrap_or_else(|error| panic!("{error}"));
    assert!(json.contains("lower(s) != 'the' and len(w) > 2"), "{json}");
    let back: Expr = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(back, expr);
    assert_eq!(back.eval(&row()), expr.eval(&row()));
    let broken = json.replace("len(w)", "len(q)");
    let refused = serde_json::from_str::<Expr>(&broken).map_err(|error| error.to_string());
    assert!(refused.is_err_and(|message| message.contains("unknown field `q`")));
}

#[test]
fn expr_is_clone_debug_send_sync() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync>() {}
    assert_traits::<Expr>();
    assert_traits::<AggregateSpec>();
    assert_traits::<Accumulator>();
    let expr = compile("x % 1000", &schema()).map(|expr| format!("{expr:?}"));
    assert_eq!(expr.as_deref(), Ok("Expr { source: \"x % 1000\", ty: Int }"));
}

// ---------------------------------------------------------------- properties

/// Fragments that random sources are assembled from, to reach past the lexer.
const FRAGMENTS: [&str; 40] = [
    "x",
    "y",
    "s",
    "b",
    "l",
    "a",
    "n",
    "acc",
    "(",
    ")",
    "[",
    "]",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "<",
    ">=",
    "!",
    "and",
    "or",
    "not",
    "0",
    "1",
    "-1",
    "2.5",
    "'a'",
    "' '",
    "null",
    "true",
    "lower",
    "split",
    "substr",
    "if",
    "len",
    "coalesce",
    "9223372036854775807",
];

proptest! {
    #[test]
    fn compile_never_panics_on_random_ascii(source in "[ -~]{0,48}") {
        if let Ok(expr) = compile(&source, &schema()) {
            let _ = expr.eval(&row());
        }
    }

    #[test]
    fn compile_and_eval_never_panic_on_random_token_soup(
        fragments in proptest::collection::vec(proptest::sample::select(FRAGMENTS.as_slice()), 0..24)
    ) {
        let source = fragments.join(" ");
        if let Ok(expr) = compile(&source, &schema()) {
            let _ = expr.eval(&row());
            let _ = expr.eval_bool(&row());
            let _ = expr.eval(&[]);
        }
    }

    #[test]
    fn remainder_and_division_match_rust_checked_ops(a in any::<i64>(), b in any::<i64>()) {
        prop_assume!(b != 0);
        let input = Schema::new([("a", Type::Int), ("b", Type::Int)]);
        let row = [Value::Int(a), Value::Int(b)];
        let expected_rem = a.checked_rem(b).map(Value::Int);
        let expected_div = a.checked_div(b).map(Value::Int);
        for source in ["a % b".to_string(), format!("a % {b}"), format!("{a} % b")] {
            let got = compile(&source, &input).ok().and_then(|expr| expr.eval(&row).ok());
            prop_assert_eq!(&got, &expected_rem, "{}", source);
        }
        let literal = compile(&format!("{a} % {b}"), &input).ok().and_then(|expr| expr.constant().cloned());
        prop_assert_eq!(literal, expected_rem);
        let got = compile(&format!("a / {b}"), &input).ok().and_then(|expr| expr.eval(&row).ok());
        prop_assert_eq!(got, expected_div);
    }

    #[test]
    fn printed_ast_compiles_back_to_the_same_value(
        (ast, row) in (arb_ast(), arb_row())
    ) {
        let input = round_trip_schema();
        let direct = outcome_of_ast(&ast, &input, &row);
        let printed = print(&ast, LEVEL_OR);
        let reparsed = match compile(&printed, &input) {
            Ok(expr) => expr.eval(&row).map_err(|_| "eval"),
            Err(_) => Err("compile"),
        };
        prop_assert_eq!(direct, reparsed, "printed as {}", printed);
    }
}

// ---------------------------------------------------------------- AST generation and printing

fn round_trip_schema() -> Schema {
    Schema::new([("x", Type::Int), ("y", Type::Float), ("s", Type::Str), ("b", Type::Bool)])
}

fn arb_row() -> impl Strategy<Value = Row> {
    (any::<i64>(), -1e6..1e6f64, "[a-zA-Z é]{0,6}", any::<bool>())
        .prop_map(|(x, y, s, b)| vec![Value::Int(x), Value::Float(y), Value::str(&s), Value::Bool(b)])
}

fn outcome_of_ast(ast: &Ast, input: &Schema, row: &[Value]) -> Result<Value, &'static str> {
    let checked = Checker { source: "", input, acc: None }.check(ast).map_err(|_| "compile")?;
    checked.node.eval(&Scope { row, acc: None }).map(|value| value.into_owned()).map_err(|_| "eval")
}

fn ast(kind: AstKind) -> Ast {
    let depth = 1 + kind.children().iter().map(|child| child.depth).max().unwrap_or(0);
    Ast { kind, start: 0, end: 0, depth }
}

fn leaf(value: Value) -> Ast {
    ast(AstKind::Literal(value))
}

fn name(field: &str) -> Ast {
    ast(AstKind::Name(field.to_string()))
}

fn binary(op: BinaryOp, left: Ast, right: Ast) -> Ast {
    ast(AstKind::Binary { op, op_offset: 0, left: Box::new(left), right: Box::new(right) })
}

fn unary(op: UnaryOp, operand: Ast) -> Ast {
    ast(AstKind::Unary(op, Box::new(operand)))
}

fn call(function: &str, args: Vec<Ast>) -> Ast {
    ast(AstKind::Call { name: function.to_string(), name_offset: 0, args })
}

/// Generators of well-typed trees, one per result type.
#[derive(Clone)]
struct Typed {
    int: BoxedStrategy<Ast>,
    float: BoxedStrategy<Ast>,
    string: BoxedStrategy<Ast>,
    boolean: BoxedStrategy<Ast>,
}

fn leaves() -> Typed {
    Typed {
        int: prop_oneof![
            any::<i64>().prop_map(|v| leaf(Value::Int(v))),
            (-5..5i64).prop_map(|v| leaf(Value::Int(v))),
            Just(name("x"))
        ]
        .boxed(),
        float: prop_oneof![
            (-1e9..1e9f64).prop_map(|v| leaf(Value::Float(v))),
            Just(leaf(Value::Float(-0.0))),
            Just(name("y"))
        ]
        .boxed(),
        string: prop_oneof!["[a-zA-Z '\"\\\\\n\té]{0,6}".prop_map(|v| leaf(Value::str(&v))), Just(name("s"))].boxed(),
        boolean: prop_oneof![any::<bool>().prop_map(|v| leaf(Value::Bool(v))), Just(name("b"))].boxed(),
    }
}

fn arith_op() -> impl Strategy<Value = BinaryOp> {
    proptest::sample::select(vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div, ArithOp::Rem])
        .prop_map(BinaryOp::Arith)
}

fn compare_op() -> impl Strategy<Value = BinaryOp> {
    use CompareOp::*;
    proptest::sample::select(vec![Eq, Ne, Lt, Le, Gt, Ge]).prop_map(BinaryOp::Compare)
}

/// One level deeper: each type's trees combine trees of the level below.
fn deeper(below: &Typed) -> Typed {
    let t = below.clone();
    let int = prop_oneof![
        t.int.clone(),
        (arith_op(), t.int.clone(), t.int.clone()).prop_map(|(op, l, r)| binary(op, l, r)),
        t.int.clone().prop_map(|e| unary(UnaryOp::Neg, e)),
        t.string.clone().prop_map(|e| call("len", vec![e])),
        t.int.clone().prop_map(|e| call("abs", vec![e])),
        (t.int.clone(), t.int.clone()).prop_map(|(a, b)| call("max", vec![a, b])),
        t.float.clone().prop_map(|e| call("int", vec![e])),
        t.string.clone().prop_map(|e| call("hash", vec![e])),
        (t.boolean.clone(), t.int.clone(), t.int.clone()).prop_map(|(c, a, b)| call("if", vec![c, a, b])),
    ];
    let float = prop_oneof![
        t.float.clone(),
        (arith_op(), t.float.clone(), t.int.clone()).prop_map(|(op, l, r)| binary(op, l, r)),
        (arith_op(), t.float.clone(), t.float.clone()).prop_map(|(op, l, r)| binary(op, l, r)),
        t.float.clone().prop_map(|e| unary(UnaryOp::Neg, e)),
        t.int.clone().prop_map(|e| call("float", vec![e])),
        (t.float.clone(), t.int.clone()).prop_map(|(a, b)| call("min", vec![a, b])),
    ];
    Typed { int: int.boxed(), float: float.boxed(), string: deeper_string(&t), boolean: deeper_bool(&t) }
}

fn deeper_string(t: &Typed) -> BoxedStrategy<Ast> {
    let add = BinaryOp::Arith(ArithOp::Add);
    prop_oneof![
        t.string.clone(),
        (t.string.clone(), t.string.clone()).prop_map(move |(l, r)| binary(add, l, r)),
        t.string.clone().prop_map(|e| call("lower", vec![e])),
        t.string.clone().prop_map(|e| call("trim", vec![e])),
        (t.string.clone(), t.int.clone()).prop_map(|(a, b)| call("concat", vec![a, b])),
        (t.string.clone(), t.int.clone(), t.int.clone()).prop_map(|(a, b, c)| call("substr", vec![a, b, c])),
        (t.string.clone(), t.string.clone(), t.string.clone()).prop_map(|(a, b, c)| call("replace", vec![a, b, c])),
        t.float.clone().prop_map(|e| call("str", vec![e])),
        (t.boolean.clone(), t.string.clone(), t.string.clone()).prop_map(|(c, a, b)| call("if", vec![c, a, b])),
    ]
    .boxed()
}

fn deeper_bool(t: &Typed) -> BoxedStrategy<Ast> {
    prop_oneof![
        t.boolean.clone(),
        (compare_op(), t.int.clone(), t.int.clone()).prop_map(|(op, l, r)| binary(op, l, r)),
        (compare_op(), t.float.clone(), t.int.clone()).prop_map(|(op, l, r)| binary(op, l, r)),
        (compare_op(), t.string.clone(), t.string.clone()).prop_map(|(op, l, r)| binary(op, l, r)),
        (t.boolean.clone(), t.boolean.clone()).prop_map(|(l, r)| binary(BinaryOp::And, l, r)),
        (t.boolean.clone(), t.boolean.clone()).prop_map(|(l, r)| binary(BinaryOp::Or, l, r)),
        t.boolean.clone().prop_map(|e| unary(UnaryOp::Not, e)),
        (t.string.clone(), t.string.clone()).prop_map(|(a, b)| call("contains", vec![a, b])),
        t.int.clone().prop_map(|e| call("is_null", vec![e])),
    ]
    .boxed()
}

fn arb_ast() -> BoxedStrategy<Ast> {
    let mut typed = leaves();
    for _ in 0..4 {
        typed = deeper(&typed);
    }
    prop_oneof![typed.int, typed.float, typed.string, typed.boolean].boxed()
}

const LEVEL_OR: u8 = 1;
const LEVEL_AND: u8 = 2;
const LEVEL_NOT: u8 = 3;
const LEVEL_COMPARE: u8 = 4;
const LEVEL_ADD: u8 = 5;
const LEVEL_MUL: u8 = 6;
const LEVEL_UNARY: u8 = 7;
const LEVEL_ATOM: u8 = 8;

/// Source for `ast` that parses back to it, parenthesized only where precedence needs it.
fn print(ast: &Ast, level_min: u8) -> String {
    let (text, level) = print_with_level(ast);
    if level < level_min { format!("({text})") } else { text }
}

fn print_with_level(ast: &Ast) -> (String, u8) {
    match &ast.kind {
        AstKind::Literal(value) => print_literal(value),
        AstKind::Name(name) => (name.clone(), LEVEL_ATOM),
        AstKind::Unary(UnaryOp::Neg, operand) => (format!("-{}", print(operand, LEVEL_UNARY)), LEVEL_UNARY),
        AstKind::Unary(UnaryOp::Not, operand) => (format!("not {}", print(operand, LEVEL_NOT)), LEVEL_NOT),
        AstKind::Binary { op, left, right, .. } => {
            let level = match op {
                BinaryOp::Or => LEVEL_OR,
                BinaryOp::And => LEVEL_AND,
                BinaryOp::Compare(_) => LEVEL_COMPARE,
                BinaryOp::Arith(ArithOp::Add | ArithOp::Sub) => LEVEL_ADD,
                BinaryOp::Arith(_) => LEVEL_MUL,
            };
            let left_min = if matches!(op, BinaryOp::Compare(_)) { level + 1 } else { level };
            let text = format!("{} {} {}", print(left, left_min), op.symbol(), print(right, level + 1));
            (text, level)
        }
        AstKind::Index(list, index) => (format!("{}[{}]", print(list, LEVEL_ATOM), print(index, LEVEL_OR)), LEVEL_ATOM),
        AstKind::Call { name, args, .. } => {
            let args: Vec<String> = args.iter().map(|arg| print(arg, LEVEL_OR)).collect();
            (format!("{name}({})", args.join(", ")), LEVEL_ATOM)
        }
    }
}

fn print_literal(value: &Value) -> (String, u8) {
    match value {
        Value::Int(v) if *v < 0 => (v.to_string(), LEVEL_UNARY),
        Value::Float(v) if v.is_sign_negative() => (format!("{v:?}"), LEVEL_UNARY),
        Value::Float(v) => (format!("{v:?}"), LEVEL_ATOM),
        Value::Str(text) => {
            let escaped = text.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n").replace('\t', "\\t");
            (format!("'{escaped}'"), LEVEL_ATOM)
        }
        other => (other.to_string(), LEVEL_ATOM),
    }
}

#[test]
fn printer_parenthesizes_by_precedence() {
    let sum = binary(BinaryOp::Arith(ArithOp::Add), name("x"), leaf(Value::Int(1)));
    let product = binary(BinaryOp::Arith(ArithOp::Mul), sum.clone(), name("x"));
    assert_eq!(print(&product, LEVEL_OR), "(x + 1) * x");
    let nested = binary(BinaryOp::Arith(ArithOp::Sub), name("x"), sum);
    assert_eq!(print(&nested, LEVEL_OR), "x - (x + 1)");
    assert_eq!(print(&unary(UnaryOp::Neg, leaf(Value::Int(-5))), LEVEL_OR), "--5");
}
