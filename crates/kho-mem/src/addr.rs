//! Typed addresses: `PhysAddr`, `Pfn`, `Order` and `PhysRange`.

use core::fmt;

use kho_abi::{PAGE_SHIFT, PAGE_SIZE, radix};

use crate::{Error, Result};

/// A physical byte address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// Address zero.
    pub const ZERO: PhysAddr = PhysAddr(0);

    /// Wrap a raw physical address.
    pub const fn new(addr: u64) -> PhysAddr {
        PhysAddr(addr)
    }

    /// The raw address.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether the address is a multiple of `align` (a power of two).
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align.wrapping_sub(1)) == 0
    }

    /// Whether the address is page-aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.is_aligned(PAGE_SIZE as u64)
    }

    /// Round down to a multiple of `align` (a power of two).
    pub const fn align_down(self, align: u64) -> PhysAddr {
        PhysAddr(self.0 & !(align.wrapping_sub(1)))
    }

    /// Round up to a multiple of `align` (a power of two); `None` on overflow.
    pub const fn align_up(self, align: u64) -> Option<PhysAddr> {
        match self.0.checked_add(align.wrapping_sub(1)) {
            Some(v) => Some(PhysAddr(v & !(align.wrapping_sub(1)))),
            None => None,
        }
    }

    /// `self + offset`, `None` on overflow.
    pub const fn checked_add(self, offset: u64) -> Option<PhysAddr> {
        match self.0.checked_add(offset) {
            Some(v) => Some(PhysAddr(v)),
            None => None,
        }
    }

    /// `self - other` in bytes, `None` if `other > self`.
    pub const fn checked_offset_from(self, other: PhysAddr) -> Option<u64> {
        self.0.checked_sub(other.0)
    }

    /// The frame containing this address (rounding down).
    pub const fn pfn_floor(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }

    /// Offset of the address inside its page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE as u64 - 1)
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A page frame number: a physical address divided by the page size.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(u64);

impl Pfn {
    /// The largest frame number whose address fits in 64 bits.
    pub const MAX: Pfn = Pfn(u64::MAX >> PAGE_SHIFT);

    /// A frame number, checked to fit a 64-bit physical address.
    pub const fn try_new(pfn: u64) -> Result<Pfn> {
        if pfn > Pfn::MAX.0 {
            return Err(Error::PfnTooLarge { pfn });
        }
        Ok(Pfn(pfn))
    }

    /// The frame starting at `addr`, which must be page-aligned.
    pub const fn try_from_phys(addr: PhysAddr) -> Result<Pfn> {
        if !addr.is_page_aligned() {
            return Err(Error::Misaligned {
                addr: addr.0,
                align: PAGE_SIZE as u64,
            });
        }
        Ok(Pfn(addr.0 >> PAGE_SHIFT))
    }

    /// The raw frame number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The physical address of the frame's first byte.
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }

    /// Whether the frame starts a naturally aligned block of `order`.
    pub const fn is_aligned(self, order: Order) -> bool {
        self.0 & (order.pages() - 1) == 0
    }

    /// `self + pages`, `None` past [`Pfn::MAX`].
    pub const fn checked_add(self, pages: u64) -> Option<Pfn> {
        match self.0.checked_add(pages) {
            Some(v) if v <= Pfn::MAX.0 => Some(Pfn(v)),
            _ => None,
        }
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// log2 of the number of pages in a block; at most [`Order::MAX`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Order(u8);

impl Order {
    /// A single page.
    pub const ZERO: Order = Order(0);
    /// The largest order the KHO radix key can encode.
    pub const MAX: Order = Order(radix::MAX_ORDER as u8);

    /// An order, checked against [`Order::MAX`].
    pub const fn try_new(order: u32) -> Result<Order> {
        if order > radix::MAX_ORDER {
            return Err(Error::OrderTooLarge {
                order,
                max: radix::MAX_ORDER,
            });
        }
        Ok(Order(order as u8))
    }

    /// The order as a number.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// Pages in a block of this order.
    pub const fn pages(self) -> u64 {
        1u64 << self.0
    }

    /// Bytes in a block of this order.
    pub const fn bytes(self) -> u64 {
        (PAGE_SIZE as u64) << self.0
    }
}

impl TryFrom<u32> for Order {
    type Error = Error;
    fn try_from(order: u32) -> Result<Order> {
        Order::try_new(order)
    }
}

impl fmt::Debug for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Order({})", self.0)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A non-wrapping range `[start, start + size)` of physical memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysRange {
    start: PhysAddr,
    size: u64,
}

impl PhysRange {
    /// A range, checked not to wrap past the end of the address space
    /// (a range may end exactly at 2^64).
    pub const fn try_new(start: PhysAddr, size: u64) -> Result<PhysRange> {
        if size != 0 && start.0.checked_add(size - 1).is_none() {
            return Err(Error::Overflow {
                addr: start.0,
                len: size,
            });
        }
        Ok(PhysRange { start, size })
    }

    /// First byte of the range.
    pub const fn start(self) -> PhysAddr {
        self.start
    }

    /// Length in bytes.
    pub const fn size(self) -> u64 {
        self.size
    }

    /// Whether the range is empty.
    pub const fn is_empty(self) -> bool {
        self.size == 0
    }

    /// Last byte of the range, `None` if empty.
    pub const fn last(self) -> Option<PhysAddr> {
        if self.size == 0 {
            None
        } else {
            Some(PhysAddr(self.start.0 + (self.size - 1)))
        }
    }

    /// One past the last byte, `None` if that is 2^64.
    pub const fn end(self) -> Option<PhysAddr> {
        self.start.checked_add(self.size)
    }

    /// Whether `addr` lies inside the range.
    pub const fn contains(self, addr: PhysAddr) -> bool {
        match self.last() {
            Some(last) => addr.0 >= self.start.0 && addr.0 <= last.0,
            None => false,
        }
    }

    /// Whether `other` lies entirely inside `self` (an empty `other` is
    /// contained if its start is).
    pub const fn contains_range(self, other: PhysRange) -> bool {
        match other.last() {
            Some(last) => self.contains(other.start) && self.contains(last),
            None => self.contains(other.start),
        }
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(self, other: PhysRange) -> bool {
        match (self.last(), other.last()) {
            (Some(a), Some(b)) => self.start.0 <= b.0 && other.start.0 <= a.0,
            _ => false,
        }
    }
}

impl fmt::Debug for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysRange({:#x}, +{:#x})", self.start.0, self.size)
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, +{:#x})", self.start.0, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn pfn_checks() {
        assert_eq!(
            Pfn::try_from_phys(PhysAddr::new(0x1234_5000))
                .unwrap()
                .as_u64(),
            0x12345
        );
        assert_eq!(
            Pfn::try_from_phys(PhysAddr::new(0x1234_5008)),
            Err(Error::Misaligned {
                addr: 0x1234_5008,
                align: 4096
            })
        );
        assert_eq!(
            Pfn::try_new(1 << 52),
            Err(Error::PfnTooLarge { pfn: 1 << 52 })
        );
        assert_eq!(Pfn::MAX.phys(), PhysAddr::new(0xffff_ffff_ffff_f000));
        assert_eq!(Pfn::MAX.checked_add(1), None);
        let p = Pfn::try_new(0x200).unwrap();
        assert!(p.is_aligned(Order::try_new(9).unwrap()));
        assert!(!p.is_aligned(Order::try_new(10).unwrap()));
    }

    #[test]
    fn order_checks() {
        assert_eq!(Order::try_new(51).unwrap(), Order::MAX);
        assert_eq!(
            Order::try_new(52),
            Err(Error::OrderTooLarge { order: 52, max: 51 })
        );
        let o = Order::try_new(9).unwrap();
        assert_eq!((o.pages(), o.bytes()), (512, 2 << 20));
    }

    #[test]
    fn address_arithmetic() {
        let a = PhysAddr::new(0x4000_1234);
        assert_eq!(a.align_down(0x1000), PhysAddr::new(0x4000_1000));
        assert_eq!(a.align_up(0x1000), Some(PhysAddr::new(0x4000_2000)));
        assert_eq!(PhysAddr::new(u64::MAX).align_up(0x1000), None);
        assert_eq!(a.page_offset(), 0x234);
        assert_eq!(a.checked_add(u64::MAX), None);
        assert_eq!(format!("{a}"), "0x40001234");
    }

    #[test]
    fn range_relations() {
        let r = PhysRange::try_new(PhysAddr::new(0x1000), 0x2000).unwrap();
        assert!(r.contains(PhysAddr::new(0x2fff)));
        assert!(!r.contains(PhysAddr::new(0x3000)));
        let inner = PhysRange::try_new(PhysAddr::new(0x2000), 0x1000).unwrap();
        assert!(r.contains_range(inner) && r.overlaps(inner));
        let after = PhysRange::try_new(PhysAddr::new(0x3000), 0x1000).unwrap();
        assert!(!r.overlaps(after));
        assert!(PhysRange::try_new(PhysAddr::new(u64::MAX), 2).is_err());
        let top = PhysRange::try_new(PhysAddr::new(0xffff_ffff_ffff_f000), 0x1000).unwrap();
        assert_eq!(top.end(), None);
        assert_eq!(top.last(), Some(PhysAddr::new(u64::MAX)));
        let empty = PhysRange::try_new(PhysAddr::new(0x1000), 0).unwrap();
        assert!(!empty.overlaps(r) && !empty.contains(PhysAddr::new(0x1000)));
    }
}
