//! The NetAdapterCx datapath ABI, mirrored in Rust.
//!
//! NetAdapterCx hands a client driver its transmit and receive work as *net rings*: a
//! [`NetRing`] header followed by fixed-stride elements, one ring of [`NetPacket`]s and one of
//! [`NetFragment`]s per queue (plus, for some receive modes, a third ring). Optional per-element
//! metadata lives in *extensions* placed inside each element at offsets the framework assigns at
//! run time; a driver finds them through a [`NetExtension`] handle it queries once per queue.
//!
//! This crate is that ABI and nothing else:
//!
//! * `#[repr(C)]` types whose x64 sizes and field offsets are asserted at compile time against the
//!   WDK headers (the numbers are in `shared/reference/netadaptercx.md` §1);
//! * typed accessors for every bit-field, returning [`FieldError`] instead of truncating a value;
//! * a [`Ring`] view with the index arithmetic of `ring.h` and the iterators of the RtEthSample
//!   `netringiterator.h` ([`Ring::post`], [`Ring::drain`], [`Ring::all`], [`FragmentRange`]);
//!   progress is published only by an explicit `set`;
//! * [`Extension`], the cached per-queue extension handle, validated against the ring it belongs
//!   to, with typed `get` accessors;
//! * the extension names and versions as NUL-terminated UTF-16 constants ([`names`]).
//!
//! Everything the OS writes is treated as input: an index outside the ring, a stride that cannot
//! hold the element, a misaligned or disabled extension are typed errors ([`RingError`],
//! [`ExtensionError`]), never a panic.
//!
//! With the `alloc` feature, `memory::OwnedRing` and `memory::ElementLayout` lay rings out in heap
//! memory as the framework does, for simulators and tests that play the OS side.

#![no_std]
#![deny(missing_docs)]
// No panic a device or the OS can reach (issue 16): indexing, unchecked arithmetic, unwrap,
// expect and panic are denied outside tests; each allowed site says why it cannot fire.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

mod bits;
mod error;
mod extension;
mod fragment;
mod iter;
// The OS side of the rings for simulators and tests (feature `alloc`, which the driver never
// enables): not driver code, so the no-panic lints of the crate do not apply to it.
#[cfg(any(test, feature = "alloc"))]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod memory;
pub mod names;
mod packet;
mod payload;
mod ring;

pub use error::{ExtensionError, FieldError, RingError};
pub use extension::{
    Bound, Extension, ExtensionSpec, ExtensionType, NetExtension, NetExtensionQuery,
};
pub use fragment::NetFragment;
pub use iter::{FragmentRange, RingIterator};
pub use packet::{Layer2Type, Layer3Type, Layer4Type, NetPacket, NetPacketLayout};
pub use payload::{
    HashProtocolType, Ieee8021qTxTagging, NetFragmentLogicalAddress, NetFragmentMdl,
    NetFragmentReturnContext, NetFragmentVirtualAddress, NetPacketChecksum, NetPacketGso,
    NetPacketHash, NetPacketIeee8021q, NetPacketLso, NetPacketRsc, NetPacketRscTimestamp, Payload,
    RxChecksumEvaluation, TxChecksumAction,
};
pub use ring::{
    Element, FragmentRing, NetRing, NetRingCollection, NetRingType, PacketRing, ReturnContextRing,
    Ring, RingHeaderField,
};

#[cfg(test)]
mod tests;
