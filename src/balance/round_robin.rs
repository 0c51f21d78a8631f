//! Exact rotation: one shared counter, so N×k picks over N accepted members give k each.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Strategy, first_accepted};

#[derive(Debug)]
pub struct RoundRobin {
    n: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            next: AtomicUsize::new(0),
        }
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, _: &dyn Fn(usize) -> u64, accept: &dyn Fn(usize) -> bool) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        // Relaxed: the counter only has to hand out distinct tickets, not order other memory.
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.n;
        first_accepted(self.n, start, accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_picks_over_three_give_three_each_in_order() {
        let rr = RoundRobin::new(3);
        let picks: Vec<_> = (0..9)
            .map(|_| rr.pick(&|_| 0, &|_| true).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_members_that_are_not_accepted() {
        let rr = RoundRobin::new(3);
        let picks: Vec<_> = (0..4)
            .map(|_| rr.pick(&|_| 0, &|i| i != 1).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 2, 0]);
        assert_eq!(rr.pick(&|_| 0, &|_| false), None);
        assert_eq!(RoundRobin::new(0).pick(&|_| 0, &|_| true), None);
    }
}
