//! Errors.

use core::fmt;

/// A header that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer ends inside a header.
    Truncated {
        /// Which header.
        layer: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// IP version field is not what the EtherType says.
    BadVersion(u8),
    /// A header length field is out of its range.
    BadHeaderLength {
        /// Which header.
        layer: &'static str,
        /// The length it claims.
        len: usize,
    },
    /// IPv6 extension headers too many, out of order, or looping.
    BadExtensionChain,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { layer, need, have } => {
                write!(
                    f,
                    "{layer} header truncated: need {need} bytes, have {have}"
                )
            }
            Self::BadVersion(v) => write!(f, "unexpected IP version {v}"),
            Self::BadHeaderLength { layer, len } => {
                write!(f, "{layer} header length {len} is invalid")
            }
            Self::BadExtensionChain => f.write_str("invalid IPv6 extension header chain"),
        }
    }
}

impl core::error::Error for ParseError {}

/// An offload request that cannot be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// The headers do not parse.
    Parse(ParseError),
    /// The OS's layout disagrees with the headers (lengths or types).
    LayoutMismatch,
    /// Segmentation asked for a packet that is not TCP/UDP over IP, or is fragmented.
    NotSegmentable,
    /// MSS of 0, or larger than the payload allows.
    BadMss(u32),
    /// A length does not fit its field (IPv4 total length, UDP length > 65535, …).
    TooLong(usize),
    /// An output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// A checksum was requested for a layer the packet does not have.
    NoSuchLayer,
    /// The segment index is out of range.
    NoSuchSegment(usize),
}

impl From<ParseError> for OffloadError {
    fn from(e: ParseError) -> Self {
        Self::Parse(e)
    }
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Parse(e) => e.fmt(f),
            Self::LayoutMismatch => f.write_str("packet layout does not match the headers"),
            Self::NotSegmentable => f.write_str("packet cannot be segmented"),
            Self::BadMss(m) => write!(f, "invalid MSS {m}"),
            Self::TooLong(n) => write!(f, "length {n} does not fit its header field"),
            Self::BufferTooSmall { need, have } => {
                write!(f, "buffer too small: need {need} bytes, have {have}")
            }
            Self::NoSuchLayer => f.write_str("checksum requested for a missing layer"),
            Self::NoSuchSegment(i) => write!(f, "no segment {i}"),
        }
    }
}

impl core::error::Error for OffloadError {}
