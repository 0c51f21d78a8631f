//! Fewest in-flight requests wins; ties are broken by a rotating start so equal members share.
//! In-flight counts run from dispatch to the end of the response (the last stream chunk).

use std::sync::atomic::AtomicUsize;

use super::{Candidates, Strategy, turn};

#[derive(Debug, Default)]
pub struct LeastConnections {
    next: AtomicUsize,
}

impl Strategy for LeastConnections {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        let start = turn(&self.next, c.retry) % n;
        let mut best: Option<(u64, usize)> = None;
        for i in (start..n).chain(0..start) {
            if !c.accepts(i) {
                continue;
            }
            let load = c.members[i].live.in_flight();
            if best.is_none_or(|(b, _)| load < b) {
                best = Some((load, i));
                if load == 0 {
                    break;
                }
            }
        }
        best.map(|(_, i)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::members;

    fn load(m: &[crate::balance::Member], loads: &[u64]) {
        for (m, &n) in m.iter().zip(loads) {
            for _ in 0..n {
                m.live.acquire();
            }
        }
    }

    #[test]
    fn picks_the_member_with_fewest_open_requests() {
        let m = members(&[1, 1, 1]);
        load(&m, &[5, 2, 7]);
        let lc = LeastConnections::default();
        for _ in 0..5 {
            assert_eq!(lc.pick(&Candidates::new(&m, 0)), Some(1));
        }
        // Member 1 excluded: 0 has fewer than 2.
        let tried = [1];
        let without_1 = Candidates {
            tried: &tried,
            retry: true,
            ..Candidates::new(&m, 0)
        };
        assert_eq!(lc.pick(&without_1), Some(0));
        // Load moves: the pick follows.
        m[1].live.acquire();
        m[1].live.acquire();
        m[1].live.acquire();
        m[1].live.acquire();
        assert_eq!(lc.pick(&Candidates::new(&m, 0)), Some(0));
    }

    #[test]
    fn ties_rotate() {
        let m = members(&[1, 1, 1]);
        load(&m, &[1, 1, 1]);
        let lc = LeastConnections::default();
        let picks: Vec<_> = (0..6)
            .map(|_| lc.pick(&Candidates::new(&m, 0)).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
