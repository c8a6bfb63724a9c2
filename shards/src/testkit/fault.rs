//! Faults the harness's network applies to datagrams on request: drop,
//! duplicate or delay the ones that match (start line, CSeq method,
//! source, destination), a number of times or always.

use std::net::SocketAddr;

use crate::sip::Message;

/// What happens to a matching datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// Never arrives.
    Drop,
    /// Arrives twice (the copy right after the original).
    Duplicate,
    /// Arrives this many ms later than it would.
    Delay(u64),
}

/// One rule: which datagrams, what happens to them, how many times.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    kind: FaultKind,
    /// The start line begins with this (`"ACK "`, `"SIP/2.0 200"`).
    start: String,
    cseq_method: Option<String>,
    from: Option<SocketAddr>,
    to: Option<SocketAddr>,
    /// Matches left; `None`: every match.
    left: Option<u32>,
}

impl Fault {
    fn new(kind: FaultKind, start: &str) -> Fault {
        Fault {
            kind,
            start: start.to_string(),
            cseq_method: None,
            from: None,
            to: None,
            left: Some(1),
        }
    }

    /// Drops the next datagram whose start line begins with `start`.
    pub(crate) fn drop(start: &str) -> Fault {
        Fault::new(FaultKind::Drop, start)
    }

    /// Delivers the next matching datagram twice.
    pub(crate) fn duplicate(start: &str) -> Fault {
        Fault::new(FaultKind::Duplicate, start)
    }

    /// Delivers the next matching datagram `ms` late.
    pub(crate) fn delay(start: &str, ms: u64) -> Fault {
        Fault::new(FaultKind::Delay(ms), start)
    }

    /// Only datagrams whose CSeq names `method` (`"INVITE"`, `"BYE"`).
    pub(crate) fn cseq(self, method: &str) -> Fault {
        Fault {
            cseq_method: Some(method.to_string()),
            ..self
        }
    }

    /// Only datagrams sent by `addr`.
    pub(crate) fn from(self, addr: SocketAddr) -> Fault {
        Fault {
            from: Some(addr),
            ..self
        }
    }

    /// Only datagrams sent to `addr`.
    pub(crate) fn to(self, addr: SocketAddr) -> Fault {
        Fault {
            to: Some(addr),
            ..self
        }
    }

    /// The next `n` matches (default 1).
    pub(crate) fn times(self, n: u32) -> Fault {
        Fault {
            left: Some(n),
            ..self
        }
    }

    /// Every match, for the rest of the test.
    pub(crate) fn always(self) -> Fault {
        Fault { left: None, ..self }
    }

    fn matches(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> bool {
        if self.left == Some(0)
            || self.from.is_some_and(|a| a != from)
            || self.to.is_some_and(|a| a != to)
            || !data.starts_with(self.start.as_bytes())
        {
            return false;
        }
        let Some(method) = &self.cseq_method else {
            return true;
        };
        Message::parse(data)
            .ok()
            .and_then(|m| m.cseq().ok().map(|c| c.method.as_str() == method.as_str()))
            .unwrap_or(false)
    }
}

/// The rules in force, first match wins.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Fault>,
}

impl Faults {
    pub(crate) fn add(&mut self, fault: Fault) {
        self.rules.push(fault);
    }

    /// The fault for this datagram, if a rule matches (and counts it).
    pub(crate) fn apply(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> Option<FaultKind> {
        let rule = self.rules.iter_mut().find(|r| r.matches(from, to, data))?;
        if let Some(left) = &mut rule.left {
            *left -= 1;
        }
        Some(rule.kind)
    }
}
