//! A classic pcap writer (Ethernet link type), for traffic to open in Wireshark.

use std::io::Write;
use std::time::Instant;

/// Writes pcap records to any writer.
#[derive(Debug)]
pub struct PcapWriter<W> {
    out: W,
    start: Instant,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        out.write_all(&h)?;
        Ok(Self {
            out,
            start: Instant::now(),
        })
    }

    /// Appends one frame, timestamped relative to the writer's creation.
    pub fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let t = self.start.elapsed();
        let mut r = Vec::with_capacity(16 + frame.len());
        r.extend_from_slice(&(t.as_secs() as u32).to_le_bytes());
        r.extend_from_slice(&t.subsec_micros().to_le_bytes());
        r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        r.extend_from_slice(frame);
        self.out.write_all(&r)
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}
