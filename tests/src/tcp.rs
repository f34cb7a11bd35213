//! A minimal TCP sender on the guest side, for streams to the Linux kernel through the driver
//! core and QEMU's tap backend: handshake, data in 64 KiB LSO packets with checksum offload
//! requested (the OS side's usual request), window-limited, go-back-N on timeout, FIN.

use std::time::{Duration, Instant};

use netring::{NetPacketChecksum, NetPacketGso, TxChecksumAction as A};

use crate::lab::QemuMachine;
use crate::os_tx::TxFrame;

/// The addresses of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    /// IPv4 (source, destination).
    V4([u8; 4], [u8; 4]),
    /// IPv6 (source, destination).
    V6([u8; 16], [u8; 16]),
}

/// TCP flags.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 1;
    /// SYN.
    pub const SYN: u8 = 2;
    /// RST.
    pub const RST: u8 = 4;
    /// PSH.
    pub const PSH: u8 = 8;
    /// ACK.
    pub const ACK: u8 = 16;
}

/// One connection, seen from the guest.
#[derive(Debug, Clone)]
pub struct TcpFlow {
    /// Guest MAC.
    pub guest_mac: [u8; 6],
    /// Next hop MAC (the tap).
    pub peer_mac: [u8; 6],
    /// Addresses.
    pub ip: Ip,
    /// Guest port.
    pub sport: u16,
    /// Peer port.
    pub dport: u16,
    iss: u32,
    snd_una: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    peer_wnd: u32,
    peer_wscale: u8,
    ident: u16,
    peer_mss: u32,
    /// Segments the peer acknowledged (ACK frames seen).
    pub acks_seen: u64,
}

/// How the guest's OS side sends a batch of a stream: what it asks the driver to offload. The
/// OS changes this when offloads are turned off and on (NetAdapterCx tells the driver through its
/// offload callbacks and then stops or starts asking, packet by packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// 64 KiB LSO packets with the TCP (and IPv4 header) checksum offloaded — the usual request.
    Lso,
    /// MSS-sized packets with the checksums offloaded: LSO off.
    Checksum,
    /// MSS-sized packets whose checksums the OS computed itself: checksum offload (and with it
    /// LSO) off.
    Software,
}

/// What [`TcpFlow::recv_stream`] received.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The stream's bytes, in order.
    pub data: Vec<u8>,
    /// Frames of the flow the driver indicated.
    pub frames: u64,
    /// Of those, coalesced packets (RSC count above one).
    pub coalesced: u64,
    /// Frames whose TCP checksum did not verify.
    pub bad_checksums: u64,
    /// Segments not at the next expected sequence number (dropped; the peer retransmits).
    pub out_of_order: u64,
    /// The largest frame indicated, in bytes.
    pub largest: usize,
    /// Coalesced packets: (payload bytes, RSC coalesced segment count).
    pub rsc: Vec<(usize, u16)>,
}

/// A segment the peer sent.
#[derive(Debug, Clone, Copy)]
struct Seg {
    flags: u8,
    seq: u32,
    ack: u32,
    wnd: u16,
    wscale: Option<u8>,
    mss: Option<u16>,
    /// Payload bytes: frame range.
    payload: (usize, usize),
    /// The TCP checksum verifies (as the OS would check it, were it not told it is valid).
    csum_ok: bool,
}

impl TcpFlow {
    /// A flow from `sport` to `dport`.
    pub fn new(guest_mac: [u8; 6], peer_mac: [u8; 6], ip: Ip, sport: u16, dport: u16) -> Self {
        let iss = 0x1000_0000 ^ u32::from(sport) << 8;
        Self {
            guest_mac,
            peer_mac,
            ip,
            sport,
            dport,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            rcv_nxt: 0,
            peer_wnd: 0,
            peer_wscale: 0,
            ident: 1,
            peer_mss: 536,
            acks_seen: 0,
        }
    }

    fn frame(&mut self, fl: u8, seq: u32, payload: &[u8], syn_options: bool) -> Vec<u8> {
        let opts: &[u8] = if syn_options {
            &[2, 4, 0x05, 0xb4, 1, 3, 3, 7]
        } else {
            &[]
        };
        let tcp_len = 20 + opts.len() + payload.len();
        let mut f = self.peer_mac.to_vec();
        f.extend_from_slice(&self.guest_mac);
        match self.ip {
            Ip::V4(s, d) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let total = (20 + tcp_len).min(0xffff) as u16;
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&self.ident.to_be_bytes());
                self.ident = self.ident.wrapping_add(1);
                f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
                f.extend_from_slice(&s);
                f.extend_from_slice(&d);
            }
            Ip::V6(s, d) => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&(tcp_len.min(0xffff) as u16).to_be_bytes());
                f.extend_from_slice(&[6, 64]);
                f.extend_from_slice(&s);
                f.extend_from_slice(&d);
            }
        }
        f.extend_from_slice(&self.sport.to_be_bytes());
        f.extend_from_slice(&self.dport.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&self.rcv_nxt.to_be_bytes());
        f.push((((20 + opts.len()) / 4) as u8) << 4);
        f.push(fl);
        f.extend_from_slice(&0xffffu16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(opts);
        f.extend_from_slice(payload);
        f
    }

    /// A frame whose checksums the OS side computed itself (no offload asked).
    fn tx_software(&self, mut bytes: Vec<u8>) -> TxFrame {
        if matches!(self.ip, Ip::V4(..)) {
            let c = offload::checksum::checksum(&bytes[14..34]);
            bytes[24..26].copy_from_slice(&c.to_be_bytes());
        }
        offload::segment::fill_l4_checksum(&mut bytes).expect("a TCP frame of our own");
        TxFrame {
            bytes,
            ..Default::default()
        }
    }

    fn tx(&self, bytes: Vec<u8>, mss: u32) -> TxFrame {
        let l3 = if matches!(self.ip, Ip::V4(..)) {
            A::Required
        } else {
            A::Passthrough
        };
        let mut gso = NetPacketGso::default();
        let _ = gso.set_mss(mss);
        TxFrame {
            bytes,
            checksum: NetPacketChecksum::tx(l3, A::Required),
            gso,
            ..Default::default()
        }
    }

    fn parse(&self, f: &[u8]) -> Option<Seg> {
        let l = offload::Layout::parse(f).ok()?;
        if l.l4 != offload::L4::Tcp {
            return None;
        }
        let ip = &f[l.l3_offset()..];
        let (src_ok, dst_ok) = match self.ip {
            Ip::V4(s, d) => (
                ip.get(12..16) == Some(&d[..]),
                ip.get(16..20) == Some(&s[..]),
            ),
            Ip::V6(s, d) => (
                ip.get(8..24) == Some(&d[..]),
                ip.get(24..40) == Some(&s[..]),
            ),
        };
        let t = &f[l.l4_offset()..];
        if !src_ok
            || !dst_ok
            || u16::from_be_bytes([t[0], t[1]]) != self.dport
            || u16::from_be_bytes([t[2], t[3]]) != self.sport
        {
            return None;
        }
        let hl = usize::from(l.l4_len);
        let mut wscale = None;
        let mut mss = None;
        let mut o = 20;
        while o < hl {
            match t[o] {
                0 => break,
                1 => o += 1,
                2 if o + 3 < hl => {
                    mss = Some(u16::from_be_bytes([t[o + 2], t[o + 3]]));
                    o += 4;
                }
                3 if o + 2 < hl => {
                    wscale = Some(t[o + 2]);
                    o += 3;
                }
                _ => o += usize::from(t.get(o + 1).copied().unwrap_or(1)).max(2),
            }
        }
        let end = offload::segment::ip_payload_end(f, &l).ok()?;
        let start = (l.l4_offset() + hl).min(end);
        Some(Seg {
            payload: (start, end),
            csum_ok: offload::segment::verify_l4_checksum(f, &l) == Some(true),
            flags: t[13],
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
            wnd: u16::from_be_bytes([t[14], t[15]]),
            wscale,
            mss,
        })
    }

    fn absorb(&mut self, m: &mut QemuMachine) -> Result<Option<Seg>, String> {
        let mut last = None;
        for rf in std::mem::take(&mut m.os_rx.frames) {
            if let Some(s) = self.parse(&rf.bytes) {
                if s.flags & flags::RST != 0 {
                    return Err("connection reset by the peer".into());
                }
                if s.flags & flags::ACK != 0
                    && s.ack.wrapping_sub(self.snd_una) as i32 > 0
                    && s.ack.wrapping_sub(self.snd_nxt) as i32 <= 0
                {
                    self.snd_una = s.ack;
                }
                if s.flags & flags::ACK != 0 {
                    self.acks_seen += 1;
                    self.peer_wnd = u32::from(s.wnd) << self.peer_wscale;
                }
                last = Some(s);
            }
        }
        Ok(last)
    }

    /// Sends SYN (MSS 1460, window scale 7) until the peer's SYN-ACK arrives; takes its
    /// window, scale and MSS.
    fn connect(&mut self, m: &mut QemuMachine, deadline: Instant) -> Result<(), String> {
        // Handshake.
        let mut last_syn = Instant::now() - Duration::from_secs(1);
        loop {
            if Instant::now() > deadline {
                return Err("no SYN-ACK".into());
            }
            if last_syn.elapsed() > Duration::from_millis(300) {
                let syn = self.frame(flags::SYN, self.iss, &[], true);
                let f = self.tx(syn, 0);
                m.pump(&mut vec![f])?;
                last_syn = Instant::now();
            }
            m.pump(&mut Vec::new())?;
            let frames = std::mem::take(&mut m.os_rx.frames);
            if let Some(s) = frames
                .iter()
                .filter_map(|f| self.parse(&f.bytes))
                .find(|s| s.flags & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK)
            {
                self.peer_wscale = s.wscale.unwrap_or(0);
                self.peer_mss = u32::from(s.mss.unwrap_or(536));
                self.peer_wnd = u32::from(s.wnd);
                self.rcv_nxt = s.seq.wrapping_add(1);
                self.snd_una = s.ack;
                self.snd_nxt = s.ack;
                break;
            }
        }
        Ok(())
    }

    /// Opens the connection, receives what the peer sends until its FIN, acknowledging every
    /// batch (window 8 MiB), and closes. Bounded by `timeout`.
    pub fn recv_stream(
        &mut self,
        m: &mut QemuMachine,
        timeout: Duration,
    ) -> Result<Received, String> {
        self.recv_stream_with(m, timeout, &mut |_, _| {})
    }

    /// [`recv_stream`](Self::recv_stream), calling `between(m, n)` before the `n`-th poll of the
    /// data phase (to change the adapter's settings under traffic).
    pub fn recv_stream_with(
        &mut self,
        m: &mut QemuMachine,
        timeout: Duration,
        between: &mut dyn FnMut(&mut QemuMachine, u64),
    ) -> Result<Received, String> {
        let deadline = Instant::now() + timeout;
        self.connect(m, deadline)?;
        let mut got = Received::default();
        let ack = self.frame(flags::ACK, self.snd_nxt, &[], false);
        m.pump(&mut vec![self.tx(ack, 0)])?;
        let mut fin = false;
        let mut polls = 0u64;
        while !fin {
            if Instant::now() > deadline {
                return Err(format!("stream stalled after {} bytes", got.data.len()));
            }
            between(m, polls);
            polls += 1;
            m.pump(&mut Vec::new())?;
            let frames = std::mem::take(&mut m.os_rx.frames);
            let mut new_data = false;
            for rf in &frames {
                let Some(s) = self.parse(&rf.bytes) else {
                    continue;
                };
                if s.flags & flags::RST != 0 {
                    return Err("connection reset by the peer".into());
                }
                got.frames += 1;
                got.bad_checksums += u64::from(!s.csum_ok);
                got.largest = got.largest.max(rf.bytes.len());
                let p = &rf.bytes[s.payload.0..s.payload.1];
                if rf.rsc.coalesced_segment_count > 1 {
                    got.coalesced += 1;
                    got.rsc.push((p.len(), rf.rsc.coalesced_segment_count));
                }
                if s.seq == self.rcv_nxt && s.csum_ok {
                    got.data.extend_from_slice(p);
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(p.len() as u32);
                    if s.flags & flags::FIN != 0 {
                        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                        fin = true;
                    }
                    new_data = true;
                } else if !p.is_empty() || s.flags & flags::FIN != 0 {
                    got.out_of_order += 1;
                    new_data = true; // a duplicate ACK tells the peer where we are
                }
            }
            if new_data {
                let ack = self.frame(flags::ACK, self.snd_nxt, &[], false);
                m.pump(&mut vec![self.tx(ack, 0)])?;
            }
        }
        // Close our side; the peer's ACK of it is not awaited (its socket is already closed).
        let fin = self.frame(flags::FIN | flags::ACK, self.snd_nxt, &[], false);
        m.pump(&mut vec![self.tx(fin, 0)])?;
        self.snd_nxt = self.snd_nxt.wrapping_add(1);
        for _ in 0..10 {
            m.pump(&mut Vec::new())?;
        }
        Ok(got)
    }

    /// Opens the connection, sends `data` in LSO packets of up to 64 000 bytes cut at
    /// `min(lso_mss, the peer's MSS)`, and closes it. Bounded by `timeout`.
    pub fn send_stream(
        &mut self,
        m: &mut QemuMachine,
        data: &[u8],
        lso_mss: u32,
        timeout: Duration,
    ) -> Result<(), String> {
        self.send_stream_with(m, data, lso_mss, timeout, &mut |_, _| TxMode::Lso)
    }

    /// [`send_stream`](Self::send_stream), asking `mode(m, n)` how to send the `n`-th batch of
    /// data (the OS turning offloads off and on under traffic).
    pub fn send_stream_with(
        &mut self,
        m: &mut QemuMachine,
        data: &[u8],
        lso_mss: u32,
        timeout: Duration,
        mode: &mut dyn FnMut(&mut QemuMachine, u64) -> TxMode,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        self.connect(m, deadline)?;
        let ack = self.frame(flags::ACK, self.snd_nxt, &[], false);
        let f = self.tx(ack, 0);
        m.pump(&mut vec![f])?;
        // Data, in segments no larger than the peer's MSS.
        let lso_mss = lso_mss.min(self.peer_mss);
        let base = self.snd_nxt;
        let end = base.wrapping_add(data.len() as u32);
        let chunk_max = (lso_mss * (64_000 / lso_mss)).max(lso_mss) as usize;
        let mut last_progress = Instant::now();
        let mut una = self.snd_una;
        let mut batches = 0u64;
        while self.snd_una != end {
            if Instant::now() > deadline {
                return Err(format!(
                    "stream stalled at {} of {} bytes",
                    self.snd_una.wrapping_sub(base),
                    data.len()
                ));
            }
            let how = mode(m, batches);
            batches += 1;
            let (chunk, most) = match how {
                TxMode::Lso => (chunk_max, 8),
                TxMode::Checksum | TxMode::Software => (lso_mss as usize, 64),
            };
            let mut batch = Vec::new();
            loop {
                let in_flight = self.snd_nxt.wrapping_sub(self.snd_una) as usize;
                let room = (self.peer_wnd as usize)
                    .min(1 << 20)
                    .saturating_sub(in_flight);
                let left = end.wrapping_sub(self.snd_nxt) as usize;
                let n = chunk.min(left).min(room);
                if n == 0 || batch.len() >= most {
                    break;
                }
                let off = self.snd_nxt.wrapping_sub(base) as usize;
                let last = n == left;
                let fl = flags::ACK | if last { flags::PSH } else { 0 };
                let bytes = self.frame(fl, self.snd_nxt, &data[off..off + n], false);
                batch.push(match how {
                    TxMode::Software => self.tx_software(bytes),
                    _ => self.tx(bytes, if n > lso_mss as usize { lso_mss } else { 0 }),
                });
                self.snd_nxt = self.snd_nxt.wrapping_add(n as u32);
            }
            while !batch.is_empty() {
                m.pump(&mut batch)?;
            }
            m.pump(&mut Vec::new())?;
            self.absorb(m)?;
            if self.snd_una != una {
                una = self.snd_una;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_millis(300) {
                self.snd_nxt = self.snd_una; // go back N
                last_progress = Instant::now();
            }
        }
        // Close.
        let fin_seq = self.snd_nxt;
        let mut last_fin = Instant::now() - Duration::from_secs(1);
        while self.snd_una != fin_seq.wrapping_add(1) {
            if Instant::now() > deadline {
                return Err("FIN not acknowledged".into());
            }
            if last_fin.elapsed() > Duration::from_millis(300) {
                self.snd_nxt = fin_seq.wrapping_add(1);
                let fin = self.frame(flags::FIN | flags::ACK, fin_seq, &[], false);
                let f = self.tx(fin, 0);
                m.pump(&mut vec![f])?;
                last_fin = Instant::now();
            }
            m.pump(&mut Vec::new())?;
            self.absorb(m)?;
        }
        Ok(())
    }
}
