//! Whom a per-address limit counts against.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// A client's network, as the per-address limits count it: an IPv4
/// address, or the /64 an IPv6 address is in. One IPv6 subscriber gets at
/// least a /64 and picks the other 64 bits at will (SLAAC, privacy
/// addresses), so keyed by the whole address one machine could be 2^64
/// clients. An IPv4-mapped address (`::ffff:192.0.2.1`, an IPv4 client of
/// a dual-stack socket) is that IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientNet {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6(u64),
}

impl From<IpAddr> for ClientNet {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => Self::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

/// `192.0.2.1`, or `2001:db8::/64`.
impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => v4.fmt(f),
            Self::V6(prefix) => write!(f, "{}/64", Ipv6Addr::from_bits(u128::from(*prefix) << 64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(text: &str) -> ClientNet {
        ClientNet::from(text.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn an_ipv6_address_counts_as_its_64_and_an_ipv4_one_as_itself() {
        assert_eq!(net("2001:db8::1"), net("2001:db8::ffff:ffff:ffff:ffff"));
        assert_eq!(net("2001:db8:0:0:1::"), net("2001:db8::2"));
        assert_ne!(net("2001:db8::1"), net("2001:db8:0:1::1"));
        assert_ne!(net("192.0.2.1"), net("192.0.2.2"));
        assert_eq!(net("::ffff:192.0.2.1"), net("192.0.2.1"));
        // Only the mapped form is IPv4: these are IPv6 addresses.
        assert_ne!(net("::192.0.2.1"), net("192.0.2.1"));
        assert_ne!(net("64:ff9b::192.0.2.1"), net("192.0.2.1"));
        assert_eq!(net("2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
        assert_eq!(net("::ffff:192.0.2.1").to_string(), "192.0.2.1");
    }

    proptest! {
        #[test]
        fn two_addresses_share_a_key_exactly_when_they_share_a_64(a: u128, b: u128) {
            let (a6, b6) = (Ipv6Addr::from_bits(a), Ipv6Addr::from_bits(b));
            // Mapped IPv4 addresses are the IPv4 rule's, below.
            prop_assume!(a6.to_ipv4_mapped().is_none() && b6.to_ipv4_mapped().is_none());
            let same = ClientNet::from(IpAddr::V6(a6)) == ClientNet::from(IpAddr::V6(b6));
            prop_assert_eq!(same, a >> 64 == b >> 64);
            // Any address in a's /64 (but a mapped one, in ::/64) shares its key.
            let neighbour = Ipv6Addr::from_bits(a ^ (b & u128::from(u64::MAX)));
            if neighbour.to_ipv4_mapped().is_none() {
                prop_assert_eq!(ClientNet::from(IpAddr::V6(neighbour)), ClientNet::from(IpAddr::V6(a6)));
            }
        }

        #[test]
        fn a_mapped_ipv4_address_is_the_ipv4_address_and_no_other(a: u32, b: u32) {
            let (a4, b4) = (Ipv4Addr::from_bits(a), Ipv4Addr::from_bits(b));
            let mapped = ClientNet::from(IpAddr::V6(a4.to_ipv6_mapped()));
            prop_assert_eq!(mapped, ClientNet::from(IpAddr::V4(a4)));
            prop_assert_eq!(mapped == ClientNet::from(IpAddr::V4(b4)), a == b);
        }
    }
}
