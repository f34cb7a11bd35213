//! The iterators of the RtEthSample `netringiterator.h`, and the fragments of one packet.

use crate::ring::{Element, RingHeaderField};
use crate::{FragmentRing, NetPacket, Ring, RingError};

/// A cursor over a range of a ring that publishes its progress only when [`set`](Self::set).
///
/// Made by [`Ring::post`], [`Ring::drain`] and [`Ring::all`]. It snapshots its start and end at
/// construction, as the C iterators do; its index stays in `[start, end]`, so publishing it can
/// never move `BeginIndex` past `EndIndex` or `NextIndex` out of the owned range.
pub struct RingIterator<'r, 'a, E: Element> {
    ring: &'r mut Ring<'a, E>,
    publishes: RingHeaderField,
    index: u32,
    end: u32,
}

impl<E: Element> core::fmt::Debug for RingIterator<'_, '_, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingIterator")
            .field("publishes", &self.publishes)
            .field("index", &self.index)
            .field("end", &self.end)
            .finish()
    }
}

impl<'r, 'a, E: Element> RingIterator<'r, 'a, E> {
    pub(crate) fn new(
        ring: &'r mut Ring<'a, E>,
        publishes: RingHeaderField,
        index: u32,
        end: u32,
    ) -> Self {
        Self {
            ring,
            publishes,
            index,
            end,
        }
    }

    /// The index of the current element (`...GetIndex`).
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// The (exclusive) end of the range.
    pub const fn end(&self) -> u32 {
        self.end
    }

    /// Which header index `set` writes.
    pub const fn publishes(&self) -> RingHeaderField {
        self.publishes
    }

    /// `...HasAny`: elements left.
    pub const fn has_any(&self) -> bool {
        self.index != self.end
    }

    /// `...GetCount`: how many elements are left.
    pub const fn count(&self) -> u32 {
        self.end.wrapping_sub(self.index) & self.ring.mask()
    }

    /// `...Advance`: to the next element; does nothing once at the end.
    pub fn advance(&mut self) {
        if self.has_any() {
            self.index = self.ring.increment_index(self.index);
        }
    }

    /// `...AdvanceToTheEnd`.
    pub fn advance_to_end(&mut self) {
        self.index = self.end;
    }

    /// `...Set`: publishes the current index (the only way progress becomes visible to the OS).
    pub fn set(&mut self) {
        self.ring.publish(self.publishes, self.index);
    }

    /// The current element (`...GetPacket/GetFragment`), or `None` at the end.
    pub fn current(&self) -> Option<&E> {
        self.has_any().then(|| self.ring.at(self.index))
    }

    /// The current element for writing, or `None` at the end.
    pub fn current_mut(&mut self) -> Option<&mut E> {
        if self.has_any() {
            Some(self.ring.at_mut(self.index))
        } else {
            None
        }
    }

    /// The ring (for extension access at [`index`](Self::index)).
    pub fn ring(&self) -> &Ring<'a, E> {
        self.ring
    }

    /// The ring, for writing extensions at [`index`](Self::index).
    pub fn ring_mut(&mut self) -> &mut Ring<'a, E> {
        self.ring
    }
}

/// The fragment-ring indices of one packet (`NetPacketIteratorGetFragments`): from
/// `FragmentIndex`, `FragmentCount` of them, wrapping at the ring's end. Never published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRange {
    first: u32,
    count: u32,
    mask: u32,
    taken: u32,
}

impl FragmentRange {
    /// The fragments of `packet` in `fragments`. `FragmentIndex` must be inside the ring and
    /// `FragmentCount` below its size; a count of 0 (an ignored TX packet) gives an empty range.
    pub fn of(packet: &NetPacket, fragments: &FragmentRing<'_>) -> Result<Self, RingError> {
        let len = fragments.len();
        if packet.fragment_index >= len {
            return Err(RingError::IndexOutOfRange {
                index: packet.fragment_index,
                len,
            });
        }
        if u32::from(packet.fragment_count) >= len {
            return Err(RingError::FragmentCountTooLarge {
                count: packet.fragment_count,
                len,
            });
        }
        Ok(Self {
            first: packet.fragment_index,
            count: u32::from(packet.fragment_count),
            mask: fragments.mask(),
            taken: 0,
        })
    }

    /// Index of the first fragment.
    pub const fn first(&self) -> u32 {
        self.first
    }

    /// Number of fragments in the range (named apart from `Iterator::count`, which would consume
    /// the range).
    pub const fn fragment_count(&self) -> u32 {
        self.count
    }

    /// Index just past the last fragment (where the fragment ring's `BeginIndex` goes once the
    /// packet completes).
    pub const fn end(&self) -> u32 {
        self.first.wrapping_add(self.count) & self.mask
    }

    /// Whether every fragment lies in the driver-owned range of `ring`.
    pub fn is_owned_by(&self, ring: &FragmentRing<'_>) -> bool {
        ring.mask() == self.mask && ring.owns_span(self.first, self.count)
    }
}

impl Iterator for FragmentRange {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.taken == self.count {
            return None;
        }
        let i = self.first.wrapping_add(self.taken) & self.mask;
        self.taken = self.taken.wrapping_add(1); // < count (checked above)
        Some(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.count.saturating_sub(self.taken) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for FragmentRange {}
