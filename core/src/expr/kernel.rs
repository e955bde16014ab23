//! Int kernels: `field op int-literal` arithmetic (`x % 1000`) taken out of the tree, for
//! operators that apply one expression to many rows of ints.
//!
//! An [`IntKernel`] gives exactly what [`super::Expr::eval`] gives on a row whose field is an
//! int (the same result, the same errors); anything else (a float or null field, a row too
//! short) is left to `eval`. Division and remainder by a literal of at least 2 multiply by a
//! precomputed reciprocal instead of dividing (Hacker's Delight, 10-1, for 64 bits); other
//! divisors use the hardware division with its checks.

use super::error::EvalError;
use super::ops;
use super::parser::ArithOp;

/// `field op literal` over an int field (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntKernel {
    position: usize,
    op: ArithOp,
    literal: i64,
    /// For `/` and `%` by a literal ≥ 2: the reciprocal.
    divisor: Option<Divisor>,
}

impl IntKernel {
    pub(super) fn new(op: ArithOp, position: usize, literal: i64) -> IntKernel {
        let divisor = match op {
            ArithOp::Div | ArithOp::Rem if literal >= 2 => Some(Divisor::new(literal)),
            _ => None,
        };
        IntKernel { position, op, literal, divisor }
    }

    /// The field it reads.
    #[inline]
    pub fn position(&self) -> usize {
        self.position
    }

    /// The result for a field holding the int `x`, as `Expr::eval` gives it.
    #[inline]
    pub fn apply(&self, x: i64) -> Result<i64, EvalError> {
        match (self.op, self.divisor) {
            (ArithOp::Rem, Some(divisor)) => Ok(x.wrapping_sub(divisor.quotient(x).wrapping_mul(self.literal))),
            (ArithOp::Div, Some(divisor)) => Ok(divisor.quotient(x)),
            (op, _) => ops::arith_int(op, x, self.literal),
        }
    }

    /// [`IntKernel::apply`] over many ints, into `out` (cleared first); stops at the first
    /// error. The operator is chosen once for the whole run.
    pub fn apply_all(&self, xs: &[i64], out: &mut Vec<i64>) -> Result<(), EvalError> {
        out.clear();
        let literal = self.literal;
        match (self.op, self.divisor) {
            (ArithOp::Rem, Some(divisor)) => {
                out.extend(xs.iter().map(|&x| x.wrapping_sub(divisor.quotient(x).wrapping_mul(literal))));
            }
            (ArithOp::Div, Some(divisor)) => out.extend(xs.iter().map(|&x| divisor.quotient(x))),
            _ => {
                for &x in xs {
                    out.push(self.apply(x)?);
                }
            }
        }
        Ok(())
    }
}

/// Signed division by a constant `d ≥ 2` as a multiplication: `q = (mulhs(n, magic) + n?) >> shift`,
/// rounded toward zero as `/` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Divisor {
    magic: i64,
    shift: u32,
}

impl Divisor {
    /// The magic number and shift of `divisor` (Hacker's Delight, figure 10-1, for 64 bits).
    fn new(divisor: i64) -> Divisor {
        assert!(divisor >= 2, "a divisor of at least 2, not {divisor}");
        const TWO_63: u64 = 1 << 63;
        let absolute = divisor as u64;
        let t = TWO_63; // + the sign bit of the divisor, which is zero.
        let anc = t - 1 - t % absolute;
        let mut p = 63u32;
        let (mut q1, mut r1) = (TWO_63 / anc, TWO_63 - (TWO_63 / anc) * anc);
        let (mut q2, mut r2) = (TWO_63 / absolute, TWO_63 - (TWO_63 / absolute) * absolute);
        loop {
            p += 1;
            (q1, r1) = (q1.wrapping_mul(2), r1.wrapping_mul(2));
            if r1 >= anc {
                (q1, r1) = (q1.wrapping_add(1), r1 - anc);
            }
            (q2, r2) = (q2.wrapping_mul(2), r2.wrapping_mul(2));
            if r2 >= absolute {
                (q2, r2) = (q2.wrapping_add(1), r2 - absolute);
            }
            let delta = absolute - r2;
            if !(q1 < delta || (q1 == delta && r1 == 0)) {
                break;
            }
        }
        Divisor { magic: q2.wrapping_add(1) as i64, shift: p - 64 }
    }

    /// `n / d`, truncated toward zero.
    #[inline(always)]
    fn quotient(self, n: i64) -> i64 {
        let mut q = ((i128::from(self.magic) * i128::from(n)) >> 64) as i64;
        if self.magic < 0 {
            q = q.wrapping_add(n);
        }
        q >>= self.shift;
        q + ((n as u64) >> 63) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn edges() -> Vec<i64> {
        let mut values = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX, i64::MAX - 1];
        for shift in 0..63 {
            let power = 1i64 << shift;
            values.extend([power - 1, power, power + 1, -power - 1, -power, -power + 1]);
        }
        values
    }

    #[test]
    fn reciprocal_division_equals_division_at_the_edges() {
        let mut divisors: Vec<i64> = (2..300).collect();
        divisors.extend(edges().into_iter().filter(|&d| d >= 2));
        divisors.extend([1000, 101, 7, 1_000_000_007, i64::MAX / 3]);
        for &d in &divisors {
            let divisor = Divisor::new(d);
            for &n in &edges() {
                assert_eq!(divisor.quotient(n), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn a_kernel_with_a_zero_or_minus_one_divisor_keeps_the_checked_errors() {
        let zero = IntKernel::new(ArithOp::Rem, 0, 0);
        assert_eq!(zero.apply(5), Err(EvalError::DivisionByZero { op: "%" }));
        let minus_one = IntKernel::new(ArithOp::Div, 0, -1);
        assert_eq!(minus_one.apply(i64::MIN), Err(EvalError::Overflow { op: "/" }));
        assert_eq!(IntKernel::new(ArithOp::Rem, 0, -1).apply(7), Ok(0));
    }

    proptest! {
        #[test]
        fn kernels_equal_checked_arithmetic(n in any::<i64>(), d in any::<i64>(), small in -5000i64..5000) {
            for op in [ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div, ArithOp::Rem] {
                for literal in [d, small, d >> 40] {
                    let kernel = IntKernel::new(op, 0, literal);
                    prop_assert_eq!(kernel.apply(n), ops::arith_int(op, n, literal));
                    let mut out = Vec::new();
                    let all = kernel.apply_all(&[n, small, d], &mut out);
                    let one_by_one: Result<Vec<i64>, EvalError> =
                        [n, small, d].iter().map(|&x| ops::arith_int(op, x, literal)).collect();
                    prop_assert_eq!(all.map(|()| out), one_by_one);
                }
            }
        }
    }
}
