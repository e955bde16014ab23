//! Nanoseconds per evaluation of `x % 1000` through the compiled expression (the `field op
//! literal` fast path) against hand-written Rust (the floor: one checked 64-bit remainder), and
//! of a typical string filter. It lives outside `core/` because it reads a clock. Run with:
//! `cargo test -p weir-tests --release --test expr_bench -- --ignored --nocapture`

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;
use weir_core::expr::compile;
use weir_core::row::{Row, Schema, Type, Value};

const ROUNDS: usize = 20_000;

fn measure(label: &str, rows: &[Row], eval: &dyn Fn(&[Value]) -> bool) {
    let started = Instant::now();
    let mut hits = 0usize;
    for _ in 0..ROUNDS {
        for row in rows {
            hits += usize::from(eval(black_box(row)));
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / (ROUNDS * rows.len()) as f64;
    println!("{label:<44} {ns:6.2} ns/eval ({hits} hits)");
}

#[test]
#[ignore = "micro-benchmark; run in release with --ignored --nocapture"]
fn bench_field_rem_literal_ns_per_eval() {
    let input = Schema::new([("x", Type::Int), ("word", Type::Str)]);
    let rows: Vec<Row> = (0..1024i64).map(|i| vec![Value::Int(i * 7919 - 4_000_000), Value::str("hello")]).collect();
    let divisor = black_box(1000i64);
    measure(
        "x % 1000 (hand-written Rust)",
        &rows,
        &|row| matches!(&row[0], Value::Int(x) if x.checked_rem(divisor).is_some_and(|v| v > 500)),
    );
    let fast = compile("x % 1000", &input).unwrap_or_else(|error| panic!("{error}"));
    measure("x % 1000 (compiled)", &rows, &|row| matches!(fast.eval(row), Ok(Value::Int(v)) if v > 500));
    let filter = compile("lower(word) != 'the' and len(word) > 2", &input).unwrap_or_else(|error| panic!("{error}"));
    measure("lower(word) != 'the' and len(word) > 2", &rows, &|row| filter.eval_bool(row).unwrap_or(false));
}
