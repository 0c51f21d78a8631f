//! Weighted random choice among the accepted members (uniform when weights are equal).
//!
//! Cumulative weights are precomputed, so a pick is one random number and a binary search;
//! only when the drawn member is refused does it fall back to a scan over the accepted ones.

use super::{Candidates, Strategy};

#[derive(Debug)]
pub struct Random {
    /// `cumulative[i]` = sum of weights `0..=i`.
    cumulative: Vec<u64>,
}

impl Random {
    pub fn new(weights: &[u32]) -> Self {
        let mut sum = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                sum += u64::from(w.max(1));
                sum
            })
            .collect();
        Self { cumulative }
    }

    fn weight(&self, i: usize) -> u64 {
        self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] }
    }
}

impl Strategy for Random {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len().min(self.cumulative.len());
        let total = *self.cumulative.get(n.checked_sub(1)?)?;
        let ticket = fastrand::u64(0..total);
        let i = self.cumulative[..n].partition_point(|&cum| cum <= ticket);
        if c.accepts(i) {
            return Some(i);
        }
        let accepted: u64 = (0..n)
            .filter(|&i| c.accepts(i))
            .map(|i| self.weight(i))
            .sum();
        if accepted == 0 {
            return None;
        }
        let mut ticket = fastrand::u64(0..accepted);
        for i in (0..n).filter(|&i| c.accepts(i)) {
            let w = self.weight(i);
            if ticket < w {
                return Some(i);
            }
            ticket -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::members;

    #[test]
    fn shares_follow_weights_within_three_percent() {
        fastrand::seed(7);
        let m = members(&[1, 3]);
        let r = Random::new(&[1, 3]);
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[r.pick(&Candidates::new(&m, 0)).unwrap()] += 1;
        }
        let share = f64::from(counts[1]) / 10_000.0;
        assert!((share - 0.75).abs() < 0.03, "share {share}");
    }

    #[test]
    fn only_accepted_members_are_chosen() {
        let m = members(&[1, 1, 1]);
        let r = Random::new(&[1, 1, 1]);
        let tried = [0, 1];
        let only_2 = Candidates {
            tried: &tried,
            ..Candidates::new(&m, 0)
        };
        for _ in 0..100 {
            assert_eq!(r.pick(&only_2), Some(2));
        }
    }
}
