//! The engine's error type.

use alloc::string::String;
use core::fmt;

use kho_abi::AbiVersion;
use kho_mem::{Order, PhysAddr, PhysRange};

/// Why a handover could not be built, accepted or used.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Physical memory access failed.
    Mem(kho_mem::Error),
    /// The root FDT could not be built or the incoming one was rejected.
    Fdt(kho_fdt::Error),
    /// The radix tree refused an operation or the incoming tree is corrupt.
    Radix(kho_radix::Error),
    /// Scratch areas: bad incoming array, or preserved memory inside scratch.
    Scratch(kho_scratch::Error),
    /// A vmalloc area could not be preserved or its chain is corrupt.
    Vmalloc(kho_vmalloc::Error),
    /// The memblock (`reserve_mem`) sub-blob could not be built or read.
    Memblock(kho_memblock::Error),
    /// kho-v1's bitmap tracker refused an operation, or the incoming chunk
    /// list is corrupt (a cycle, a chunk or bitmap outside RAM, …).
    Bitmaps(kho_bitmaps::Error),
    /// The zero page lacks the boot-flag / "HdrS" magic.
    BadBootParams {
        /// Where the zero page was read.
        at: PhysAddr,
    },
    /// More memory map entries than the format holds.
    TooManyMemoryEntries {
        /// Entries given or found.
        count: usize,
        /// The format's capacity.
        max: usize,
    },
    /// An e820 entry whose range wraps the address space.
    BadMemoryEntry {
        /// Index in the table.
        index: usize,
    },
    /// The `setup_data` chain or its KHO entry is malformed.
    BadSetupData {
        /// The entry at fault.
        at: PhysAddr,
        /// What is wrong.
        reason: &'static str,
    },
    /// `/chosen` names a handover in a form Linux ignores (one property
    /// without the other, or a length that is not one address/size pair).
    BadChosen {
        /// What is wrong.
        reason: &'static str,
    },
    /// The handover names an FDT mapping that is not one page of RAM.
    BadFdtMapping {
        /// The FDT address passed.
        addr: PhysAddr,
        /// The FDT size passed.
        size: u64,
    },
    /// A range the next kernel needs at boot lies outside every scratch area.
    OutsideScratch {
        /// Start of the range.
        addr: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// `restore_folio` of memory that was not preserved as a block of that
    /// order (or was restored already).
    NotRestorable {
        /// The address asked for.
        addr: PhysAddr,
        /// The order asked for.
        order: Order,
        /// The order it was preserved with, if it is a preserved block at all.
        preserved: Option<Order>,
    },
    /// A preserved block (or radix node) of the incoming handover overlaps
    /// memory already in use: the running kernel, boot data, scratch, or
    /// another preserved block. Returned by reserve callbacks that check.
    BlockInUse {
        /// Start of the block.
        addr: PhysAddr,
        /// Its size in bytes.
        size: u64,
        /// The first page of it found in use.
        used: PhysAddr,
    },
    /// The root FDT page is not a preserved block of the incoming tree: a
    /// kernel reading the FDT in place (Linux does, for every
    /// `kho_retrieve_subtree`) would read freed memory.
    FdtNotPreserved {
        /// The FDT page.
        fdt: PhysAddr,
    },
    /// A radix node of the incoming tree lies in a scratch area: the next
    /// kernel allocates there before it has walked the tree, so the node
    /// could be overwritten while it is still needed (the previous kernel
    /// must place nodes outside scratch, as Linux does).
    NodeInScratch {
        /// The node page.
        node: PhysAddr,
        /// Index of the scratch area in the array.
        index: usize,
        /// The area.
        area: PhysRange,
    },
    /// A block to preserve is not (entirely) RAM: the next kernel's walk
    /// would refuse it, and with it the whole handover.
    PreserveNotRam {
        /// Start of the block.
        addr: PhysAddr,
        /// Its size in bytes.
        size: u64,
    },
    /// The root FDT page cannot be unpreserved: it is the handover itself.
    RootFdtPage {
        /// The root FDT page.
        addr: PhysAddr,
    },
    /// A restore was asked for before [`KhoIn::reserve_preserved`]
    /// completed a walk of the incoming tree.
    ///
    /// [`KhoIn::reserve_preserved`]: crate::KhoIn::reserve_preserved
    NotWalked,
    /// The `kexec-metadata` blob is malformed.
    BadMetadata {
        /// What is wrong.
        reason: &'static str,
    },
    /// A kernel setup header longer than the zero page has room for
    /// (it must end by 0x290).
    SetupHeaderTooLong {
        /// Its length from 0x1f1.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// The initrd named by the zero page's `ramdisk_*` fields (or
    /// `/chosen` `linux,initrd-*`) wraps the address space or ends before
    /// it starts.
    BadInitrd {
        /// Its start.
        addr: u64,
        /// Its end or size, as given.
        size: u64,
    },
    /// A subtree's blob is larger than the reader accepts.
    BlobTooLarge {
        /// The subtree.
        name: &'static str,
        /// Its size.
        size: u64,
    },
    /// kho-v1: the outgoing state is finalized (its bitmaps serialized and
    /// its FDT written), so preserving, unpreserving and changing subtrees
    /// are refused until [`KhoOut::abort`](crate::KhoOut::abort); a second
    /// finalize too.
    Finalized,
    /// kho-v1: the outgoing FDT exists only after
    /// [`KhoOut::finalize`](crate::KhoOut::finalize) (a handover or an
    /// abort before it).
    NotFinalized,
    /// Something the handover's ABI version does not have (kho-v1 has no
    /// `kexec-metadata` or radix tree; the engine does not preserve vmalloc
    /// areas or memblock regions under kho-v1 yet).
    NotInVersion {
        /// What was asked for.
        what: &'static str,
        /// The version of the handover.
        version: AbiVersion,
    },
    /// kho-v1: a subtree must name a client FDT (its child carries `fdt`,
    /// and its size is the FDT header's `totalsize`), and the blob at
    /// `addr` does not start with an FDT header.
    SubtreeNotFdt {
        /// The subtree name.
        name: String,
        /// The blob's address.
        addr: PhysAddr,
    },
    /// kho-v1: the size given for a subtree is not its FDT's `totalsize`,
    /// the only size a kho-v1 reader sees.
    SubtreeSizeMismatch {
        /// The subtree name.
        name: String,
        /// The size given.
        size: u64,
        /// The FDT header's `totalsize`.
        totalsize: u64,
    },
    /// kho-v1: a page of the incoming chunk list (a chunk or a bitmap)
    /// lies in a scratch area, where the new kernel allocates before it
    /// has read the list.
    MapPageInScratch {
        /// The chunk or bitmap.
        page: PhysRange,
        /// Index of the scratch area.
        index: usize,
        /// The scratch area.
        area: PhysRange,
    },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Mem(e) => write!(f, "memory access: {e}"),
            Error::Fdt(e) => write!(f, "KHO FDT: {e}"),
            Error::Radix(e) => write!(f, "preserved-memory map: {e}"),
            Error::Scratch(e) => write!(f, "scratch: {e}"),
            Error::Vmalloc(e) => write!(f, "vmalloc: {e}"),
            Error::Memblock(e) => write!(f, "memblock: {e}"),
            Error::BadBootParams { at } => write!(f, "no boot_params magic at {at}"),
            Error::TooManyMemoryEntries { count, max } => {
                write!(f, "{count} memory map entries, the format holds {max}")
            }
            Error::BadMemoryEntry { index } => {
                write!(f, "memory map entry {index} wraps the address space")
            }
            Error::BadSetupData { at, reason } => write!(f, "setup_data at {at}: {reason}"),
            Error::BadChosen { reason } => write!(f, "/chosen: {reason}"),
            Error::BadFdtMapping { addr, size } => {
                write!(
                    f,
                    "handover FDT {addr} size {size:#x} is not one page of RAM"
                )
            }
            Error::OutsideScratch { addr, len } => {
                write!(f, "[{addr}, +{len:#x}) must lie inside a scratch area")
            }
            Error::NotRestorable {
                addr,
                order,
                preserved: Some(p),
            } => {
                write!(f, "{addr} was preserved with order {p}, not {order}")
            }
            Error::NotRestorable {
                addr,
                order,
                preserved: None,
            } => {
                write!(
                    f,
                    "{addr} is not a preserved order-{order} block (or was restored already)"
                )
            }
            Error::BlockInUse { addr, size, used } => write!(
                f,
                "preserved memory {addr}+{size:#x} overlaps memory already in use at {used}"
            ),
            Error::FdtNotPreserved { fdt } => write!(
                f,
                "the root FDT page {fdt} is not preserved: a kernel reading it later would read freed memory"
            ),
            Error::NodeInScratch { node, index, area } => write!(
                f,
                "radix node {node} lies in scratch area {index} [{}, +{:#x}): the next kernel allocates there before its walk",
                area.start(),
                area.size()
            ),
            Error::PreserveNotRam { addr, size } => write!(
                f,
                "cannot preserve {addr}+{size:#x}: not RAM (the next kernel would refuse the handover)"
            ),
            Error::RootFdtPage { addr } => write!(
                f,
                "{addr} is the root FDT page: it stays preserved while the handover exists"
            ),
            Error::NotWalked => write!(
                f,
                "restore before the incoming radix tree was walked (reserve_preserved)"
            ),
            Error::BadMetadata { reason } => write!(f, "kexec-metadata: {reason}"),
            Error::SetupHeaderTooLong { len, max } => {
                write!(
                    f,
                    "setup header of {len:#x} bytes, the zero page holds {max:#x}"
                )
            }
            Error::BadInitrd { addr, size } => {
                write!(
                    f,
                    "initrd at {addr:#x} (size or end {size:#x}) is not a range"
                )
            }
            Error::Bitmaps(e) => write!(f, "kho-v1 preserved-memory map: {e}"),
            Error::Finalized => write!(
                f,
                "kho-v1 state is finalized: abort before preserving, unpreserving or changing subtrees"
            ),
            Error::NotFinalized => write!(
                f,
                "kho-v1 state is not finalized: the outgoing FDT exists only after finalize"
            ),
            Error::NotInVersion { what, version } => {
                write!(f, "{what} is not available in a {version} handover")
            }
            Error::SubtreeNotFdt { name, addr } => write!(
                f,
                "subtree {name:?}: kho-v1 children name FDTs, and {addr} holds no FDT header"
            ),
            Error::SubtreeSizeMismatch {
                name,
                size,
                totalsize,
            } => write!(
                f,
                "subtree {name:?}: size {size:#x} is not its FDT's totalsize {totalsize:#x}"
            ),
            Error::MapPageInScratch { page, index, area } => write!(
                f,
                "kho-v1 map page {}+{:#x} lies in scratch area {index} [{}, +{:#x}): the next kernel allocates there before it reads the map",
                page.start(),
                page.size(),
                area.start(),
                area.size()
            ),
            Error::BlobTooLarge { name, size } => {
                write!(f, "subtree {name:?}: blob of {size:#x} bytes is too large")
            }
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Mem(e) => Some(e),
            Error::Fdt(e) => Some(e),
            Error::Radix(e) => Some(e),
            Error::Scratch(e) => Some(e),
            Error::Vmalloc(e) => Some(e),
            Error::Memblock(e) => Some(e),
            Error::Bitmaps(e) => Some(e),
            _ => None,
        }
    }
}

impl From<kho_mem::Error> for Error {
    fn from(e: kho_mem::Error) -> Self {
        Error::Mem(e)
    }
}

impl From<kho_fdt::Error> for Error {
    fn from(e: kho_fdt::Error) -> Self {
        Error::Fdt(e)
    }
}

impl From<kho_radix::Error> for Error {
    fn from(e: kho_radix::Error) -> Self {
        Error::Radix(e)
    }
}

impl From<kho_scratch::Error> for Error {
    fn from(e: kho_scratch::Error) -> Self {
        Error::Scratch(e)
    }
}

impl From<kho_vmalloc::Error> for Error {
    fn from(e: kho_vmalloc::Error) -> Self {
        Error::Vmalloc(e)
    }
}

impl From<kho_bitmaps::Error> for Error {
    fn from(e: kho_bitmaps::Error) -> Self {
        Error::Bitmaps(e)
    }
}

impl From<kho_memblock::Error> for Error {
    fn from(e: kho_memblock::Error) -> Self {
        Error::Memblock(e)
    }
}
