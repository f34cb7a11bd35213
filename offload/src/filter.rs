//! Receive filtering in software, for what the device cannot filter: the NetAdapterCx packet
//! filter (`NET_PACKET_FILTER_FLAGS`), the multicast list, and VLAN membership.

/// `NET_PACKET_FILTER_FLAGS` (the NDIS packet-type bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketFilter(pub u32);

impl PacketFilter {
    /// Unicast to the adapter's address.
    pub const DIRECTED: u32 = 0x01;
    /// Multicast in the multicast list.
    pub const MULTICAST: u32 = 0x02;
    /// All multicast.
    pub const ALL_MULTICAST: u32 = 0x04;
    /// Broadcast.
    pub const BROADCAST: u32 = 0x08;
    /// Everything.
    pub const PROMISCUOUS: u32 = 0x20;

    fn has(self, f: u32) -> bool {
        self.0 & f != 0
    }
}

/// Largest multicast list the adapter accepts.
pub const MAX_MULTICAST: usize = 32;

/// The receive filter state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxFilter {
    /// Packet filter flags.
    pub filter: PacketFilter,
    /// The adapter's current MAC address.
    pub mac: [u8; 6],
    multicast: [[u8; 6]; MAX_MULTICAST],
    multicast_len: usize,
    /// VLAN membership: bit per VLAN id; all clear = no VLAN filtering.
    vlans: [u64; 64],
}

/// Where VLAN `vid`'s membership bit is: the word (below 64, the table's size: the 12-bit id
/// over 64) and the bit in it.
const fn vlan_bit(vid: u16) -> (usize, u64) {
    let v = vid & 0xfff;
    ((v / 64) as usize, 1 << (v % 64))
}

impl RxFilter {
    /// A filter for `mac` with the given flags and no multicast addresses or VLANs.
    pub const fn new(mac: [u8; 6], filter: PacketFilter) -> Self {
        Self {
            filter,
            mac,
            multicast: [[0; 6]; MAX_MULTICAST],
            multicast_len: 0,
            vlans: [0; 64],
        }
    }

    /// Replaces the multicast list; `false` (and no change) if it is too long or holds a
    /// non-multicast address.
    pub fn set_multicast(&mut self, list: &[[u8; 6]]) -> bool {
        // (`get_mut` fails exactly when the list is longer than MAX_MULTICAST.)
        let Some(to) = self.multicast.get_mut(..list.len()) else {
            return false;
        };
        if list.iter().any(|m| m[0] & 1 == 0) {
            return false;
        }
        to.copy_from_slice(list);
        self.multicast_len = list.len();
        true
    }

    /// The multicast list.
    pub fn multicast(&self) -> &[[u8; 6]] {
        // multicast_len <= MAX_MULTICAST (set only by `set_multicast`, which checks it).
        self.multicast.get(..self.multicast_len).unwrap_or(&[])
    }

    /// Adds (or removes) a VLAN id to the membership set.
    pub fn set_vlan(&mut self, vid: u16, member: bool) {
        let (w, bit) = vlan_bit(vid);
        if let Some(word) = self.vlans.get_mut(w) {
            if member {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// Whether any VLAN membership is configured (else every VLAN passes).
    pub fn has_vlans(&self) -> bool {
        self.vlans.iter().any(|w| *w != 0)
    }

    /// Whether VLAN `vid` passes (untagged frames, VID 0 priority tags, and every VLAN when no
    /// membership is configured).
    pub fn vlan_accepts(&self, vid: Option<u16>) -> bool {
        match vid {
            None | Some(0) => true,
            Some(v) => {
                let (w, bit) = vlan_bit(v);
                self.vlans.iter().all(|w| *w == 0)
                    || self.vlans.get(w).is_some_and(|word| word & bit != 0)
            }
        }
    }

    /// Whether a frame to `dst` passes the packet filter.
    pub fn accepts(&self, dst: &[u8; 6]) -> bool {
        let f = self.filter;
        if f.has(PacketFilter::PROMISCUOUS) {
            return true;
        }
        if *dst == [0xff; 6] {
            return f.has(PacketFilter::BROADCAST);
        }
        if dst[0] & 1 != 0 {
            return f.has(PacketFilter::ALL_MULTICAST)
                || (f.has(PacketFilter::MULTICAST) && self.multicast().contains(dst));
        }
        f.has(PacketFilter::DIRECTED) && *dst == self.mac
    }
}
