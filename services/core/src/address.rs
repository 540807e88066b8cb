//! The SSRF address policy: which IP addresses the sender may connect to.
//!
//! Every resolved address (and every literal IP in a URL) is checked before a connection
//! is made; an address is refused when it falls in a special-purpose range (loopback,
//! private, link-local and cloud metadata, CGNAT, multicast, documentation, benchmarking,
//! reserved ...), including IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64,
//! 6to4). An allowlist of CIDRs opens chosen ranges for internal targets and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A CIDR block, e.g. `10.1.0.0/16` or `fd00::/8` (a bare address is its own /32 or /128).
/// In a configuration it is that text, parsed when the file loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CIDR block like 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().map_err(|_| err())?, p.parse::<u8>().map_err(|_| err())?),
            None => {
                let ip = s.parse::<IpAddr>().map_err(|_| err())?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { network: ip, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> Self {
        cidr.to_string()
    }
}

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self { network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self { network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), prefix }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

const V4_BLOCKED: &[(Cidr, &str)] = &[
    (Cidr::v4(0, 0, 0, 0, 8), "this-network"),
    (Cidr::v4(10, 0, 0, 0, 8), "private"),
    (Cidr::v4(100, 64, 0, 0, 10), "shared address space (CGNAT)"),
    (Cidr::v4(127, 0, 0, 0, 8), "loopback"),
    (Cidr::v4(169, 254, 0, 0, 16), "link-local (cloud metadata)"),
    (Cidr::v4(172, 16, 0, 0, 12), "private"),
    (Cidr::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (Cidr::v4(192, 0, 2, 0, 24), "documentation"),
    (Cidr::v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (Cidr::v4(192, 168, 0, 0, 16), "private"),
    (Cidr::v4(198, 18, 0, 0, 15), "benchmarking"),
    (Cidr::v4(198, 51, 100, 0, 24), "documentation"),
    (Cidr::v4(203, 0, 113, 0, 24), "documentation"),
    (Cidr::v4(224, 0, 0, 0, 4), "multicast"),
    (Cidr::v4(240, 0, 0, 0, 4), "reserved"),
];

const V6_BLOCKED: &[(Cidr, &str)] = &[
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (Cidr::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), "NAT64"),
    (Cidr::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "NAT64 (local use)"),
    (Cidr::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (Cidr::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "IETF protocol assignments (incl. Teredo)"),
    (Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (Cidr::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4"),
    (Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique-local"),
    (Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (Cidr::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
    (Cidr::v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), "IPv4-mapped"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible"),
];

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {range} address")]
pub struct Blocked {
    pub ip: IpAddr,
    pub range: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<Cidr>,
    allow_loopback: bool,
}

impl AddressPolicy {
    pub fn new(allow: Vec<Cidr>, allow_loopback: bool) -> Self {
        Self { allow, allow_loopback }
    }

    /// Ok when the sender may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        match blocked_range(ip) {
            None => Ok(()),
            Some("loopback") if self.allow_loopback => Ok(()),
            Some(range) => Err(Blocked { ip, range }),
        }
    }
}

/// The special-purpose range `ip` belongs to; IPv4 embedded in IPv6 is judged as IPv4.
fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_broadcast() {
                return Some("broadcast");
            }
            V4_BLOCKED.iter().find(|(c, _)| c.contains(ip)).map(|(_, r)| *r)
        }
        IpAddr::V6(v6) => {
            if let Some(embedded) = embedded_v4(v6) {
                // The embedded address decides when it is itself special; a mapped public
                // address is still refused as a notation games are played with.
                return blocked_range(IpAddr::V4(embedded)).or(Some(embedded_kind(v6)));
            }
            V6_BLOCKED.iter().find(|(c, _)| c.contains(ip)).map(|(_, r)| *r)
        }
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // IPv4-compatible (deprecated); `::` and `::1` are judged as IPv6.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)),
        _ => None,
    }
}

fn embedded_kind(v6: Ipv6Addr) -> &'static str {
    match v6.segments()[0] {
        0x64 => "NAT64",
        0x2002 => "6to4",
        _ if v6.segments()[5] == 0xffff => "IPv4-mapped",
        _ => "IPv4-compatible",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn special_ranges_are_blocked() {
        let policy = AddressPolicy::default();
        let blocked = [
            "0.0.0.0", "10.1.2.3", "100.64.0.1", "127.0.0.1", "127.255.255.254", "169.254.169.254",
            "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.1.1",
            "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.1.1.1",
            "240.0.0.1", "255.255.255.255", "::", "::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8",
            "::127.0.0.1", "64:ff9b::10.0.0.1", "64:ff9b::8.8.8.8", "64:ff9b:1::1", "100::1",
            "2001::1", "2001:db8::1", "2002:7f00:1::", "2002:0808:0808::1", "fc00::1", "fd12:3456::1",
            "fe80::1", "fec0::1", "ff02::1",
        ];
        for s in blocked {
            assert!(policy.check(ip(s)).is_err(), "{s} must be blocked");
        }
        for s in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert_eq!(policy.check(ip(s)), Ok(()), "{s} must be allowed");
        }
    }

    #[test]
    fn reasons_name_the_range() {
        let policy = AddressPolicy::default();
        assert_eq!(policy.check(ip("169.254.169.254")).expect_err("blocked").range, "link-local (cloud metadata)");
        assert_eq!(policy.check(ip("::ffff:10.0.0.1")).expect_err("blocked").range, "private");
        assert_eq!(policy.check(ip("::ffff:8.8.8.8")).expect_err("blocked").range, "IPv4-mapped");
    }

    #[test]
    fn loopback_switch_and_allowlist() {
        let dev = AddressPolicy::new(vec![], true);
        assert_eq!(dev.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(dev.check(ip("::1")), Ok(()));
        assert_eq!(dev.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(dev.check(ip("10.0.0.1")).is_err());
        let internal = AddressPolicy::new(vec!["10.20.0.0/16".parse().expect("cidr")], false);
        assert_eq!(internal.check(ip("10.20.3.4")), Ok(()));
        assert!(internal.check(ip("10.21.3.4")).is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert_eq!("fd00::/8".parse::<Cidr>().map(|c| c.contains(ip("fd00::1"))), Ok(true));
    }
}
