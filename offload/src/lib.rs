//! Packet math for the driver: typed views of Ethernet, 802.1Q, IPv4, IPv6, TCP and UDP headers,
//! the NetAdapterCx packet layout, checksums, software segmentation, the mapping between
//! NetAdapterCx offload metadata and the virtio-net header, receive filtering and the RSS hash.
//!
//! Allocation-free and `no_std`. Its contents arrive with the offload work; until then it is an
//! empty crate.

#![no_std]
#![deny(missing_docs)]
