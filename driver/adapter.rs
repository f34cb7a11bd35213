//! The adapter: device bring-up by a stated feature policy ([`crate::config::wanted_features`]),
//! queue pairs and the control queue, device configuration, reset and restore, surprise removal,
//! link state, and the control-queue commands behind receive filtering, MAC address, VLANs and
//! guest offloads — each submitted asynchronously and completed by interrupt or poll, so the
//! caller bounds the wait (no spinning under a lock).

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use alloc::vec::Vec;

use offload::filter::{PacketFilter, RxFilter};
use virtio::Features;
use virtio::ctrl::{ControlQueue, CtrlError, RxMode};
use virtio::hal::{Bars, Dma, PciConfig};
use virtio::net::{self, NetConfig};
use virtio::pci::{Notifier, Transport, TransportError};

use crate::vectors::Vectors;
use virtio::queue::{Layout, QueueConfig, QueueError, VirtQueue};

use crate::config::{Capabilities, UserSettings, derive, wanted_features};
use crate::devstate::{DeviceControl, RssConfig, Steering};
use crate::events::{Event, EventLog, EventSink};
use crate::rss::{RssError, RssSettings};

/// Ticks of the control watchdog ([`Adapter::control_tick`]) a pending control command may
/// go unanswered before it is given up on. The glue ticks every 10 ms while a command is
/// pending (a WDF timer, so a device that raises no interrupt is still caught), which makes
/// this at least five seconds: a device answers a command at once (QEMU completes it during
/// the kick), but a VMM's main loop can stall for a second or more (migration, its global
/// lock), and the timeout ends in a device reset. Ticks, not elapsed time: a paused VM ages a
/// command by one tick. Polls on the control queue's interrupt ([`Adapter::poll_control`]) complete commands
/// but do not age them: how often they run says nothing about the time that passed. A command
/// that times out is counted ([`Adapter::control_timeouts`]), reported
/// ([`Event::ControlTimeout`]), and the control queue is marked broken until the next device
/// reset — the command's descriptors and buffer still belong to the device, which may write
/// them at any time, so they cannot be reused. [`Adapter::restore`] resets the queue and sends
/// the wanted state again.
pub const CONTROL_TIMEOUT_TICKS: u32 = 500;

/// Bring-up failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterError {
    /// The transport failed (missing capability, removal, rejected features, …).
    Transport(TransportError),
    /// The device configuration is invalid.
    Config(virtio::net::ConfigError),
    /// A virtqueue could not be created.
    Queue(QueueError),
    /// The control queue could not be created.
    Control(CtrlError),
    /// The pool could not supply the adapter's queue tables.
    OutOfMemory,
}

impl From<TransportError> for AdapterError {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}
impl From<QueueError> for AdapterError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

/// How to bring the device up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BringUp {
    /// Polls of the status register while waiting for a reset.
    pub reset_polls: u32,
    /// Largest virtqueue size to use (the device may offer less).
    pub max_queue_size: u16,
    /// Queue pairs to use (bounded by the device's maximum).
    pub queue_pairs: u16,
    /// MSI-X messages granted (0: none — a line-based interrupt, or polling in tests). The
    /// interrupt layout ([`Vectors`]) and, with it, the pair count follow from it.
    pub msix_messages: u16,
    /// Address for the adapter when the device has none and the user set none.
    pub random_mac: [u8; 6],
    /// Run more than one pair only when the device steers by RSS (VIRTIO_NET_F_RSS). The
    /// Windows driver sets it: NetAdapterCx spreads receive traffic over queues only by RSS, and
    /// pairs the OS never opens must not receive (the device would fill queues nobody drains).
    pub pairs_need_rss: bool,
}

/// One queue's virtqueue and where to kick it, while no engine holds it.
#[derive(Debug)]
pub struct QueueSlot {
    /// The virtqueue.
    pub vq: VirtQueue,
    /// Its notify register.
    pub notifier: Notifier,
}

/// A brought-up virtio-net device.
pub struct Adapter<B> {
    transport: Transport<B>,
    features: Features,
    config: NetConfig,
    caps: Capabilities,
    pairs: u16,
    /// The interrupt layout, made with the pair count (programmed at bring-up and restore).
    vectors: Vectors,
    /// `BringUp::pairs_need_rss`: without the OS's RSS, everything is received on pair 0.
    pairs_need_rss: bool,
    rx: Vec<Option<QueueSlot>>,
    tx: Vec<Option<QueueSlot>>,
    rx_notifiers: Vec<Notifier>,
    tx_notifiers: Vec<Notifier>,
    ctrl: Option<(ControlQueue, Notifier)>,
    /// What the device's control state should be, and what it acknowledged.
    control: DeviceControl,
    command_errors: u32,
    /// Polls of the pending control command so far.
    control_ticks: u32,
    /// Control commands that timed out (since bring-up).
    control_timeouts: u32,
    /// The control queue timed out and waits for a reset.
    control_broken: bool,
    link_up: bool,
    events: EventLog,
}

impl<B> core::fmt::Debug for Adapter<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Adapter")
            .field("features", &self.features)
            .field("pairs", &self.pairs)
            .field("link_up", &self.link_up)
            .finish()
    }
}

/// Progress of the control command queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlProgress {
    /// Commands are still running; call [`Adapter::poll_control`] again (on the control queue's
    /// interrupt, or after a short wait).
    Pending,
    /// Everything queued has completed; `errors` commands were refused or failed.
    Idle {
        /// Failed commands since the last idle report.
        errors: u32,
    },
}

impl<B: Bars> Adapter<B> {
    /// Brings the device up: reset, ACKNOWLEDGE|DRIVER, feature negotiation, configuration,
    /// virtqueues for every pair and the control queue, vectors, DRIVER_OK.
    pub fn start(
        cfg: &impl PciConfig,
        bars: B,
        dma: &impl Dma,
        user: &UserSettings,
        plan: &BringUp,
    ) -> Result<Self, AdapterError> {
        let transport = Transport::probe(cfg, bars)?;
        transport.reset(plan.reset_polls)?;
        transport.acknowledge();
        let offered = transport.device_features();
        let mut features = transport.negotiate(wanted_features(offered, user))?;
        let mut config = NetConfig::read(&transport, features).map_err(AdapterError::Config)?;
        let multi_negotiated = features.intersects(Features::NET_MQ | Features::NET_RSS);
        if multi_negotiated
            && features.contains(Features::NET_CTRL_VQ)
            && net::ctrl_queue_index(config.max_queue_pairs.unwrap_or(1)).is_none()
        {
            // max_virtqueue_pairs = 0x8000 (the spec's maximum) puts the control queue at
            // 0x10000, which queue_select cannot name: refuse multi-queue (negotiate again
            // without MQ and RSS, after a reset) so the control queue is queue 2 and one pair
            // runs. Restore negotiates the same reduced set.
            transport.reset(plan.reset_polls)?;
            transport.acknowledge();
            let wanted =
                wanted_features(offered, user).difference(Features::NET_MQ | Features::NET_RSS);
            features = transport.negotiate(wanted)?;
            config = NetConfig::read(&transport, features).map_err(AdapterError::Config)?;
        }
        let caps = derive(features, &config, user, plan.random_mac);
        let max_pairs = config.max_queue_pairs.unwrap_or(1).max(1);
        let multi = features.intersects(Features::NET_MQ | Features::NET_RSS)
            && (!plan.pairs_need_rss || features.contains(Features::NET_RSS));
        let wanted = if multi {
            plan.queue_pairs.clamp(1, max_pairs)
        } else {
            1
        };
        // One layout, from the final pair count: a power of two the granted messages carry.
        let vectors = Vectors::new(plan.msix_messages, wanted);
        let pairs = vectors.pairs();
        let mut a = Self {
            transport,
            features,
            config,
            caps,
            pairs,
            vectors,
            pairs_need_rss: plan.pairs_need_rss,
            rx: Vec::new(),
            tx: Vec::new(),
            rx_notifiers: Vec::new(),
            tx_notifiers: Vec::new(),
            ctrl: None,
            control: DeviceControl::new(features),
            command_errors: 0,
            control_ticks: 0,
            control_timeouts: 0,
            control_broken: false,
            link_up: config.link_up(),
            events: EventLog::default(),
        };
        if let Err(e) = a.setup_queues(dma, plan, max_pairs) {
            a.transport.fail();
            a.release_queues(dma);
            return Err(e);
        }
        if let Err(e) = a.transport.set_config_vector(vectors.config()) {
            // Every queue exists by now: give their memory back too (the device never got
            // DRIVER_OK, and FAILED tells it the driver gave up).
            a.transport.fail();
            a.release_queues(dma);
            return Err(e.into());
        }
        a.transport.driver_ok();
        a.events.push(Event::BringUp {
            offered: offered.bits(),
            negotiated: features.bits(),
            queue_pairs: pairs,
            max_queue_pairs: max_pairs,
            msix: vectors.msix(),
        });
        a.events.push(Event::Capabilities(caps));
        if let Some(st) = a.default_steering() {
            a.control.want_steering(st);
        }
        Ok(a)
    }

    fn queue_config(&self, index: u16, plan: &BringUp) -> Result<QueueConfig, AdapterError> {
        let max = self.transport.queue_max_size(index);
        if max == 0 {
            return Err(AdapterError::Transport(TransportError::QueueUnavailable(
                index,
            )));
        }
        let packed = self.features.contains(Features::RING_PACKED);
        let mut size = max.min(plan.max_queue_size).max(1);
        if !packed {
            // Split queues are powers of two.
            // The largest power of two <= size (size >= 1: leading_zeros <= 15).
            size = 1 << 15u32.saturating_sub(size.leading_zeros());
        }
        Ok(QueueConfig {
            size,
            layout: if packed {
                Layout::Packed
            } else {
                Layout::Split
            },
            event_idx: self.features.contains(Features::RING_EVENT_IDX),
            max_indirect: if self.features.contains(Features::RING_INDIRECT_DESC) {
                crate::txqueue::MAX_SEGMENTS as u16
            } else {
                0
            },
        })
    }

    fn setup_queues(
        &mut self,
        dma: &impl Dma,
        plan: &BringUp,
        max_pairs: u16,
    ) -> Result<(), AdapterError> {
        let vectors = self.vectors;
        // Room for every pair up front: the pushes below never allocate.
        let n = usize::from(self.pairs);
        for v in [&mut self.rx, &mut self.tx] {
            v.try_reserve_exact(n)
                .map_err(|_| AdapterError::OutOfMemory)?;
        }
        for v in [&mut self.rx_notifiers, &mut self.tx_notifiers] {
            v.try_reserve_exact(n)
                .map_err(|_| AdapterError::OutOfMemory)?;
        }
        for pair in 0..self.pairs {
            for (index, is_rx) in [
                (net::rx_queue_index(pair), true),
                (net::tx_queue_index(pair), false),
            ] {
                let qc = self.queue_config(index, plan)?;
                let vq = VirtQueue::new(dma, qc)?;
                let notifier = match self.transport.setup_queue(
                    index,
                    qc.size,
                    vq.addresses(),
                    vectors.queue(index),
                ) {
                    Ok(n) => n,
                    Err(e) => {
                        vq.free(dma);
                        return Err(e.into());
                    }
                };
                let slot = Some(QueueSlot { vq, notifier });
                if is_rx {
                    self.rx.push(slot);
                    self.rx_notifiers.push(notifier);
                } else {
                    self.tx.push(slot);
                    self.tx_notifiers.push(notifier);
                }
            }
        }
        if self.features.contains(Features::NET_CTRL_VQ) {
            // The control queue follows every possible pair when MQ or RSS is negotiated.
            let multi = self
                .features
                .intersects(Features::NET_MQ | Features::NET_RSS);
            // Checked (`start` renegotiates when it would not fit): never a wrapped index that
            // would program a receive queue's registers with the control queue's ring.
            let index = net::ctrl_queue_index(if multi { max_pairs } else { 1 }).ok_or(
                AdapterError::Config(virtio::net::ConfigError::Invalid(
                    "control queue index beyond 0xffff",
                )),
            )?;
            let qc = QueueConfig {
                max_indirect: 0,
                ..self.queue_config(index, plan)?
            };
            let qc = QueueConfig {
                size: qc.size.min(64),
                ..qc
            };
            let ctrl = ControlQueue::new(dma, qc, self.features).map_err(AdapterError::Control)?;
            let mut ctrl = ctrl;
            let addrs = ctrl.queue().addresses();
            match self
                .transport
                .setup_queue(index, qc.size, addrs, vectors.control())
            {
                Ok(n) => self.ctrl = Some((ctrl, n)),
                Err(e) => {
                    ctrl.free(dma);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn release_queues(&mut self, dma: &impl Dma) {
        for slot in self.rx.drain(..).chain(self.tx.drain(..)).flatten() {
            slot.vq.free(dma);
        }
        if let Some((c, _)) = self.ctrl.take() {
            c.free(dma);
        }
    }

    /// Resets the device and frees every queue the adapter still holds (engines must have
    /// handed theirs back). Used on D0 exit, removal, and before a restart.
    pub fn stop(mut self, dma: &impl Dma, reset_polls: u32) -> Result<(), TransportError> {
        let r = if self.transport.is_removed() {
            Ok(())
        } else {
            self.transport.reset(reset_polls)
        };
        self.release_queues(dma);
        r
    }

    /// Resets the device: it stops using every queue (no more DMA). First step of a recovery —
    /// on NEEDS_RESET, after a device fault, or on D0 exit: only after this may the engines call
    /// `abandon_in_flight` (which clears the rings the device could otherwise still write).
    pub fn reset_device(&mut self, plan: &BringUp) -> Result<(), TransportError> {
        self.events.push(Event::DeviceReset);
        self.transport.reset(plan.reset_polls)
    }

    /// Starts a reset without waiting for the device to acknowledge it, so the caller can wait
    /// at PASSIVE_LEVEL with its locks released, polling [`reset_done`](Self::reset_done).
    /// `Ok(true)`: acknowledged at once.
    pub fn begin_reset(&mut self) -> Result<bool, TransportError> {
        self.events.push(Event::DeviceReset);
        match self.transport.reset(1) {
            Ok(()) => Ok(true),
            Err(TransportError::ResetTimeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a reset begun with [`begin_reset`](Self::begin_reset) is done (status reads 0);
    /// an error if the device is gone.
    pub fn reset_done(&self) -> Result<bool, TransportError> {
        match self.transport.status() {
            0 => Ok(true),
            0xff if self.transport.is_removed() => Err(TransportError::SurpriseRemoved),
            _ => Ok(false),
        }
    }

    /// Restore after [`reset_device`](Self::reset_device) and the engines' `abandon_in_flight`:
    /// resets again (harmless), negotiates the same features (a device that no longer offers
    /// them is an error), and programs every queue again at the same ring memory.
    /// `engine_queues` are the virtqueues engines hold, with their queue index. Control commands
    /// are dropped; the pair count is sent again (the reset forgot it).
    pub fn restore(
        &mut self,
        plan: &BringUp,
        engine_queues: &[(u16, &VirtQueue)],
    ) -> Result<(), AdapterError> {
        let r = self.reprogram(plan, engine_queues);
        self.events.push(Event::Restored { ok: r.is_ok() });
        r
    }

    fn reprogram(
        &mut self,
        plan: &BringUp,
        engine_queues: &[(u16, &VirtQueue)],
    ) -> Result<(), AdapterError> {
        self.transport.reset(plan.reset_polls)?;
        self.transport.acknowledge();
        let again = self.transport.negotiate(self.features)?;
        if again != self.features {
            self.transport.fail();
            return Err(AdapterError::Transport(TransportError::FeaturesRejected));
        }
        self.config =
            NetConfig::read(&self.transport, self.features).map_err(AdapterError::Config)?;
        self.link_up = self.config.link_up();
        let vectors = self.vectors;
        for pair in 0..self.pairs {
            let (rxi, txi) = (net::rx_queue_index(pair), net::tx_queue_index(pair));
            for (index, slot) in [
                (rxi, self.rx.get_mut(usize::from(pair))),
                (txi, self.tx.get_mut(usize::from(pair))),
            ] {
                if let Some(Some(s)) = slot {
                    s.vq.reset(|_| {});
                    self.transport.setup_queue(
                        index,
                        s.vq.size(),
                        s.vq.addresses(),
                        vectors.queue(index),
                    )?;
                }
            }
        }
        for (index, vq) in engine_queues {
            self.transport
                .setup_queue(*index, vq.size(), vq.addresses(), vectors.queue(*index))?;
        }
        if let Some((ctrl, n)) = self.ctrl.as_mut() {
            ctrl.reset();
            self.control_broken = false;
            self.control_ticks = 0;
            let addrs = ctrl.queue().addresses();
            let size = ctrl.queue().size();
            let index = n.queue();
            *n = self
                .transport
                .setup_queue(index, size, addrs, vectors.control())?;
        }
        self.transport.set_config_vector(vectors.config())?;
        self.transport.driver_ok();
        // The reset forgot the filters, VLANs, offloads and steering: everything is sent again.
        self.control.device_reset();
        Ok(())
    }

    /// Negotiated features.
    pub const fn features(&self) -> Features {
        self.features
    }

    /// The device configuration read at bring-up (or at the last configuration change).
    pub const fn config(&self) -> &NetConfig {
        &self.config
    }

    /// What to declare to NetAdapterCx.
    pub const fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Queue pairs in use.
    pub const fn queue_pairs(&self) -> u16 {
        self.pairs
    }

    /// The interrupt layout programmed into the device (what the ISR and DPCs decode).
    pub const fn vectors(&self) -> Vectors {
        self.vectors
    }

    /// The transport (for the glue's interrupt handling).
    pub const fn transport(&self) -> &Transport<B> {
        &self.transport
    }

    /// Hands receive queue `pair`'s virtqueue to an engine (NetAdapterCx created the queue).
    pub fn take_rx(&mut self, pair: u16) -> Option<QueueSlot> {
        self.rx.get_mut(usize::from(pair))?.take()
    }

    /// Hands transmit queue `pair`'s virtqueue to an engine.
    pub fn take_tx(&mut self, pair: u16) -> Option<QueueSlot> {
        self.tx.get_mut(usize::from(pair))?.take()
    }

    /// Takes a virtqueue back when its engine is destroyed.
    pub fn give_back_rx(&mut self, pair: u16, slot: QueueSlot) {
        if let Some(s) = self.rx.get_mut(usize::from(pair)) {
            *s = Some(slot);
        }
    }

    /// Takes a virtqueue back when its engine is destroyed.
    pub fn give_back_tx(&mut self, pair: u16, slot: QueueSlot) {
        if let Some(s) = self.tx.get_mut(usize::from(pair)) {
            *s = Some(slot);
        }
    }

    /// Kicks receive queue `pair`.
    pub fn notify_rx(&self, pair: u16) {
        if let Some(n) = self.rx_notifiers.get(usize::from(pair)) {
            self.transport.notify(n);
        }
    }

    /// Kicks transmit queue `pair`.
    pub fn notify_tx(&self, pair: u16) {
        if let Some(n) = self.tx_notifiers.get(usize::from(pair)) {
            self.transport.notify(n);
        }
    }

    /// Whether the device is gone (reads return all-ones).
    pub fn is_removed(&self) -> bool {
        self.transport.is_removed()
    }

    /// Whether the device asks for a reset.
    pub fn needs_reset(&self) -> bool {
        self.transport.needs_reset()
    }

    /// Records an event the glue saw (a queue fault, surprise removal, counters on its timer),
    /// in order with the adapter's own.
    pub fn record(&mut self, e: Event) {
        self.events.push(e);
    }

    /// Hands the waiting events to `sink` (the TraceLogging provider), oldest first.
    pub fn drain_events(&mut self, sink: &mut impl EventSink) {
        self.events.drain(sink);
    }

    /// Events dropped because nobody drained them in time.
    pub const fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Current link state.
    pub const fn link_up(&self) -> bool {
        self.link_up
    }

    /// The configuration-change interrupt: re-reads the configuration; returns the new link
    /// state when it changed. An ANNOUNCE request is acknowledged (queued).
    pub fn config_changed(&mut self) -> Result<Option<bool>, AdapterError> {
        let c = NetConfig::read(&self.transport, self.features).map_err(AdapterError::Config)?;
        self.config = c;
        if c.status.is_some_and(|s| s & net::STATUS_ANNOUNCE != 0) {
            self.control.want_announce_ack();
        }
        let up = c.link_up();
        let changed = up != core::mem::replace(&mut self.link_up, up);
        if changed {
            self.events.push(Event::LinkChanged { up });
        }
        Ok(changed.then_some(up))
    }

    /// Queues the commands that make the device filter as `filter` says: promiscuous and
    /// all-multicast modes, the multicast table, broadcast, unicast; and the MAC address.
    /// Returns the software filter the RX engines must apply for what the device cannot do
    /// (`None`: the device filters everything itself).
    pub fn set_receive_filter(&mut self, filter: &RxFilter) -> Option<RxFilter> {
        let f = filter.filter.0;
        let has = |b| f & b != 0;
        if !self.features.contains(Features::NET_CTRL_RX) {
            // Without RX mode control the device delivers what it delivers: filter in software.
            return Some(filter.clone());
        }
        let c = &mut self.control;
        c.want_mode(RxMode::Promisc, has(PacketFilter::PROMISCUOUS));
        c.want_mode(RxMode::AllMulti, has(PacketFilter::ALL_MULTICAST));
        c.want_multicast(filter.multicast());
        let extra = self.features.contains(Features::NET_CTRL_RX_EXTRA);
        if extra {
            c.want_mode(RxMode::NoBcast, !has(PacketFilter::BROADCAST));
            c.want_mode(
                RxMode::NoMulti,
                !has(PacketFilter::MULTICAST | PacketFilter::ALL_MULTICAST),
            );
            c.want_mode(
                RxMode::NoUni,
                !has(PacketFilter::DIRECTED | PacketFilter::PROMISCUOUS),
            );
        }
        if self.features.contains(Features::NET_CTRL_MAC_ADDR) {
            c.want_mac(filter.mac);
        }
        // Without RX_EXTRA the device cannot drop broadcast or all unicast, and without
        // CTRL_VLAN it cannot filter VLANs (`set_vlan`): finish in software.
        let vlans_in_software =
            filter.has_vlans() && !self.features.contains(Features::NET_CTRL_VLAN);
        (!extra || vlans_in_software).then(|| filter.clone())
    }

    /// Queues a VLAN filter change (with CTRL_VLAN; otherwise the RX engines filter).
    pub fn set_vlan(&mut self, vid: u16, member: bool) -> bool {
        if self.features.contains(Features::NET_CTRL_VLAN) {
            self.control.want_vlan(vid, member);
            true
        } else {
            false
        }
    }

    /// Queues a change of the guest (RX) offloads the device may use: GUEST_CSUM and
    /// GUEST_TSO4/6 bits as negotiated, restricted to `rx_checksum` and `rsc` (what NetAdapterCx
    /// currently has enabled).
    pub fn set_guest_offloads(&mut self, rx_checksum: bool, rsc: bool) -> bool {
        if !self.features.contains(Features::NET_CTRL_GUEST_OFFLOADS) {
            return false;
        }
        let mut bits = 0u64;
        if rx_checksum {
            bits |= Features::NET_GUEST_CSUM.bits();
            if rsc {
                let tso =
                    Features::NET_GUEST_TSO4 | Features::NET_GUEST_TSO6 | Features::NET_GUEST_ECN;
                bits |= self.features.bits() & tso.bits();
            }
        }
        self.control.want_offloads(bits & self.features.bits());
        true
    }

    /// What makes the device use every pair after DRIVER_OK (it starts with one): with
    /// `pairs_need_rss`, every transmit queue live and every received packet on pair 0 until the
    /// OS enables RSS (it may never open the other receive queues); else VQ_PAIRS_SET.
    fn default_steering(&self) -> Option<Steering> {
        if self.pairs <= 1 {
            None
        } else if self.pairs_need_rss {
            Some(Steering::Rss(RssConfig::to_pair0(self.pairs)))
        } else if self.features.contains(Features::NET_MQ) {
            Some(Steering::Pairs(self.pairs))
        } else {
            None
        }
    }

    /// Makes the device steer by RSS (VIRTIO_NET_CTRL_MQ_RSS_CONFIG) after checking the
    /// settings against the device's limits, or — `None` — turns the OS's RSS off again:
    /// everything to pair 0 with `pairs_need_rss` (or without MQ), else the device's own
    /// spreading (VQ_PAIRS_SET). Sent by [`poll_control`](Self::poll_control).
    pub fn set_rss(&mut self, settings: Option<&RssSettings>) -> Result<(), RssError> {
        if !self.features.contains(Features::NET_RSS) {
            return Err(RssError::NotNegotiated);
        }
        let Some(s) = settings else {
            let off = if self.features.contains(Features::NET_MQ) && !self.pairs_need_rss {
                Steering::Pairs(self.pairs)
            } else {
                Steering::Rss(RssConfig::to_pair0(self.pairs))
            };
            self.control.want_steering(off);
            return Ok(());
        };
        let hash_types = crate::rss::check(
            s,
            self.pairs,
            self.config.rss_max_indirection_table_length.unwrap_or(0),
            self.config.rss_max_key_size.unwrap_or(0),
            self.config.supported_hash_types.unwrap_or(0),
        )?;
        let mut table = [0u16; crate::rss::TABLE_SIZE];
        for (d, q) in table.iter_mut().zip(s.table()) {
            *d = *q;
        }
        self.control.want_steering(Steering::Rss(RssConfig {
            hash_types,
            table,
            len: s.len() as u16,
            unclassified: s.unclassified,
            max_tx: self.pairs,
            key: s.key,
        }));
        Ok(())
    }

    /// Runs the control command queue: completes the running command if the device answered,
    /// then submits the next (kicking the control queue). Call on the control queue's interrupt
    /// or after a short wait; never blocks.
    pub fn poll_control(&mut self) -> ControlProgress {
        self.run_control(false)
    }

    /// One tick of the control watchdog: as [`Adapter::poll_control`], and a command still
    /// unanswered ages by one tick; at [`CONTROL_TIMEOUT_TICKS`] it times out. The glue calls
    /// this from a timer every 10 ms while [`Adapter::control_busy`]; never blocks.
    pub fn control_tick(&mut self) -> ControlProgress {
        self.run_control(true)
    }

    fn run_control(&mut self, tick: bool) -> ControlProgress {
        let Some((ctrl, notifier)) = self.ctrl.as_mut() else {
            // No control queue: nothing can be sent (the software filter covers the rest).
            return ControlProgress::Idle { errors: 0 };
        };
        if self.control_broken {
            return ControlProgress::Idle {
                errors: core::mem::take(&mut self.command_errors),
            };
        }
        if ctrl.is_pending() {
            match ctrl.poll() {
                None => {
                    if tick {
                        self.control_ticks = self.control_ticks.saturating_add(1);
                    }
                    if self.control_ticks < CONTROL_TIMEOUT_TICKS {
                        return ControlProgress::Pending;
                    }
                    // Timed out: the queue is broken until a reset (see CONTROL_TIMEOUT_TICKS);
                    // what was wanted stays wanted and is sent again after `restore`.
                    self.control_broken = true;
                    self.control_timeouts = self.control_timeouts.saturating_add(1);
                    self.events.push(Event::ControlTimeout {
                        ticks: self.control_ticks,
                    });
                    let errors = core::mem::take(&mut self.command_errors).saturating_add(1);
                    self.events
                        .push(Event::ControlCommandsFailed { count: errors });
                    return ControlProgress::Idle { errors };
                }
                Some(Ok(())) => self.control.completed(true),
                Some(Err(_)) => {
                    self.command_errors = self.command_errors.wrapping_add(1);
                    self.control.completed(false);
                }
            }
        }
        while let Some(r) = self.control.send_next(|c| ctrl.submit(c)) {
            match r {
                Ok(kick) => {
                    self.control_ticks = 0;
                    if kick {
                        self.transport.notify(notifier);
                    }
                    return ControlProgress::Pending;
                }
                Err(_) => self.command_errors = self.command_errors.wrapping_add(1),
            }
        }
        let errors = core::mem::take(&mut self.command_errors);
        if errors > 0 {
            self.events
                .push(Event::ControlCommandsFailed { count: errors });
        }
        ControlProgress::Idle { errors }
    }

    /// Whether control commands are queued or running (false while the queue is broken:
    /// nothing runs until a reset).
    pub fn control_busy(&self) -> bool {
        self.ctrl.is_some() && !self.control_broken && self.control.busy()
    }

    /// Whether a control command timed out and the queue waits for a device reset
    /// ([`CONTROL_TIMEOUT_TICKS`]).
    pub const fn control_broken(&self) -> bool {
        self.control_broken
    }

    /// Control commands that timed out since bring-up.
    pub const fn control_timeouts(&self) -> u32 {
        self.control_timeouts
    }
}
