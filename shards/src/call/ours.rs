//! What the engine writes about us in a call's messages: our Contact and
//! our Via (up to its branch) for each transport a peer is reached on,
//! and our `host:port` as the other end of every message in a flow. Made
//! once, from [`EngineConfig`].

use crate::sip::Transport;
use crate::transport::Peer;

use super::EngineConfig;

/// Our Contact and Via prefix for one transport.
struct Side {
    /// `<sip:shardpbx@host:port>` (with `;transport=` over streams).
    contact: String,
    /// `SIP/2.0/UDP host:port;branch=`.
    via_prefix: String,
}

/// Our address as each transport names it.
pub(super) struct Ours {
    /// `host:port` (UDP), the other end of every message in a flow.
    pub(super) flow_local: String,
    udp: Side,
    tcp: Side,
    tls: Side,
    ws: Side,
    wss: Side,
}

impl Ours {
    pub(super) fn new(cfg: &EngineConfig) -> Ours {
        let side = |token: &str, param: &str, port: u16| {
            // A stream port of ours, or the UDP port when there is no
            // listener of that kind (a trunk we dial without listening).
            let port = if port == 0 { cfg.port } else { port };
            Side {
                contact: format!("<sip:shardpbx@{}:{port}{param}>", cfg.host),
                via_prefix: format!("SIP/2.0/{token} {}:{port};branch=", cfg.host),
            }
        };
        Ours {
            flow_local: format!("{}:{}", cfg.host, cfg.port),
            udp: side("UDP", "", cfg.port),
            tcp: side("TCP", ";transport=tcp", cfg.tcp_port),
            tls: side("TLS", ";transport=tls", cfg.tls_port),
            ws: side("WS", ";transport=ws", cfg.ws_port),
            wss: side("WSS", ";transport=ws", cfg.wss_port),
        }
    }

    fn side(&self, to: Peer) -> &Side {
        match to.transport() {
            Transport::Tcp => &self.tcp,
            Transport::Tls => &self.tls,
            Transport::Ws => &self.ws,
            Transport::Wss => &self.wss,
            _ => &self.udp,
        }
    }

    /// Our Contact in a message that goes to `to`.
    pub(super) fn contact(&self, to: Peer) -> String {
        self.side(to).contact.clone()
    }

    /// Our Via up to its branch, for a request that goes to `to`.
    pub(super) fn via_prefix(&self, to: Peer) -> &str {
        &self.side(to).via_prefix
    }
}
