//! An exact sum of doubles, rounded once when read.
//!
//! A float sum kept as an `f64` drifts under retraction: add 1e16 and 1.0, take the 1e16 away,
//! and the running sum says 0 while the rows left sum to 1. Every finite double is an integer
//! multiple of 2^-1074, so a wide enough fixed-point integer holds any sum of them exactly:
//! this one keeps 32-bit limbs (in i64s, so carries can wait) over just the range of bit
//! positions the group's values have touched, and counts infinities and NaNs apart. Reading
//! rounds the exact value to the nearest double, so the sum of the rows a group holds does not
//! depend on the order or the retractions they came in.

use serde::{Deserialize, Serialize};

/// Limb `i` weighs 2^(32 × (lo + i) − 1074).
const LIMB_BITS: u32 = 32;
/// A limb is carried into the next before it can overflow on further additions.
const LIMB_CARRY_AT: i64 = 1 << 62;
/// The exponent of the lowest bit a double can have.
const LOWEST_EXPONENT: i32 = -1074;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactSum {
    lo: i32,
    limbs: Vec<i64>,
    /// Multiplicities of +∞, −∞ and NaN among the values.
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl ExactSum {
    /// Adds `weight` times `value`.
    pub fn add(&mut self, value: f64, weight: i64) {
        if value.is_nan() {
            self.nan += weight;
            return;
        }
        if value.is_infinite() {
            if value > 0.0 {
                self.pos_inf += weight;
            } else {
                self.neg_inf += weight;
            }
            return;
        }
        if value == 0.0 || weight == 0 {
            return;
        }
        let bits = value.to_bits();
        let exponent_bits = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1 << 52) - 1);
        // value = ±mantissa × 2^exponent, exponent ≥ LOWEST_EXPONENT.
        let (mantissa, exponent) = if exponent_bits == 0 {
            (fraction, LOWEST_EXPONENT)
        } else {
            (fraction | (1 << 52), exponent_bits - 1075)
        };
        let position = (exponent - LOWEST_EXPONENT) as u32;
        let limb = (position / LIMB_BITS) as i32;
        let shifted = (mantissa as u128) << (position % LIMB_BITS);
        let signed_weight = if bits >> 63 == 1 { -weight } else { weight };
        for k in 0..3 {
            let part = ((shifted >> (LIMB_BITS * k)) & 0xffff_ffff) as i64;
            if part != 0 {
                self.add_to_limb(limb + k as i32, part as i128 * signed_weight as i128);
            }
        }
    }

    /// Adds `amount` (a multiple of limb `index`'s weight) at limb `index`.
    fn add_to_limb(&mut self, index: i32, amount: i128) {
        self.cover(index);
        let i = (index - self.lo) as usize;
        let sum = self.limbs[i] as i128 + amount;
        if sum.abs() < LIMB_CARRY_AT as i128 {
            self.limbs[i] = sum as i64;
        } else {
            // Keep the low 32 bits here, carry the rest up.
            let low = sum & 0xffff_ffff;
            self.limbs[i] = low as i64;
            self.add_to_limb(index + 1, (sum - low) >> LIMB_BITS);
        }
    }

    /// Grows the limbs to include limb `index`.
    fn cover(&mut self, index: i32) {
        if self.limbs.is_empty() {
            self.lo = index;
            self.limbs.push(0);
            return;
        }
        if index < self.lo {
            let grow = (self.lo - index) as usize;
            self.limbs.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = index;
        }
        let hi = self.lo + self.limbs.len() as i32;
        if index >= hi {
            self.limbs
                .resize(self.limbs.len() + (index - hi + 1) as usize, 0);
        }
    }

    /// The sum, rounded to the nearest double.
    pub fn value(&self) -> f64 {
        if self.nan != 0 || (self.pos_inf != 0 && self.neg_inf != 0) {
            return f64::NAN;
        }
        if self.pos_inf != 0 {
            return if self.pos_inf > 0 {
                f64::INFINITY
            } else {
                f64::NAN
            };
        }
        if self.neg_inf != 0 {
            return if self.neg_inf > 0 {
                f64::NEG_INFINITY
            } else {
                f64::NAN
            };
        }
        // Carry every limb into [0, 2^32), the sign ending up in the top carry.
        let mut digits: Vec<i64> = Vec::with_capacity(self.limbs.len() + 2);
        let mut carry: i128 = 0;
        for &limb in &self.limbs {
            let sum = limb as i128 + carry;
            let low = sum & 0xffff_ffff;
            digits.push(low as i64);
            carry = (sum - low) >> LIMB_BITS;
        }
        let negative = carry < 0;
        while carry != 0 && carry != -1 {
            let low = carry & 0xffff_ffff;
            digits.push(low as i64);
            carry = (carry - low) >> LIMB_BITS;
        }
        if negative {
            // Two's complement over the digits (the top carry is −1): negate to the magnitude.
            let mut borrow = 1i64;
            for d in &mut digits {
                let v = (!*d & 0xffff_ffff) + borrow;
                *d = v & 0xffff_ffff;
                borrow = v >> LIMB_BITS;
            }
        }
        let Some(top) = digits.iter().rposition(|&d| d != 0) else {
            return 0.0;
        };
        // The top three digits (at least 65 significant bits), with a sticky bit for any
        // digit below them, so converting rounds as rounding the exact value would.
        let mut window: u128 = 0;
        for k in 0..3 {
            window <<= LIMB_BITS;
            if let Some(i) = top.checked_sub(k) {
                window |= digits[i] as u128;
            }
        }
        if top >= 3 && digits[..top - 2].iter().any(|&d| d != 0) {
            window |= 1;
        }
        let scale = (self.lo + top as i32 - 2) * LIMB_BITS as i32 + LOWEST_EXPONENT;
        let magnitude = scaled(window as f64, scale);
        if negative { -magnitude } else { magnitude }
    }
}

/// `x × 2^exponent`, in steps that stay within the range of doubles.
fn scaled(mut x: f64, mut exponent: i32) -> f64 {
    while exponent > 1000 {
        x *= 2f64.powi(1000);
        exponent -= 1000;
    }
    while exponent < -1000 {
        x *= 2f64.powi(-1000);
        exponent += 1000;
    }
    x * 2f64.powi(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[(f64, i64)]) -> f64 {
        let mut s = ExactSum::default();
        for &(v, w) in values {
            s.add(v, w);
        }
        s.value()
    }

    #[test]
    fn retractions_leave_the_exact_sum_of_what_remains() {
        assert_eq!(sum(&[(1e16, 1), (1.0, 1), (1e16, -1)]), 1.0);
        assert_eq!(sum(&[(0.1, 1), (0.2, 1), (0.1, -1)]), 0.2);
        assert_eq!(sum(&[(0.1, 1), (0.2, 1)]), 0.1 + 0.2);
        assert_eq!(sum(&[(-2.5, 3), (1.25, 2)]), -5.0);
        assert_eq!(sum(&[(5e-324, 1), (1e300, 1), (1e300, -1)]), 5e-324);
        assert_eq!(sum(&[(1e308, 1), (1e308, 1)]), f64::INFINITY);
        assert_eq!(sum(&[(3.0, 1), (3.0, -1)]), 0.0);
    }

    #[test]
    fn rounds_once_to_nearest() {
        // 1 + 2^-53 + 2^-60 is nearer 1 + 2^-52 than 1; a left-to-right f64 sum says 1.
        let tiny = 2f64.powi(-53);
        assert_eq!(
            sum(&[(1.0, 1), (tiny, 1), (2f64.powi(-60), 1)]),
            1.0 + 2.0 * tiny
        );
        // Exactly halfway rounds to even.
        assert_eq!(sum(&[(1.0, 1), (tiny, 1)]), 1.0);
    }

    #[test]
    fn large_weights_and_many_values_carry() {
        assert_eq!(sum(&[(0.5, i64::MAX / 4), (0.5, -(i64::MAX / 4))]), 0.0);
        let mut s = ExactSum::default();
        for i in 0..100_000 {
            s.add(i as f64 * 0.75, 1);
        }
        assert_eq!(s.value(), 0.75 * (99_999.0 * 100_000.0 / 2.0));
    }

    #[test]
    fn infinities_and_nan_are_counted_apart() {
        assert!(sum(&[(f64::NAN, 1), (1.0, 1)]).is_nan());
        assert_eq!(sum(&[(f64::INFINITY, 1), (1.0, 1)]), f64::INFINITY);
        assert!(sum(&[(f64::INFINITY, 1), (f64::NEG_INFINITY, 1)]).is_nan());
        assert_eq!(sum(&[(f64::NAN, 1), (f64::NAN, -1), (2.0, 1)]), 2.0);
    }
}
