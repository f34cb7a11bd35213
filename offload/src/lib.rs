//! Packet math for the driver: typed views of Ethernet, 802.1Q, IPv4, IPv6, TCP and UDP headers,
//! the NetAdapterCx packet layout, checksums, software segmentation, the mapping between
//! NetAdapterCx offload metadata and the virtio-net header (both directions), receive filtering
//! and the RSS hash.
//!
//! `no_std` and allocation-free: every function works on caller buffers. Every input is checked;
//! a truncated header, a lying length or a loop of extension headers is a [`ParseError`], never a
//! panic or an out-of-bounds access.
//!
//! This crate is where the NetAdapterCx view ([`netring`]) and the virtio view ([`virtio`]) of a
//! packet meet, so it depends on both.

#![no_std]
#![deny(missing_docs)]
// The crate parses what the device and the OS hand the driver: no unwrap, expect or panic in
// it (none is needed: every parse returns an error or a shallower result), and no indexing or
// arithmetic that can panic or wrap — `get`, fixed-size arrays indexed by constants, iterator
// and chunk forms, checked or saturating operations; the few wrapping ones say why they cannot
// wrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(test)]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod checksum;
mod error;
pub mod filter;
pub mod layout;
pub mod rss;
pub mod rx;
pub mod segment;
pub mod tx;
pub mod wire;

pub use error::{OffloadError, ParseError};
pub use layout::{L3, L4, Layout};
