//! Fewest in-flight requests wins; ties are broken by a rotating start so equal members share.

use std::sync::atomic::AtomicUsize;

use super::{Candidates, Strategy, turn};

#[derive(Debug)]
pub struct LeastConnections {
    n: usize,
    next: AtomicUsize,
}

impl LeastConnections {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            next: AtomicUsize::new(0),
        }
    }
}

impl Strategy for LeastConnections {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        let start = turn(&self.next, c.retry) % self.n;
        let mut best: Option<(u64, usize)> = None;
        for k in 0..self.n {
            let i = (start + k) % self.n;
            if !(c.accept)(i) {
                continue;
            }
            let load = (c.in_flight)(i);
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

    #[test]
    fn picks_the_member_with_fewest_open_requests() {
        let lc = LeastConnections::new(3);
        let load = [5u64, 2, 7];
        let loaded = Candidates {
            in_flight: &|i| load[i],
            ..Candidates::all()
        };
        for _ in 0..5 {
            assert_eq!(lc.pick(&loaded), Some(1));
        }
        // Member 1 excluded: 0 has fewer than 2.
        let without_1 = Candidates {
            in_flight: &|i| load[i],
            accept: &|i| i != 1,
            retry: true,
        };
        assert_eq!(lc.pick(&without_1), Some(0));
    }

    #[test]
    fn ties_rotate() {
        let lc = LeastConnections::new(3);
        let busy = Candidates {
            in_flight: &|_| 1,
            ..Candidates::all()
        };
        let picks: Vec<_> = (0..6).map(|_| lc.pick(&busy).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
