//! The host's interface addresses, for "a URI is ours when its host is an
//! address we listen on" when listening on 0.0.0.0 / ::.

use std::net::IpAddr;

/// Every IPv4/IPv6 address configured on an interface (loopback included),
/// sorted, each once.
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = shards::runtime::netif::interfaces()
        .into_iter()
        .map(|(ip, _)| ip)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed() {
        assert!(super::interface_addrs().contains(&"127.0.0.1".parse().unwrap()));
    }
}
