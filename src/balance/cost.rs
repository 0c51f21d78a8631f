//! The cheapest accepted member by configured price (1k input + 1k output tokens); members at
//! the same price take turns exactly (the k-th pick among t tied members goes to tie k mod t).
//! Pair it with health and limits: a cheap instance that fails is refused by eligibility, and
//! the next cheapest takes over.
//!
//! Prices are fixed for a tier's life, so the tier is sorted by price once when it is built; a
//! pick reads only the cheapest run of equal prices that has an accepted member.

use super::{Candidates, Member, Strategy, TieTurns};

#[derive(Debug)]
pub struct Cost {
    next: TieTurns,
    /// Member indices, cheapest first (prices are fixed for a tier's life), in runs of equal
    /// price: a pick scans only the cheapest run with an accepted member, not the tier.
    order: Vec<usize>,
    /// `(start, end)` of each equal-price run in `order`.
    runs: Vec<(usize, usize)>,
}

impl Cost {
    pub fn new(members: &[Member]) -> Self {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| {
            members[a]
                .unit_price()
                .total_cmp(&members[b].unit_price())
                .then(a.cmp(&b))
        });
        let mut runs = Vec::new();
        let mut start = 0;
        for k in 1..=order.len() {
            let ends = k == order.len()
                || members[order[k]].unit_price() != members[order[start]].unit_price();
            if ends {
                runs.push((start, k));
                start = k;
            }
        }
        Self {
            next: TieTurns::default(),
            order,
            runs,
        }
    }
}

impl Strategy for Cost {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        for &(start, end) in &self.runs {
            let run = self.order.get(start..end)?;
            let accepted = run.iter().filter(|&&i| i < c.len() && c.accepts(i)).count();
            if accepted == 0 {
                continue;
            }
            let nth = self.next.turn(c.retry) % accepted;
            return run
                .iter()
                .copied()
                .filter(|&i| i < c.len() && c.accepts(i))
                .nth(nth);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::members;
    use crate::config::Price;

    #[test]
    fn cheapest_wins_and_equal_prices_rotate() {
        let mut m = members(&[1, 1, 1]);
        let prices = [3.0, 1.0, 1.0];
        for (m, p) in m.iter_mut().zip(prices) {
            m.price = Price {
                input_per_1k: p,
                output_per_1k: p,
            };
        }
        let cost = Cost::new(&m);
        let picks: Vec<_> = (0..4)
            .map(|_| cost.pick(&Candidates::new(&m, 0)).unwrap())
            .collect();
        assert_eq!(picks, [1, 2, 1, 2]);
        // The cheap ones tried: the expensive one is next.
        let tried = [1, 2];
        let c = Candidates {
            tried: &tried,
            retry: true,
            ..Candidates::new(&m, 0)
        };
        assert_eq!(cost.pick(&c), Some(0));
    }
}
