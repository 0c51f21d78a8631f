//! Smooth weighted round robin (nginx's algorithm), precomputed.
//!
//! nginx keeps a mutable `current_weight` per member and walks them under a lock. The sequence
//! it produces is periodic with period `sum(weights) / gcd`, so we compute one period once and
//! hand out positions with [`Rounds`]: the same exact, interleaved order, lock-free and without
//! a shared write per pick.
//! Periods longer than [`MAX_PERIOD`] are scaled down proportionally (documented approximation:
//! every member keeps at least one slot, shares stay within 1/65,536 of exact).

use super::{Candidates, Rounds, Strategy, first_accepted};

/// Longest precomputed period; 65,536 entries of u32 is 256 KiB per weighted tier.
pub const MAX_PERIOD: u64 = 1 << 16;

#[derive(Debug)]
pub struct Weighted {
    sequence: Vec<u32>,
    next: Rounds,
}

impl Weighted {
    pub fn new(weights: &[u32]) -> Self {
        let sequence = smooth_sequence(&reduce(weights));
        Self {
            next: Rounds::new(sequence.len()),
            sequence,
        }
    }
}

impl Strategy for Weighted {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let len = self.sequence.len();
        if len == 0 || c.is_empty() {
            return None;
        }
        let start = self.next.turn(c.retry);
        // Usually the first slot is accepted. When members are refused, walk on, but at most
        // one period: past that a plain scan finds whoever is left.
        for k in 0..len.min(4 * c.len()) {
            let i = self.sequence[(start + k) % len] as usize;
            if i < c.len() && c.accepts(i) {
                return Some(i);
            }
        }
        first_accepted(c, 0)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Divide by the common divisor; scale down if the period would still exceed `MAX_PERIOD`.
fn reduce(weights: &[u32]) -> Vec<u64> {
    let w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
    let g = w.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = w.into_iter().map(|x| x / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_PERIOD {
        w = w
            .into_iter()
            .map(|x| (x * MAX_PERIOD / total).max(1))
            .collect();
    }
    w
}

/// One period of nginx's smooth weighted round robin.
fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::members;

    #[test]
    fn weights_1_2_3_over_6_picks_are_exact_and_interleaved() {
        let m = members(&[1, 2, 3]);
        let w = Weighted::new(&[1, 2, 3]);
        let picks: Vec<_> = (0..6)
            .map(|_| w.pick(&Candidates::new(&m, 0)).unwrap())
            .collect();
        // nginx's order for {a:1, b:2, c:3}: c b a c b c — never three in a row.
        assert_eq!(picks, [2, 1, 0, 2, 1, 2]);
    }

    #[test]
    fn common_divisors_and_huge_weights_keep_the_ratio() {
        let w = Weighted::new(&[100, 200]);
        assert_eq!(w.sequence.len(), 3);
        let big = Weighted::new(&[u32::MAX, u32::MAX / 2]);
        assert!(big.sequence.len() as u64 <= MAX_PERIOD + 2);
        let zeros = big.sequence.iter().filter(|&&i| i == 0).count() as f64;
        assert!((zeros / big.sequence.len() as f64 - 2.0 / 3.0).abs() < 0.01);
    }

    #[test]
    fn excluded_members_are_skipped() {
        let m = members(&[1, 2, 3]);
        let w = Weighted::new(&[1, 2, 3]);
        let tried = [2];
        let not_2 = Candidates {
            tried: &tried,
            ..Candidates::new(&m, 0)
        };
        let picks: Vec<_> = (0..12).map(|_| w.pick(&not_2).unwrap()).collect();
        assert!(!picks.contains(&2));
        assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
    }
}
