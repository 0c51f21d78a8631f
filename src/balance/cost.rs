//! The cheapest accepted member by configured price (1k input + 1k output tokens); members at
//! the same price take turns exactly (the k-th pick among t tied members goes to tie k mod t). Pair it with health and limits: a cheap instance that
//! fails is refused by eligibility, and the next cheapest takes over.

use super::{Candidates, Strategy, TieTurns};

#[derive(Debug, Default)]
pub struct Cost {
    next: TieTurns,
}

impl Strategy for Cost {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        let mut cheapest = f64::INFINITY;
        let mut ties = 0;
        for i in 0..n {
            if !c.accepts(i) {
                continue;
            }
            let price = c.members[i].unit_price();
            if price < cheapest {
                (cheapest, ties) = (price, 1);
            } else if price == cheapest {
                ties += 1;
            }
        }
        if ties == 0 {
            return None;
        }
        let nth = self.next.turn(c.retry) % ties;
        (0..n)
            .filter(|&i| c.accepts(i) && c.members[i].unit_price() == cheapest)
            .nth(nth)
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
        let cost = Cost::default();
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
