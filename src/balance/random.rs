//! Weighted random choice among the accepted members (uniform when weights are equal).

use super::{Candidates, Strategy};

#[derive(Debug)]
pub struct Random {
    weights: Vec<u64>,
}

impl Random {
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.iter().map(|&w| u64::from(w.max(1))).collect(),
        }
    }
}

impl Strategy for Random {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let accept = c.accept;
        let total: u64 = (0..self.weights.len())
            .filter(|&i| accept(i))
            .map(|i| self.weights[i])
            .sum();
        if total == 0 {
            return None;
        }
        let mut ticket = fastrand::u64(0..total);
        for (i, &w) in self.weights.iter().enumerate() {
            if !accept(i) {
                continue;
            }
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

    #[test]
    fn shares_follow_weights_within_three_percent() {
        fastrand::seed(7);
        let r = Random::new(&[1, 3]);
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[r.pick(&Candidates::all()).unwrap()] += 1;
        }
        let share = f64::from(counts[1]) / 10_000.0;
        assert!((share - 0.75).abs() < 0.03, "share {share}");
    }

    #[test]
    fn only_accepted_members_are_chosen() {
        let r = Random::new(&[1, 1, 1]);
        let only_2 = Candidates {
            accept: &|i| i == 2,
            ..Candidates::all()
        };
        for _ in 0..100 {
            assert_eq!(r.pick(&only_2), Some(2));
        }
        let none = Candidates {
            accept: &|_| false,
            ..Candidates::all()
        };
        assert_eq!(r.pick(&none), None);
    }
}
