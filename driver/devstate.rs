//! The control state the driver wants the device to hold — receive modes, the multicast table,
//! the MAC address, the VLAN filter, the guest (receive) offloads, queue steering — next to what
//! the device acknowledged. The control queue sends the differences, one command at a time:
//!
//! * nothing is allocated (the state is fixed-size: the multicast table holds
//!   [`MAX_MULTICAST`] addresses, the VLAN filter is a 4096-bit set, the RSS table
//!   [`crate::rss::TABLE_SIZE`] entries), so every path may run at DISPATCH_LEVEL;
//! * repeated changes coalesce (only the latest wanted value is sent) and the "queue" can never
//!   overflow;
//! * after a device reset — D0 exit and entry, a recovery — the device remembers nothing, so
//!   everything wanted is sent again ([`DeviceControl::device_reset`]); NetAdapterCx itself never
//!   replays a receive filter or offloads after D0 (`NxAdapter::SetReceiveFilter` runs only from
//!   the packet-filter and multicast OIDs, `reference/netadaptercx.md` §9.5).
//!
//! A command the device refuses is counted and not retried (the device keeps what it had).

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use offload::filter::MAX_MULTICAST;
use virtio::Features;
use virtio::ctrl::{Command, RxMode};

use crate::rss::TABLE_SIZE;

/// The receive modes, in `VIRTIO_NET_CTRL_RX_*` order.
/// How many receive modes there are (`modes` has one item per mode, in `MODES` order).
const N_MODES: usize = 6;

const MODES: [RxMode; N_MODES] = [
    RxMode::Promisc,
    RxMode::AllMulti,
    RxMode::AllUni,
    RxMode::NoMulti,
    RxMode::NoUni,
    RxMode::NoBcast,
];

/// The multicast filter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacTable {
    len: usize,
    addrs: [[u8; 6]; MAX_MULTICAST],
}

impl MacTable {
    /// The table holding `list` (cut at [`MAX_MULTICAST`]).
    pub fn new(list: &[[u8; 6]]) -> Self {
        let mut t = Self {
            len: 0,
            addrs: [[0; 6]; MAX_MULTICAST],
        };
        for (slot, a) in t.addrs.iter_mut().zip(list) {
            *slot = *a;
            // At most MAX_MULTICAST (the zip).
            t.len = t.len.saturating_add(1);
        }
        t
    }

    /// The addresses.
    pub fn addresses(&self) -> &[[u8; 6]] {
        self.addrs.get(..self.len).unwrap_or(&[])
    }
}

/// How received packets are spread over queue pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Inline on purpose: boxing the RSS table would allocate on a DISPATCH path.
#[allow(clippy::large_enum_variant)]
pub enum Steering {
    /// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`: the device spreads over this many pairs.
    Pairs(u16),
    /// `VIRTIO_NET_CTRL_MQ_RSS_CONFIG`.
    Rss(RssConfig),
}

/// A complete RSS configuration, inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssConfig {
    /// `VIRTIO_NET_RSS_HASH_TYPE_*` bits (0: every packet is unclassified).
    pub hash_types: u32,
    /// Queue pair per entry; the first `len` entries are used.
    pub table: [u16; TABLE_SIZE],
    /// Entries in use (a power of two, at least 1).
    pub len: u16,
    /// Queue pair for packets no enabled type applies to.
    pub unclassified: u16,
    /// Transmit queues in use.
    pub max_tx: u16,
    /// Toeplitz key.
    pub key: [u8; offload::rss::KEY_LEN],
}

impl RssConfig {
    /// Everything to pair 0 (no hash type), with `max_tx` transmit queues live.
    pub const fn to_pair0(max_tx: u16) -> Self {
        Self {
            hash_types: 0,
            table: [0; TABLE_SIZE],
            len: 1,
            unclassified: 0,
            max_tx,
            key: [0; offload::rss::KEY_LEN],
        }
    }

    /// The entries in use.
    pub fn entries(&self) -> &[u16] {
        self.table
            .get(..usize::from(self.len))
            .unwrap_or(&self.table[..1])
    }
}

/// One piece of state: what the driver wants (`None`: no wish yet) and what the device
/// acknowledged (`None`: unknown, e.g. after a reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item<T> {
    want: Option<T>,
    sent: Option<T>,
}

impl<T: Copy + PartialEq> Item<T> {
    const NONE: Self = Self {
        want: None,
        sent: None,
    };

    fn dirty(&self) -> Option<T> {
        self.want.filter(|w| self.sent != Some(*w))
    }
}

/// What is in flight, to record when the device answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inflight {
    Mode(usize, bool),
    Table(MacTable),
    Mac([u8; 6]),
    Vlan(u16, bool),
    Offloads(u64),
    Steering(Steering),
    Announce,
}

const VLAN_WORDS: usize = 4096 / 64;

/// The device's control state, wanted and acknowledged (see the module documentation).
#[derive(Debug, Clone)]
pub struct DeviceControl {
    features: Features,
    modes: [Item<bool>; N_MODES],
    table: Item<MacTable>,
    mac: Item<[u8; 6]>,
    vlan_want: [u64; VLAN_WORDS],
    vlan_device: [u64; VLAN_WORDS],
    offloads: Item<u64>,
    steering: Item<Steering>,
    announce: bool,
    inflight: Option<Inflight>,
}

fn bit(set: &[u64; VLAN_WORDS], vid: u16) -> bool {
    set.get(usize::from(vid / 64))
        .is_some_and(|w| w & (1 << (vid % 64)) != 0)
}

fn put(set: &mut [u64; VLAN_WORDS], vid: u16, on: bool) {
    if let Some(w) = set.get_mut(usize::from(vid / 64)) {
        if on {
            *w |= 1 << (vid % 64);
        } else {
            *w &= !(1 << (vid % 64));
        }
    }
}

impl DeviceControl {
    /// Nothing wanted yet, for a device with `features` negotiated.
    pub const fn new(features: Features) -> Self {
        Self {
            features,
            modes: [Item::NONE; N_MODES],
            table: Item::NONE,
            mac: Item::NONE,
            vlan_want: [0; VLAN_WORDS],
            vlan_device: [0; VLAN_WORDS],
            offloads: Item::NONE,
            steering: Item::NONE,
            announce: false,
            inflight: None,
        }
    }

    /// Wants receive mode `mode` on or off.
    pub fn want_mode(&mut self, mode: RxMode, on: bool) {
        if let Some(m) = self.modes.get_mut(mode as usize) {
            m.want = Some(on);
        }
    }

    /// Wants the multicast table `list`.
    pub fn want_multicast(&mut self, list: &[[u8; 6]]) {
        self.table.want = Some(MacTable::new(list));
    }

    /// Wants the device's MAC address `mac`.
    pub fn want_mac(&mut self, mac: [u8; 6]) {
        self.mac.want = Some(mac);
    }

    /// Wants VLAN `vid` in the filter (or out of it).
    pub fn want_vlan(&mut self, vid: u16, member: bool) {
        if vid < 4096 {
            put(&mut self.vlan_want, vid, member);
        }
    }

    /// Whether VLAN `vid` is wanted in the device's filter.
    pub fn vlan_wanted(&self, vid: u16) -> bool {
        bit(&self.vlan_want, vid)
    }

    /// Wants the guest offload bits `bits`.
    pub fn want_offloads(&mut self, bits: u64) {
        self.offloads.want = Some(bits);
    }

    /// Wants steering `s`.
    pub fn want_steering(&mut self, s: Steering) {
        self.steering.want = Some(s);
    }

    /// One ANNOUNCE acknowledgement is due.
    pub fn want_announce_ack(&mut self) {
        self.announce = true;
    }

    /// The device was reset: it holds nothing now, and nothing is in flight.
    pub fn device_reset(&mut self) {
        for m in &mut self.modes {
            m.sent = None;
        }
        self.table.sent = None;
        self.mac.sent = None;
        self.vlan_device = [0; VLAN_WORDS];
        self.offloads.sent = None;
        self.steering.sent = None;
        self.announce = false;
        self.inflight = None;
    }

    /// Whether a command is in flight.
    pub fn in_flight(&self) -> bool {
        self.inflight.is_some()
    }

    /// Whether anything is left to send (or in flight).
    pub fn busy(&self) -> bool {
        self.inflight.is_some() || self.next().is_some()
    }

    /// The in-flight command completed: `ok` if the device accepted it. A refusal is not
    /// retried (what was wanted is taken as the device's answer, so the queue moves on).
    pub fn completed(&mut self, _ok: bool) {
        match self.inflight.take() {
            Some(Inflight::Mode(i, on)) => {
                if let Some(m) = self.modes.get_mut(i) {
                    m.sent = Some(on);
                }
            }
            Some(Inflight::Table(t)) => self.table.sent = Some(t),
            Some(Inflight::Mac(a)) => self.mac.sent = Some(a),
            Some(Inflight::Vlan(v, on)) => put(&mut self.vlan_device, v, on),
            Some(Inflight::Offloads(b)) => self.offloads.sent = Some(b),
            Some(Inflight::Steering(s)) => self.steering.sent = Some(s),
            Some(Inflight::Announce) | None => {}
        }
    }

    fn mode_applies(&self, i: usize) -> bool {
        if i < 2 {
            self.features.contains(Features::NET_CTRL_RX)
        } else {
            self.features.contains(Features::NET_CTRL_RX_EXTRA)
        }
    }

    fn next(&self) -> Option<Inflight> {
        if let Some(s) = self.steering.dirty() {
            return Some(Inflight::Steering(s));
        }
        for (i, m) in self.modes.iter().enumerate() {
            if let Some(on) = m.dirty()
                && self.mode_applies(i)
            {
                return Some(Inflight::Mode(i, on));
            }
        }
        if self.features.contains(Features::NET_CTRL_RX)
            && let Some(t) = self.table.dirty()
        {
            return Some(Inflight::Table(t));
        }
        if self.features.contains(Features::NET_CTRL_MAC_ADDR)
            && let Some(a) = self.mac.dirty()
        {
            return Some(Inflight::Mac(a));
        }
        if self.features.contains(Features::NET_CTRL_VLAN) {
            for (w, (want, dev)) in self.vlan_want.iter().zip(&self.vlan_device).enumerate() {
                let diff = want ^ dev;
                if diff != 0 {
                    let b = diff.trailing_zeros();
                    // w < 64 words, b < 64 bits: the VLAN id is below 4096.
                    let vid = (w as u16).wrapping_mul(64).wrapping_add(b as u16);
                    return Some(Inflight::Vlan(vid, want & (1 << b) != 0));
                }
            }
        }
        if self.features.contains(Features::NET_CTRL_GUEST_OFFLOADS)
            && let Some(b) = self.offloads.dirty()
        {
            return Some(Inflight::Offloads(b));
        }
        if self.announce && self.features.contains(Features::NET_GUEST_ANNOUNCE) {
            return Some(Inflight::Announce);
        }
        None
    }

    /// The next command to send (nothing in flight), submitted through `submit`; it is in
    /// flight when `submit` returns `Ok`. `Err` from `submit` (the command cannot be built or
    /// the queue refuses it) counts as a refusal. Returns `None` when nothing is left.
    pub fn send_next<E>(
        &mut self,
        submit: impl FnOnce(&Command<'_>) -> Result<bool, E>,
    ) -> Option<Result<bool, E>> {
        if self.inflight.is_some() {
            return None;
        }
        let next = self.next()?;
        let r = match &next {
            Inflight::Mode(i, on) => {
                // `i` indexes MODES (`next`); the remainder keeps it in range regardless.
                let mode = MODES.get(*i % N_MODES).copied().unwrap_or(MODES[0]);
                submit(&Command::RxMode(mode, *on))
            }
            Inflight::Table(t) => submit(&Command::MacTableSet {
                unicast: &[],
                multicast: t.addresses(),
            }),
            Inflight::Mac(a) => submit(&Command::MacAddrSet(*a)),
            Inflight::Vlan(v, true) => submit(&Command::VlanAdd(*v)),
            Inflight::Vlan(v, false) => submit(&Command::VlanDel(*v)),
            Inflight::Offloads(b) => submit(&Command::GuestOffloadsSet(*b)),
            Inflight::Steering(Steering::Pairs(n)) => submit(&Command::MqPairsSet(*n)),
            Inflight::Steering(Steering::Rss(c)) => submit(&Command::RssConfig {
                hash_types: c.hash_types,
                indirection_table: c.entries(),
                unclassified_queue: c.unclassified,
                max_tx_vq: c.max_tx,
                key: &c.key,
            }),
            Inflight::Announce => submit(&Command::AnnounceAck),
        };
        if matches!(next, Inflight::Announce) {
            self.announce = false;
        }
        self.inflight = Some(next);
        if r.is_err() {
            self.completed(false);
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn all() -> Features {
        Features::NET_CTRL_VQ
            | Features::NET_CTRL_RX
            | Features::NET_CTRL_RX_EXTRA
            | Features::NET_CTRL_MAC_ADDR
            | Features::NET_CTRL_VLAN
            | Features::NET_CTRL_GUEST_OFFLOADS
            | Features::NET_GUEST_ANNOUNCE
            | Features::NET_MQ
    }

    /// Sends everything pending; returns the commands as their debug text.
    fn drain(c: &mut DeviceControl) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(r) = c.send_next(|cmd| {
            out.push(format!("{cmd:?}"));
            Ok::<bool, ()>(true)
        }) {
            assert!(r.is_ok());
            c.completed(true);
        }
        out
    }

    #[test]
    fn changes_coalesce_and_only_differences_are_sent() {
        let mut c = DeviceControl::new(all());
        c.want_mode(RxMode::Promisc, true);
        c.want_mode(RxMode::Promisc, false);
        c.want_multicast(&[[1, 0, 0x5e, 0, 0, 1]]);
        c.want_vlan(5, true);
        c.want_vlan(7, true);
        c.want_vlan(7, false);
        let sent = drain(&mut c);
        assert_eq!(
            sent,
            [
                "RxMode(Promisc, false)",
                "MacTableSet { unicast: [], multicast: [[1, 0, 94, 0, 0, 1]] }",
                "VlanAdd(5)"
            ]
        );
        // Nothing changed: nothing to send.
        c.want_mode(RxMode::Promisc, false);
        assert!(drain(&mut c).is_empty());
        assert!(!c.busy());
    }

    #[test]
    fn a_device_reset_sends_everything_again() {
        let mut c = DeviceControl::new(all());
        c.want_mode(RxMode::AllMulti, true);
        c.want_mac([2, 0, 0, 0, 0, 9]);
        c.want_vlan(100, true);
        c.want_offloads(1);
        c.want_steering(Steering::Pairs(4));
        let first = drain(&mut c);
        c.device_reset();
        let again = drain(&mut c);
        assert_eq!(first, again);
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn commands_the_device_lacks_are_not_sent() {
        let mut c = DeviceControl::new(Features::NET_CTRL_VQ | Features::NET_CTRL_RX);
        c.want_mode(RxMode::NoBcast, true);
        c.want_vlan(3, true);
        c.want_mac([2, 0, 0, 0, 0, 1]);
        c.want_mode(RxMode::Promisc, true);
        assert_eq!(drain(&mut c), ["RxMode(Promisc, true)"]);
    }

    #[test]
    fn a_refused_command_is_not_retried() {
        let mut c = DeviceControl::new(all());
        c.want_vlan(9, true);
        assert!(c.send_next(|_| Ok::<bool, ()>(true)).is_some());
        c.completed(false);
        assert!(!c.busy());
        // A build failure is a refusal too.
        c.want_vlan(10, true);
        assert_eq!(c.send_next(|_| Err::<bool, ()>(())), Some(Err(())));
        assert!(!c.busy());
    }
}
