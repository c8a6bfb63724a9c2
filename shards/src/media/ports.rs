//! The RTP port pairs of one shard: an even share of
//! `[media] rtp_port_start..rtp_port_end`, handed out as (RTP even, RTCP odd)
//! pairs drawn at random, so the port of the next call cannot be guessed
//! from the last one's. Released pairs cool down behind the others before
//! they can be drawn again, so a port just closed is not reused at once.

use std::collections::VecDeque;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Free RTP ports (even; RTCP is the next odd port) of one shard.
#[derive(Debug)]
pub struct PortPool {
    /// Drawn from at random.
    free: Vec<u16>,
    /// Released, oldest first; they rejoin `free` as more are released.
    cooling: VecDeque<u16>,
    total: usize,
    rng: ChaCha8Rng,
}

impl PortPool {
    /// Shard `shard` of `shards`'s share of `start..end` (end exclusive);
    /// `seed` drives the draws (from the OS in the product).
    pub fn for_shard(
        start: u16,
        end: u16,
        shard: usize,
        shards: usize,
        seed: [u8; 32],
    ) -> PortPool {
        let first = start.saturating_add(start % 2);
        let pairs = (end.saturating_sub(first) / 2) as usize;
        let shards = shards.max(1);
        let lo = pairs * shard / shards;
        let hi = pairs * (shard + 1) / shards;
        let free: Vec<u16> = (lo..hi).map(|i| first + 2 * i as u16).collect();
        PortPool {
            total: free.len(),
            free,
            cooling: VecDeque::new(),
            rng: ChaCha8Rng::from_seed(seed),
        }
    }

    /// Takes a free pair's RTP port, at random; a cooling one only when no
    /// other is left.
    pub fn take(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return self.cooling.pop_front();
        }
        let i = (self.rng.next_u64() % self.free.len() as u64) as usize;
        Some(self.free.swap_remove(i))
    }

    /// Gives a pair back: it cools while a quarter of the share is released
    /// after it.
    pub fn give_back(&mut self, port: u16) {
        self.cooling.push_back(port);
        while self.cooling.len() > (self.total / 4).max(1) {
            if let Some(p) = self.cooling.pop_front() {
                self.free.push(p);
            }
        }
    }

    pub fn available(&self) -> usize {
        self.free.len() + self.cooling.len()
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn all(p: &mut PortPool) -> Vec<u16> {
        std::iter::from_fn(|| p.take()).collect()
    }

    #[test]
    fn shares_are_even_disjoint_and_cover_the_range() {
        let mut a = PortPool::for_shard(20000, 20010, 0, 2, [1; 32]);
        let mut b = PortPool::for_shard(20000, 20010, 1, 2, [1; 32]);
        assert_eq!(a.total() + b.total(), 5);
        let mut pa = all(&mut a);
        let mut pb = all(&mut b);
        pa.sort();
        pb.sort();
        assert_eq!(pa, vec![20000, 20002]);
        assert_eq!(pb, vec![20004, 20006, 20008]);
    }

    #[test]
    fn odd_start_is_rounded_up_and_released_ports_cool_down() {
        let mut p = PortPool::for_shard(30001, 30010, 0, 1, [2; 32]);
        let first = p.take().unwrap();
        assert!(first % 2 == 0 && (30002..30009).contains(&first));
        p.give_back(first);
        // Three others come before the released one.
        let next: Vec<u16> = (0..3).map(|_| p.take().unwrap()).collect();
        assert!(!next.contains(&first), "{next:?}");
        assert_eq!(p.take(), Some(first));
        assert_eq!(p.take(), None);
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn draws_are_not_in_order_and_differ_by_seed() {
        let mut a = PortPool::for_shard(40000, 42000, 0, 1, [3; 32]);
        let mut b = PortPool::for_shard(40000, 42000, 0, 1, [4; 32]);
        let xs: Vec<u16> = (0..50).map(|_| a.take().unwrap()).collect();
        let ys: Vec<u16> = (0..50).map(|_| b.take().unwrap()).collect();
        assert_ne!(xs, ys);
        let sequential = xs.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(sequential < 5, "{xs:?}");
        assert_eq!(xs.iter().collect::<HashSet<_>>().len(), 50);
    }
}
