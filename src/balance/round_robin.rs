//! Exact rotation: N×k picks over N accepted members give k each (across threads, as exact as
//! [`Rounds`] makes it: off by at most one per thread part-way through its block).

use super::{Candidates, Rounds, Strategy, first_accepted};

#[derive(Debug)]
pub struct RoundRobin {
    next: Rounds,
}

impl RoundRobin {
    /// A rotation over `members` members.
    pub fn new(members: usize) -> Self {
        Self {
            next: Rounds::new(members),
        }
    }
}

impl Strategy for RoundRobin {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        if c.is_empty() {
            return None;
        }
        let start = self.next.turn(c.retry) % c.len();
        first_accepted(c, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::members;

    #[test]
    fn nine_picks_over_three_give_three_each_in_order() {
        let m = members(&[1, 1, 1]);
        let rr = RoundRobin::new(m.len());
        let picks: Vec<_> = (0..9)
            .map(|_| rr.pick(&Candidates::new(&m, 0)).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_members_that_are_not_accepted() {
        let m = members(&[1, 1, 1]);
        let rr = RoundRobin::new(m.len());
        let tried = [1];
        let not_1 = Candidates {
            tried: &tried,
            ..Candidates::new(&m, 0)
        };
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&not_1).unwrap()).collect();
        assert_eq!(picks, [0, 2, 2, 0]);
    }

    #[test]
    fn a_retry_continues_the_rotation_without_taking_a_turn() {
        // Member 0 always fails: it comes first for every other request, not for every one.
        let m = members(&[1, 1]);
        let rr = RoundRobin::new(m.len());
        let mut first_tries = Vec::new();
        for _ in 0..4 {
            let first = rr.pick(&Candidates::new(&m, 0)).unwrap();
            first_tries.push(first);
            if first == 0 {
                let tried = [0];
                let retry = Candidates {
                    tried: &tried,
                    retry: true,
                    ..Candidates::new(&m, 0)
                };
                assert_eq!(rr.pick(&retry), Some(1));
            }
        }
        assert_eq!(first_tries, [0, 1, 0, 1]);
    }
}
