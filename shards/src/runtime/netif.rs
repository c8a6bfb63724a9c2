//! The host's interface addresses (getifaddrs): each address with the index
//! of the interface that holds it. One walker for the whole program: "is
//! this URI's host ours" (the control core) and "out of which interface
//! does a relayed packet leave" (`kernel_rtp`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every IPv4/IPv6 address configured on an interface (loopback included),
/// with its interface's index.
pub fn interfaces() -> Vec<(IpAddr, u32)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr of the family it names.
        let ip = match unsafe { (*ifa.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        // SAFETY: ifa_name is a NUL-terminated interface name.
        let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
        out.push((ip, index));
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed_on_its_interface() {
        let lo = super::interfaces()
            .into_iter()
            .find(|(ip, _)| ip.is_loopback() && ip.is_ipv4());
        assert!(matches!(lo, Some((_, i)) if i > 0), "{lo:?}");
    }
}
