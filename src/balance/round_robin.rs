//! Exact rotation: one shared counter, so N×k picks over N accepted members give k each.

use std::sync::atomic::AtomicUsize;

use super::{Candidates, Strategy, first_accepted, turn};

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
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        let start = turn(&self.next, c.retry) % self.n;
        first_accepted(self.n, start, c.accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_picks_over_three_give_three_each_in_order() {
        let rr = RoundRobin::new(3);
        let picks: Vec<_> = (0..9)
            .map(|_| rr.pick(&Candidates::all()).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_members_that_are_not_accepted() {
        let rr = RoundRobin::new(3);
        let not_1 = Candidates {
            accept: &|i| i != 1,
            ..Candidates::all()
        };
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&not_1).unwrap()).collect();
        assert_eq!(picks, [0, 2, 2, 0]);
        let none = Candidates {
            accept: &|_| false,
            ..Candidates::all()
        };
        assert_eq!(rr.pick(&none), None);
        assert_eq!(RoundRobin::new(0).pick(&Candidates::all()), None);
    }

    #[test]
    fn a_retry_continues_the_rotation_without_taking_a_turn() {
        // Member 0 always fails: it comes first for every other request, not for every one.
        let rr = RoundRobin::new(2);
        let mut first_tries = Vec::new();
        for _ in 0..4 {
            let first = rr.pick(&Candidates::all()).unwrap();
            first_tries.push(first);
            if first == 0 {
                let retry = Candidates {
                    accept: &|i| i != 0,
                    retry: true,
                    ..Candidates::all()
                };
                assert_eq!(rr.pick(&retry), Some(1));
            }
        }
        assert_eq!(first_tries, [0, 1, 0, 1]);
    }
}
