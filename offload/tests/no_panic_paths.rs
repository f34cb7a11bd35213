//! Inputs that used to reach a panic (or a silently wrong write) in the offload crate's views and
//! fix-ups, found by the link-time panic check (`scripts/nopanic.sh "adapter tx rx"`): each is now
//! an error and leaves the bytes alone.

use std::cell::Cell;

use offload::checksum::Checksum;
use offload::rx::{ChecksumFix, ChecksumFixError};
use offload::wire::Ipv4Packet;

/// A buffer whose `AsRef`/`AsMut` return the whole header once (when the view is checked), then
/// only its first `short` bytes: what a view sees when the bytes it was checked over are no
/// longer all there — the header length field still says they are.
struct Shrinking {
    buf: Vec<u8>,
    calls: Cell<u32>,
    short: usize,
}

impl AsRef<[u8]> for Shrinking {
    fn as_ref(&self) -> &[u8] {
        let c = self.calls.get();
        self.calls.set(c + 1);
        if c == 0 {
            &self.buf
        } else {
            &self.buf[..self.short]
        }
    }
}

impl AsMut<[u8]> for Shrinking {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.short]
    }
}

/// An IPv4 header with 40 bytes of options (IHL 15), checksum field zero.
fn ipv4_with_options() -> Vec<u8> {
    let mut h = vec![0u8; 60];
    h[0] = 0x4f;
    h[2..4].copy_from_slice(&60u16.to_be_bytes());
    h[8] = 64;
    h[9] = 6;
    h[12..16].copy_from_slice(&[10, 0, 0, 1]);
    h[16..20].copy_from_slice(&[10, 0, 0, 2]);
    for b in &mut h[20..] {
        *b = 1; // NOP options
    }
    h
}

#[test]
fn ipv4_checksum_of_a_header_no_longer_all_there_is_an_error_not_a_panic() {
    let buf = ipv4_with_options();
    let mut v = Ipv4Packet::new_checked(Shrinking {
        buf: buf.clone(),
        calls: Cell::new(0),
        short: 20,
    })
    .unwrap();
    // The IHL says 60 bytes, 20 are there: before, `b[..hl]` panicked.
    assert_eq!(
        v.fill_checksum(),
        Err(offload::ParseError::Truncated {
            layer: "ipv4 options",
            need: 60,
            have: 20
        })
    );
    assert!(!v.verify_checksum());
    // Nothing was written.
    let mut w = Ipv4Packet::new_checked(buf.clone()).unwrap();
    assert_eq!(w.checksum(), 0);
    // The whole header: filled, and then it verifies.
    w.fill_checksum().unwrap();
    assert!(w.verify_checksum());
    assert_ne!(w.checksum(), 0);
}

#[test]
fn a_checksum_fix_outside_the_bytes_is_an_error_and_writes_nothing() {
    // Start past the bytes given: before, the seed and a checksum over nothing were written.
    let fix = ChecksumFix {
        start: 40,
        field: 16,
        seed: Some(0x1234),
        udp: false,
    };
    let mut first = [0u8; 30];
    assert_eq!(
        fix.apply(&mut first, Checksum::new()),
        Err(ChecksumFixError::OutsideFrame)
    );
    assert_eq!(first, [0u8; 30]);
    // A field that does not fit, at the end and far past it.
    for field in [29, usize::MAX - 1, usize::MAX] {
        let fix = ChecksumFix {
            start: 0,
            field,
            seed: Some(0x1234),
            udp: true,
        };
        assert_eq!(
            fix.apply(&mut first, Checksum::new()),
            Err(ChecksumFixError::OutsideFrame)
        );
        assert_eq!(first, [0u8; 30]);
    }
    // Inside: written (a TCP header at 0, the field at 16).
    let fix = ChecksumFix {
        start: 0,
        field: 16,
        seed: None,
        udp: false,
    };
    assert_eq!(fix.apply(&mut first, Checksum::new()), Ok(()));
    let mut sum = Checksum::new();
    sum.add_bytes(&first);
    assert_eq!(
        sum.finish(),
        0,
        "the completed checksum makes the bytes sum to zero"
    );
}
