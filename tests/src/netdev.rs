//! An in-process virtio-net device: the virtio-pci register model ([`VirtioPciModel`]) for
//! bring-up, rust-vmm's `virtio-queue` (split) or the spec-written packed device for the rings,
//! over the shared [`GuestRam`]. Backends: loopback (what is sent comes back), and a channel
//! (frames sent are collected; frames to receive are injected); both can be written to a pcap.
//! A fault mode breaks the virtio contract on demand.
//!
//! The device runs when [`NetDevice::step`] is called (deterministic, single-threaded):
//! control commands are answered, transmitted chains consumed, pending frames delivered into
//! receive buffers (mergeable when negotiated), and interrupts recorded.

use std::collections::VecDeque;

use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};
use virtio::queue::QueueAddresses;

use crate::device::{DeviceChain, PackedDevice, SplitDevice, fill};
use crate::dma::GuestRam;
use crate::pci_model::VirtioPciModel;

/// A device queue of either layout.
enum DevQueue {
    Split(SplitDevice),
    Packed(PackedDevice),
}

impl DevQueue {
    fn pop(&mut self, ram: &GuestRam) -> Option<DeviceChain> {
        match self {
            Self::Split(d) => d.pop(ram),
            Self::Packed(d) => d.pop(ram.arena()),
        }
    }

    /// Completes a chain; returns whether the driver wants an interrupt.
    fn complete(&mut self, ram: &GuestRam, c: &DeviceChain, len: u32) -> bool {
        match self {
            Self::Split(d) => d.complete(ram, c.id, len),
            Self::Packed(d) => {
                d.complete(ram.arena(), c, len);
                d.should_interrupt(ram.arena())
            }
        }
    }
}

/// Where transmitted frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Transmitted frames are received again.
    Loopback,
    /// Transmitted frames are collected in [`NetDevice::sent`]; received ones are injected.
    Channel,
}

/// Ways to break the virtio contract on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next transmit completion names a descriptor id outside the queue.
    TxIdOutOfRange,
    /// The next receive completion claims more bytes than the buffer has.
    RxLengthTooLarge,
    /// The device sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.1), raises a configuration
    /// interrupt and stops processing every queue until the driver resets it.
    NeedsReset,
}

/// What the device state looks like to the driver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterState {
    /// Promiscuous.
    pub promisc: bool,
    /// All multicast.
    pub allmulti: bool,
    /// No broadcast.
    pub nobcast: bool,
    /// Multicast table.
    pub multicast: Vec<[u8; 6]>,
    /// VLANs added.
    pub vlans: Vec<u16>,
    /// Guest offloads set by command.
    pub guest_offloads: Option<u64>,
    /// Announce acknowledgements.
    pub announce_acks: u32,
    /// Queue pairs set by command.
    pub pairs: Option<u16>,
}

/// The in-process device.
pub struct NetDevice {
    /// Registers (shared with the driver under test).
    pub model: std::sync::Arc<VirtioPciModel>,
    mac: [u8; 6],
    queues: Vec<Option<DevQueue>>,
    backend: Backend,
    /// Frames to deliver to receive queue 0 (header, frame).
    pub to_receive: VecDeque<(NetHeader, Vec<u8>)>,
    /// Frames transmitted (as they would go on the wire), in order.
    pub sent: Vec<Vec<u8>>,
    /// Queue indices (and u16::MAX for configuration) that raised an interrupt.
    pub interrupts: Vec<u16>,
    /// Filter state set through the control queue.
    pub filter: FilterState,
    /// Frames the device dropped by its filter.
    pub filtered: u64,
    fault: Option<Fault>,
    /// The device takes no transmit chain while set (a backend that stopped draining, as QEMU
    /// does when its tap cannot take more): chains stay in flight.
    pub tx_hold: bool,
    /// Control commands the device takes and never answers (a device whose control queue
    /// stopped: the chains stay the device's, no used entry, no interrupt), counted down.
    pub swallow_control: u32,
    /// The transmit queue broke its contract (`Fault::TxIdOutOfRange`): nothing more is taken
    /// from it until a reset.
    tx_broken: bool,
    pcap: Option<crate::pcap::PcapWriter<Vec<u8>>>,
    /// Resets seen when the queues were last built.
    built_at_reset: u32,
}

/// Default offered features: what QEMU's virtio-net with a vnet_hdr tap offers, plus a few.
pub const DEFAULT_FEATURES: Features = Features::VERSION_1
    .union(Features::RING_EVENT_IDX)
    .union(Features::RING_INDIRECT_DESC)
    .union(Features::NET_MAC)
    .union(Features::NET_STATUS)
    .union(Features::NET_MTU)
    .union(Features::NET_CSUM)
    .union(Features::NET_GUEST_CSUM)
    .union(Features::NET_HOST_TSO4)
    .union(Features::NET_HOST_TSO6)
    .union(Features::NET_HOST_ECN)
    .union(Features::NET_GUEST_TSO4)
    .union(Features::NET_GUEST_TSO6)
    .union(Features::NET_GUEST_ECN)
    .union(Features::NET_MRG_RXBUF)
    .union(Features::NET_CTRL_VQ)
    .union(Features::NET_CTRL_RX)
    .union(Features::NET_CTRL_RX_EXTRA)
    .union(Features::NET_CTRL_VLAN)
    .union(Features::NET_CTRL_MAC_ADDR)
    .union(Features::NET_CTRL_GUEST_OFFLOADS)
    .union(Features::NET_GUEST_ANNOUNCE);

impl NetDevice {
    /// A device offering `features`, with MAC `mac`, link up, MTU `mtu`, one queue pair and a
    /// control queue (queue 2), queues of at most 256 entries.
    pub fn new(features: Features, mac: [u8; 6], mtu: u16, backend: Backend) -> Self {
        let mut cfg = vec![0u8; 24];
        cfg[..6].copy_from_slice(&mac);
        cfg[6..8].copy_from_slice(&1u16.to_le_bytes());
        cfg[8..10].copy_from_slice(&1u16.to_le_bytes());
        cfg[10..12].copy_from_slice(&mtu.to_le_bytes());
        Self {
            model: std::sync::Arc::new(VirtioPciModel::new(features.bits(), 3, 256, 4, cfg)),
            mac,
            queues: Vec::new(),
            backend,
            to_receive: VecDeque::new(),
            sent: Vec::new(),
            interrupts: Vec::new(),
            filter: FilterState::default(),
            filtered: 0,
            fault: None,
            tx_hold: false,
            swallow_control: 0,
            tx_broken: false,
            pcap: None,
            built_at_reset: 0,
        }
    }

    /// Sets the link state (a configuration change with its interrupt).
    pub fn set_link(&mut self, up: bool) {
        self.model.change_config(6, &u16::from(up).to_le_bytes());
        self.interrupts.push(u16::MAX);
    }

    /// Breaks the contract at the next opportunity.
    pub fn inject_fault(&mut self, f: Fault) {
        if f == Fault::NeedsReset {
            self.model.with(|s| {
                s.status |= 0x40;
                s.isr |= 2;
            });
            self.interrupts.push(u16::MAX);
            return;
        }
        self.fault = Some(f);
    }

    /// The MAC address the device filters unicast by (its own, or the one MAC_ADDR_SET gave).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether the device has set DEVICE_NEEDS_RESET (it processes nothing until a reset).
    pub fn needs_reset(&self) -> bool {
        self.model.with(|s| s.status & 0x40 != 0)
    }

    /// Starts recording every frame (sent and delivered) for a pcap file.
    pub fn record_pcap(&mut self) {
        self.pcap = crate::pcap::PcapWriter::new(Vec::new()).ok();
    }

    /// The pcap recording so far.
    pub fn pcap(&self) -> Option<&[u8]> {
        self.pcap.as_ref().map(|p| p.get_ref().as_slice())
    }

    fn record(&mut self, frame: &[u8]) {
        if let Some(p) = &mut self.pcap {
            let _ = p.write(frame);
        }
    }

    fn negotiated(&self) -> Features {
        Features::from_bits_retain(self.model.with(|s| s.driver_features))
    }

    fn build_queues(&mut self, ram: &GuestRam) {
        let f = self.negotiated();
        let regs = self.model.with(|s| s.queues.clone());
        self.queues = regs
            .iter()
            .map(|q| {
                (q.enable == 1).then(|| {
                    let a = QueueAddresses {
                        desc: q.desc,
                        driver: q.driver,
                        device: q.device,
                    };
                    let ev = f.contains(Features::RING_EVENT_IDX);
                    if f.contains(Features::RING_PACKED) {
                        DevQueue::Packed(PackedDevice::new(q.size, a, ev))
                    } else {
                        DevQueue::Split(SplitDevice::new(ram, q.size, a, ev))
                    }
                })
            })
            .collect();
    }

    /// Whether the driver set DRIVER_OK (and has not reset since).
    pub fn running(&self) -> bool {
        self.model.with(|s| s.status & 4 != 0)
    }

    /// Runs the device once. Returns how many frames it moved.
    pub fn step(&mut self, ram: &GuestRam) -> usize {
        let resets = self.model.with(|s| s.resets);
        if !self.running() || resets != self.built_at_reset {
            // A reset forgets the queues; they are built again from the registers at DRIVER_OK.
            self.queues.clear();
            self.tx_broken = false;
            self.built_at_reset = resets;
            if !self.running() {
                return 0;
            }
        }
        if self.needs_reset() {
            return 0;
        }
        if self.queues.is_empty() {
            self.build_queues(ram);
        }
        self.control(ram);
        let moved = self.transmit(ram);
        moved + self.receive(ram)
    }

    fn control(&mut self, ram: &GuestRam) {
        let Some(Some(q)) = self.queues.get_mut(2) else {
            return;
        };
        while let Some(c) = q.pop(ram) {
            if self.swallow_control > 0 {
                self.swallow_control -= 1;
                continue;
            }
            let cmd = SplitDevice::gather(ram, &c);
            let ok = match (cmd.first(), cmd.get(1), &cmd[2.min(cmd.len())..]) {
                (Some(0), Some(0), [v]) => {
                    self.filter.promisc = *v != 0;
                    true
                }
                (Some(0), Some(1), [v]) => {
                    self.filter.allmulti = *v != 0;
                    true
                }
                (Some(0), Some(5), [v]) => {
                    self.filter.nobcast = *v != 0;
                    true
                }
                (Some(0), Some(2..=4), [_]) => true,
                (Some(1), Some(0), rest) if rest.len() >= 8 => {
                    let nu = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                    let m = &rest[4 + 6 * nu..];
                    let nm = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
                    self.filter.multicast = m[4..4 + 6 * nm]
                        .chunks(6)
                        .map(|c| c.try_into().unwrap())
                        .collect();
                    true
                }
                (Some(1), Some(1), rest) if rest.len() == 6 => {
                    self.mac.copy_from_slice(rest);
                    true
                }
                (Some(2), Some(0), rest) if rest.len() == 2 => {
                    self.filter
                        .vlans
                        .push(u16::from_le_bytes([rest[0], rest[1]]));
                    true
                }
                (Some(2), Some(1), rest) if rest.len() == 2 => {
                    let v = u16::from_le_bytes([rest[0], rest[1]]);
                    self.filter.vlans.retain(|x| *x != v);
                    true
                }
                (Some(3), Some(0), []) => {
                    self.filter.announce_acks += 1;
                    true
                }
                (Some(4), Some(0), rest) if rest.len() == 2 => {
                    self.filter.pairs = Some(u16::from_le_bytes([rest[0], rest[1]]));
                    true
                }
                (Some(5), Some(0), rest) if rest.len() == 8 => {
                    self.filter.guest_offloads = Some(u64::from_le_bytes(rest.try_into().unwrap()));
                    true
                }
                _ => false,
            };
            fill(ram.arena(), &c, &[u8::from(!ok)]);
            if q.complete(ram, &c, 1) {
                self.interrupts.push(2);
            }
        }
    }

    fn accepts(&self, frame: &[u8]) -> bool {
        let dst: [u8; 6] = frame[..6].try_into().unwrap();
        if self.filter.promisc {
            return true;
        }
        if dst == [0xff; 6] {
            return !self.filter.nobcast;
        }
        if dst[0] & 1 != 0 {
            return self.filter.allmulti || self.filter.multicast.contains(&dst);
        }
        dst == self.mac
    }

    /// Turns a transmitted (header, frame) into wire frames: checksum completed, GSO segmented.
    fn to_wire(hdr: &NetHeader, mut frame: Vec<u8>) -> Vec<Vec<u8>> {
        if hdr.gso_type & !gso::ECN != gso::NONE {
            let Ok(seg) = offload::segment::Segmenter::new(&frame, u32::from(hdr.gso_size)) else {
                return Vec::new();
            };
            let mut out = vec![0u8; 70_000];
            return (0..seg.count())
                .filter_map(|i| {
                    let n = seg
                        .write(i, &mut out, offload::segment::L4Checksum::Full)
                        .ok()?;
                    Some(out[..n].to_vec())
                })
                .collect();
        }
        if hdr.flags & hdr_flags::NEEDS_CSUM != 0 {
            let start = usize::from(hdr.csum_start);
            let at = start + usize::from(hdr.csum_offset);
            if at + 2 <= frame.len() {
                let mut c = offload::checksum::Checksum::new();
                c.add_bytes(&frame[start..]);
                frame[at..at + 2].copy_from_slice(&c.finish().to_be_bytes());
            }
        }
        vec![frame]
    }

    fn transmit(&mut self, ram: &GuestRam) -> usize {
        let Some(Some(_)) = self.queues.get(1) else {
            return 0;
        };
        if self.tx_hold || self.tx_broken {
            return 0;
        }
        let guest_tso = self.negotiated().contains(Features::NET_GUEST_TSO4);
        let mut moved = 0;
        while let Some(Some(q)) = self.queues.get_mut(1) {
            let Some(c) = q.pop(ram) else { break };
            let bytes = SplitDevice::gather(ram, &c);
            let mut id_fault = false;
            if self.fault == Some(Fault::TxIdOutOfRange) {
                self.fault = None;
                id_fault = true;
            }
            if id_fault {
                // Write a used element naming id 0xffff and publish it.
                if let Some(Some(DevQueue::Split(d))) = self.queues.get_mut(1) {
                    let used = virtio_queue::QueueT::used_ring(d.queue());
                    let size = u64::from(virtio_queue::QueueT::size(d.queue()));
                    let idx = virtio_queue::QueueT::next_used(d.queue());
                    let e = used + 4 + 8 * (u64::from(idx) % size);
                    ram.arena().write(e, &0xffffu32.to_le_bytes());
                    ram.arena()
                        .write(used + 2, &idx.wrapping_add(1).to_le_bytes());
                }
                self.interrupts.push(1);
                // A device that broke its contract is done with the queue (it would otherwise
                // complete the next chain in the same used slot, hiding the fault).
                self.tx_broken = true;
                return moved;
            }
            let Some(hdr) = NetHeader::read(&bytes) else {
                continue;
            };
            let frame = bytes[NetHeader::SIZE..].to_vec();
            let q = self.queues[1].as_mut().unwrap();
            if q.complete(ram, &c, 0) {
                self.interrupts.push(1);
            }
            moved += 1;
            if self.backend == Backend::Loopback
                && guest_tso
                && hdr.gso_type & !gso::ECN != gso::NONE
            {
                // Loop a GSO frame back whole, as coalesced receive (checksum already valid).
                let mut wire = Self::to_wire(
                    &NetHeader {
                        gso_type: gso::NONE,
                        ..hdr
                    },
                    frame.clone(),
                );
                let f = wire.pop().unwrap_or(frame);
                self.record(&f);
                self.sent.push(f.clone());
                let rx = NetHeader {
                    flags: hdr_flags::DATA_VALID,
                    gso_type: hdr.gso_type,
                    gso_size: hdr.gso_size,
                    ..Default::default()
                };
                self.to_receive.push_back((rx, f));
                continue;
            }
            for f in Self::to_wire(&hdr, frame) {
                self.record(&f);
                if self.backend == Backend::Loopback {
                    let rx = NetHeader {
                        flags: hdr_flags::DATA_VALID,
                        ..Default::default()
                    };
                    self.to_receive.push_back((rx, f.clone()));
                }
                self.sent.push(f);
            }
        }
        moved
    }

    fn receive(&mut self, ram: &GuestRam) -> usize {
        let mrg = self.negotiated().contains(Features::NET_MRG_RXBUF);
        let mut moved = 0;
        while let Some((hdr, frame)) = self.to_receive.front().cloned() {
            if !self.accepts(&frame) {
                self.to_receive.pop_front();
                self.filtered += 1;
                continue;
            }
            let Some(Some(q)) = self.queues.get_mut(0) else {
                break;
            };
            let mut bytes = vec![0u8; NetHeader::SIZE];
            bytes.extend_from_slice(&frame);
            // Take buffers until the frame fits (mergeable) or one buffer (not).
            let mut chains = Vec::new();
            let mut room = 0usize;
            while room < bytes.len() {
                match q.pop(ram) {
                    Some(c) => {
                        room += c.writable_len() as usize;
                        chains.push(c);
                        if !mrg {
                            break;
                        }
                    }
                    None => break,
                }
            }
            if room < bytes.len() {
                if chains.is_empty() {
                    break; // no buffers: try again later (the chains taken are lost otherwise)
                }
                assert!(
                    !mrg || chains.is_empty(),
                    "partial mergeable delivery in the model"
                );
                // Not mergeable and too big: drop, returning the buffer empty.
                for c in &chains {
                    q.complete(ram, c, 0);
                }
                self.to_receive.pop_front();
                continue;
            }
            let mut h = hdr;
            h.num_buffers = chains.len() as u16;
            h.write(&mut bytes).unwrap();
            let mut at = 0;
            let mut irq = false;
            for c in &chains {
                let n = fill(ram.arena(), c, &bytes[at..]);
                at += n as usize;
                let mut len = n;
                if self.fault == Some(Fault::RxLengthTooLarge) {
                    self.fault = None;
                    len = c.writable_len() + 1;
                }
                irq |= q.complete(ram, c, len);
            }
            if irq {
                self.interrupts.push(0);
            }
            self.to_receive.pop_front();
            self.record(&frame);
            moved += 1;
        }
        moved
    }
}
