//! Fewest in-flight requests wins; ties are broken by a rotating start so equal members share.
//! In-flight counts run from dispatch to the end of the response (the last stream chunk).

use super::{Candidates, Member, Strategy, TieTurns};
use crate::stats::DRAINING;

/// Low bits of a scan key that hold the rotation position: tiers up to 8 M members. The load
/// word above them is below 2^41 (in flight < 2^40, plus the drain bit), so it fits.
const POSITION_BITS: u32 = 23;

#[derive(Debug, Default)]
pub struct LeastConnections {
    next: TieTurns,
}

impl Strategy for LeastConnections {
    fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        let start = self.next.turn(c.retry) % n;
        // Branch-free scan in rotation order (start..n, then 0..start): each member's key packs
        // (load, position) into one u64, refused members sort last, and the minimum wins.
        // Random loads defeat branch prediction; `min` compiles to a conditional move.
        let (tail, head) = (&c.members[start..], &c.members[..start]);
        let mut best = u64::MAX;
        for (part, base) in [(tail, 0), (head, tail.len())] {
            for (chunk_no, chunk) in part.chunks(64).enumerate() {
                let first = base + chunk_no * 64;
                best = best.min(if c.tried.is_empty() {
                    min_key(chunk, first)
                } else {
                    min_key_untried(chunk, first, c.tried)
                });
                // An idle member cannot be beaten.
                if best >> POSITION_BITS == 0 {
                    break;
                }
            }
        }
        if best >= REFUSED << POSITION_BITS {
            return None;
        }
        let k = (best & ((1 << POSITION_BITS) - 1)) as usize;
        Some(if start + k < n {
            start + k
        } else {
            start + k - n
        })
    }
}

/// The load word of a member that may not be chosen: draining, or tried by this request.
const REFUSED: u64 = DRAINING;

#[inline]
fn key(m: &Member, position: usize) -> u64 {
    // A draining member's word is ≥ DRAINING: its key sorts above every admitted one.
    m.live.load_word() << POSITION_BITS | position as u64
}

/// Four independent running minima, so the compare-and-move chain does not serialise the scan.
#[inline]
fn min_key(chunk: &[Member], first: usize) -> u64 {
    let mut best = [u64::MAX; 4];
    let quads = chunk.chunks_exact(4);
    let rest = quads.remainder();
    for (q, four) in quads.enumerate() {
        let at = first + q * 4;
        for lane in 0..4 {
            best[lane] = best[lane].min(key(&four[lane], at + lane));
        }
    }
    let at = first + chunk.len() - rest.len();
    for (k, m) in rest.iter().enumerate() {
        best[0] = best[0].min(key(m, at + k));
    }
    best[0].min(best[1]).min(best[2].min(best[3]))
}

#[inline]
fn min_key_untried(chunk: &[Member], first: usize, tried: &[usize]) -> u64 {
    let mut best = u64::MAX;
    for (k, m) in chunk.iter().enumerate() {
        let mut word = m.live.load_word();
        if tried.contains(&m.instance) {
            word |= REFUSED;
        }
        best = best.min(word << POSITION_BITS | (first + k) as u64);
    }
    best
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
