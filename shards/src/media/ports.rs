//! The RTP port pairs of one shard: an even share of
//! `[media] rtp_port_start..rtp_port_end`, handed out as (RTP even, RTCP odd)
//! pairs drawn at random, so the port of the next call cannot be guessed
//! from the last one's. Released pairs cool down behind the others before
//! they can be drawn again, so a port just closed is not reused at once.
//!
//! `PortTable` adds, per port, who uses it and where its socket stands
//! (the runtime owns the socket; this only mirrors what it was asked and
//! what it answered). A pair goes back to the pool only once it has no
//! owner and neither port has a socket, so the relay never asks for one of
//! its own ports to be bound twice.

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

/// Where the socket of one port stands, as far as the relay knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SocketState {
    /// No socket (never asked for, failed to bind, or closed).
    #[default]
    None,
    /// Bound ahead of need asked for (not read), no answer yet.
    Reserving,
    /// Bound, not read: a spare.
    Reserved,
    /// Bind (or reading a reserved socket) asked for, no answer yet.
    Binding,
    /// Bound and read by the runtime.
    Open,
    /// Close asked for, no answer yet.
    Closing,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot<O> {
    owner: Option<O>,
    socket: SocketState,
}

/// Every port of one shard's share: the pool, the owner of each port
/// (`O`: session and side) and the state of its socket, indexed by
/// `port - start` (no hashing on the packet path).
#[derive(Debug)]
pub(crate) struct PortTable<O> {
    pool: PortPool,
    start: u16,
    slots: Vec<Slot<O>>,
}

impl<O: Copy> PortTable<O> {
    pub(crate) fn new(pool: PortPool, start: u16) -> PortTable<O> {
        PortTable {
            pool,
            start,
            slots: Vec::new(),
        }
    }

    fn slot(&self, port: u16) -> Option<&Slot<O>> {
        self.slots.get(usize::from(port.wrapping_sub(self.start)))
    }

    fn slot_mut(&mut self, port: u16) -> &mut Slot<O> {
        let i = usize::from(port.wrapping_sub(self.start));
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || Slot {
                owner: None,
                socket: SocketState::None,
            });
        }
        &mut self.slots[i]
    }

    /// Draws a pair for `owner`; both its sockets are to be bound and read
    /// (`reserve`: only bound) and the caller asks for that. None when the
    /// share is used up.
    pub(crate) fn take_pair(&mut self, owner: O, reserve: bool) -> Option<u16> {
        let port = self.pool.take()?;
        let socket = if reserve {
            SocketState::Reserving
        } else {
            SocketState::Binding
        };
        for p in [port, port + 1] {
            *self.slot_mut(p) = Slot {
                owner: Some(owner),
                socket,
            };
        }
        Some(port)
    }

    /// A reserved pair goes to `owner`; its sockets are to be read (the
    /// caller asks for that).
    pub(crate) fn assign(&mut self, port: u16, owner: O) {
        for p in [port, port + 1] {
            let slot = self.slot_mut(p);
            slot.owner = Some(owner);
            if slot.socket == SocketState::Reserved {
                slot.socket = SocketState::Binding;
            }
        }
    }

    /// Who uses `port`.
    pub(crate) fn owner(&self, port: u16) -> Option<O> {
        self.slot(port).and_then(|s| s.owner)
    }

    pub(crate) fn socket(&self, port: u16) -> SocketState {
        self.slot(port).map_or(SocketState::None, |s| s.socket)
    }

    /// The pair no longer has an owner. Returns its ports whose sockets
    /// must now be closed (those still binding are closed when bound).
    pub(crate) fn release(&mut self, port: u16) -> Vec<u16> {
        let mut close = Vec::new();
        for p in [port, port + 1] {
            let slot = self.slot_mut(p);
            slot.owner = None;
            if matches!(slot.socket, SocketState::Open | SocketState::Reserved) {
                slot.socket = SocketState::Closing;
                close.push(p);
            }
        }
        self.give_back_if_idle(port);
        close
    }

    /// A bind asked for is not needed after all (never performed).
    pub(crate) fn cancel_bind(&mut self, port: u16) {
        let slot = self.slot_mut(port);
        if matches!(slot.socket, SocketState::Binding | SocketState::Reserving) {
            slot.socket = SocketState::None;
            self.give_back_if_idle(port & !1);
        }
    }

    /// Reading a reserved socket is not needed after all (never asked).
    pub(crate) fn cancel_read(&mut self, port: u16) {
        let slot = self.slot_mut(port);
        if slot.socket == SocketState::Binding {
            slot.socket = SocketState::Reserved;
        }
    }

    /// The runtime bound `port`. True when nobody wants it any more (it
    /// is now closing: the caller asks for that).
    pub(crate) fn bound(&mut self, port: u16) -> bool {
        let slot = self.slot_mut(port);
        let now = match slot.socket {
            SocketState::Binding => SocketState::Open,
            SocketState::Reserving => SocketState::Reserved,
            _ => return false,
        };
        if slot.owner.is_some() {
            slot.socket = now;
            false
        } else {
            slot.socket = SocketState::Closing;
            true
        }
    }

    /// The runtime could not bind `port`: returns its owner, if any. The
    /// pair goes to the back of the pool once its owner lets it go.
    pub(crate) fn bind_failed(&mut self, port: u16) -> Option<O> {
        let slot = self.slot_mut(port);
        if !matches!(slot.socket, SocketState::Binding | SocketState::Reserving) {
            return None;
        }
        slot.socket = SocketState::None;
        let owner = slot.owner;
        self.give_back_if_idle(port & !1);
        owner
    }

    /// The runtime closed `port`.
    pub(crate) fn closed(&mut self, port: u16) {
        let slot = self.slot_mut(port);
        if slot.socket == SocketState::Closing {
            slot.socket = SocketState::None;
            self.give_back_if_idle(port & !1);
        }
    }

    /// Back to the pool once nobody uses the pair and neither port has a
    /// socket (every transition that leads here happens once per use).
    fn give_back_if_idle(&mut self, port: u16) {
        let idle = [port, port + 1].iter().all(|&p| {
            self.slot(p)
                .is_none_or(|s| s.owner.is_none() && s.socket == SocketState::None)
        });
        if idle {
            self.pool.give_back(port);
        }
    }

    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.pool.available()
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
        assert!(first.is_multiple_of(2) && (30002..30009).contains(&first));
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
