//! Fewest in-flight requests wins; ties are broken by a rotating start so equal members share.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Strategy;

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
    fn pick(
        &self,
        in_flight: &dyn Fn(usize) -> u64,
        accept: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.n;
        let mut best: Option<(u64, usize)> = None;
        for k in 0..self.n {
            let i = (start + k) % self.n;
            if !accept(i) {
                continue;
            }
            let load = in_flight(i);
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
        for _ in 0..5 {
            assert_eq!(lc.pick(&|i| load[i], &|_| true), Some(1));
        }
        // Member 1 excluded: 0 has fewer than 2.
        assert_eq!(lc.pick(&|i| load[i], &|i| i != 1), Some(0));
    }

    #[test]
    fn ties_rotate() {
        let lc = LeastConnections::new(3);
        let picks: Vec<_> = (0..6)
            .map(|_| lc.pick(&|_| 1, &|_| true).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
