//! The RTP port pairs of one shard: an even share of
//! `[media] rtp_port_start..rtp_port_end`, handed out as (RTP even, RTCP odd)
//! pairs. Released pairs go to the back of the queue, so a port just closed
//! is not reused at once.

use std::collections::VecDeque;

/// Free RTP ports (even; RTCP is the next odd port) of one shard.
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
    total: usize,
}

impl PortPool {
    /// Shard `shard` of `shards`'s share of `start..end` (end exclusive).
    pub fn for_shard(start: u16, end: u16, shard: usize, shards: usize) -> PortPool {
        let first = start.saturating_add(start % 2);
        let pairs = (end.saturating_sub(first) / 2) as usize;
        let shards = shards.max(1);
        let lo = pairs * shard / shards;
        let hi = pairs * (shard + 1) / shards;
        let free: VecDeque<u16> = (lo..hi).map(|i| first + 2 * i as u16).collect();
        PortPool {
            total: free.len(),
            free,
        }
    }

    /// Takes the next free pair's RTP port.
    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    /// Gives a pair back (to the end of the queue).
    pub fn give_back(&mut self, port: u16) {
        self.free.push_back(port);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_even_disjoint_and_cover_the_range() {
        let a = PortPool::for_shard(20000, 20010, 0, 2);
        let b = PortPool::for_shard(20000, 20010, 1, 2);
        let pa: Vec<u16> = a.free.iter().copied().collect();
        let pb: Vec<u16> = b.free.iter().copied().collect();
        assert_eq!(pa, vec![20000, 20002]);
        assert_eq!(pb, vec![20004, 20006, 20008]);
        assert_eq!(a.total() + b.total(), 5);
    }

    #[test]
    fn odd_start_is_rounded_up_and_released_ports_go_last() {
        let mut p = PortPool::for_shard(30001, 30008, 0, 1);
        assert_eq!(p.take(), Some(30002));
        assert_eq!(p.take(), Some(30004));
        p.give_back(30002);
        assert_eq!(p.take(), Some(30006));
        assert_eq!(p.take(), Some(30002));
        assert_eq!(p.take(), None);
        assert_eq!(p.available(), 0);
    }
}
