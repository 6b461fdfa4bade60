//! The stub's configuration, read from the kernel command line.

use alloc::string::String;
use core::fmt;

use kho_abi::AbiVersion;
use kho_scratch::KhoCmdline;

/// A way to corrupt the outgoing handover (fault injection), one per class
/// of the fault matrix (docs/HANDOVER.md lists what the next generation
/// must report for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultClass {
    /// The root FDT's magic is overwritten.
    BadMagic,
    /// The root FDT's `totalsize` claims only its header.
    Truncated,
    /// The root FDT's `compatible` becomes `"kho-v9"`.
    Compatible,
    /// The root FDT has no `preserved-memory-map`.
    MemoryMapMissing,
    /// `preserved-memory-map` is 4 bytes long.
    MemoryMap4Bytes,
    /// `preserved-memory-map` is 0.
    MemoryMapZero,
    /// `preserved-memory-map` points outside RAM.
    MemoryMapOutsideRam,
    /// The first client subtree's `preserved-data` is 0 (needs
    /// `kho_stub.subtrees` of at least 1).
    SubtreeDataZero,
    /// A radix root entry points outside RAM.
    RadixOutsideRam,
    /// A radix table entry points back at the root.
    RadixCycle,
    /// kho-v1 (`kho_stub.abi=v1`): the last chunk's `next` := the first
    /// chunk, so the chunk list never ends.
    V1ChunkCycle,
    /// kho-v1: the first chunk's `next` := 0x10_0000_0000 (not RAM).
    V1ChunkOutsideRam,
    /// The order-0 leaf (the tree's last) has every bit set: 32768 blocks,
    /// many of them memory nobody preserved.
    RadixFullLeaf,
    /// An order-0 block is added inside the first order-9 folio: two blocks
    /// of different orders over the same page.
    RadixOverlap,
    /// The first root entry is moved 8 bytes: not page-aligned.
    RadixMisalignedEntry,
    /// The first level-4 table's next slot points at the same child as its
    /// first entry: one node reached through two entries.
    RadixSharedNode,
    /// The vmalloc chunk chain loops onto its first chunk.
    VmallocCycle,
    /// The first block of the vmalloc area points outside RAM.
    VmallocBlockOutsideRam,
    /// The first block of the vmalloc area is not page-aligned.
    VmallocBlockMisaligned,
    /// The vmalloc descriptor in the stub's blob claims one page more than
    /// the chain lists.
    VmallocCountMismatch,
    /// A scratch array entry covers a preserved block.
    ScratchOverlapsPreserved,
    /// A scratch array entry lies outside RAM.
    ScratchOutsideRam,
    /// Scratch array entry 1 starts half a page in.
    ScratchMisaligned,
    /// Scratch array entry 1 becomes entry 0's range: two areas overlap.
    ScratchOverlapping,
    /// The arch handoff entry has a wrong length (x86 setup_data `len`,
    /// arm64 `/chosen` `linux,kho-scratch`).
    HandoffLength,
    /// Nothing is corrupted: the next generation runs its heap out while
    /// reviving (a simulated allocation failure), to exercise the cold
    /// restart of `restart.rs`.
    HeapInRevival,
    /// The root FDT's `totalsize` claims two pages.
    FdtTooLarge,
    /// The root FDT page's own bit is cleared from the radix tree.
    FdtPageUnpreserved,
    /// The first client subtree's `preserved-data` points outside RAM.
    SubtreeDataOutsideRam,
    /// The first client subtree appears twice.
    SubtreeDuplicate,
    /// The first client subtree's `blob-size` is 2^62.
    SubtreeBlobSizeAbsurd,
    /// The memblock blob's root `compatible` becomes `"memblock-v9"`.
    MemblockCompatible,
    /// The memblock blob gets a second region over the `kho_log` region.
    MemblockOverlap,
    /// The memblock blob's `kho_log` region starts outside RAM.
    MemblockOutsideRam,
    /// `kexec-metadata` says version 2.
    KexecMetadataVersion,
    /// `kexec-metadata`'s `blob-size` is 40, shorter than its 73 bytes.
    KexecMetadataShort,
    /// `kexec-metadata`'s `kexec_count` is `u32::MAX`: one more kexec
    /// would overflow it.
    KexecMetadataCount,
    /// The vmalloc descriptor's first chunk is outside RAM.
    VmallocChunkOutsideRam,
    /// The vmalloc descriptor's first chunk is not page-aligned.
    VmallocChunkMisaligned,
    /// The vmalloc descriptor's first chunk is a RAM page nobody preserved
    /// (the radix root).
    VmallocChunkUnpreserved,
    /// The first block of the vmalloc area is a RAM page nobody preserved
    /// (the radix root).
    VmallocBlockUnpreserved,
    /// One byte of the first preserved folio is flipped after its checksum
    /// was recorded.
    ContentFlip,
    /// A 2 MiB block inside scratch area 1 is added to the radix tree.
    RadixLeafInScratch,
    /// A 2 MiB block at 32 GiB (no RAM in the fault scenarios) is added to
    /// the radix tree.
    RadixLeafOutsideRam,
    /// The order-0 leaf is moved into the last page of scratch area 1.
    RadixNodeInScratch,
    /// Scratch array entry 1 has size 0 (Linux writes such entries; the
    /// next generation must accept it).
    ScratchZeroSize,
    /// The scratch array's length is not a multiple of 16 (x86_64:
    /// `kho_data.scratch_size`, arm64: the `linux,kho-scratch` size cell).
    ScratchLength,
    /// x86_64: the KHO `setup_data` entry loses its type and points at
    /// itself.
    SetupDataSelfLoop,
    /// x86_64: two untyped `setup_data` entries point at each other.
    SetupDataLoop,
    /// x86_64: a chain of 70 untyped `setup_data` entries.
    SetupDataLongChain,
    /// x86_64: the first `setup_data` entry points outside RAM.
    SetupDataOutsideRam,
    /// x86_64: the zero page's `boot_flag` is 0 instead of 0xaa55.
    ZeroPageMagic,
    /// x86_64: the zero page says 200 e820 entries; the table holds 128.
    E820TooMany,
    /// arm64: the next DTB's `cpus` node name gets a '/': the strict parser
    /// refuses the DTB, its memory nodes and `/chosen` stay readable.
    DtbInvalid,
    /// arm64: `/chosen` `linux,kho-fdt` is written with one address and
    /// one size cell while the root says two of each.
    ChosenCells,
    /// arm64: `/chosen` has `linux,kho-fdt` but no `linux,kho-scratch`.
    ChosenOneProperty,
}

impl FaultClass {
    /// Every class with its command-line name.
    pub const ALL: [(FaultClass, &'static str); 56] = [
        (FaultClass::BadMagic, "bad-magic"),
        (FaultClass::Truncated, "truncated"),
        (FaultClass::Compatible, "compatible"),
        (FaultClass::MemoryMapMissing, "memory-map-missing"),
        (FaultClass::MemoryMap4Bytes, "memory-map-4-bytes"),
        (FaultClass::MemoryMapZero, "memory-map-zero"),
        (FaultClass::MemoryMapOutsideRam, "memory-map-outside-ram"),
        (FaultClass::SubtreeDataZero, "subtree-data-zero"),
        (FaultClass::RadixOutsideRam, "radix-outside-ram"),
        (FaultClass::RadixCycle, "radix-cycle"),
        (FaultClass::V1ChunkCycle, "v1-chunk-cycle"),
        (FaultClass::V1ChunkOutsideRam, "v1-chunk-outside-ram"),
        (FaultClass::RadixFullLeaf, "radix-full-leaf"),
        (FaultClass::RadixOverlap, "radix-overlap"),
        (FaultClass::RadixMisalignedEntry, "radix-misaligned-entry"),
        (FaultClass::RadixSharedNode, "radix-shared-node"),
        (FaultClass::VmallocCycle, "vmalloc-cycle"),
        (
            FaultClass::VmallocBlockOutsideRam,
            "vmalloc-block-outside-ram",
        ),
        (
            FaultClass::VmallocBlockMisaligned,
            "vmalloc-block-misaligned",
        ),
        (FaultClass::VmallocCountMismatch, "vmalloc-count-mismatch"),
        (
            FaultClass::ScratchOverlapsPreserved,
            "scratch-overlaps-preserved",
        ),
        (FaultClass::ScratchOutsideRam, "scratch-outside-ram"),
        (FaultClass::ScratchMisaligned, "scratch-misaligned"),
        (FaultClass::ScratchOverlapping, "scratch-overlapping"),
        (FaultClass::HandoffLength, "handoff-length"),
        (FaultClass::HeapInRevival, "heap-in-revival"),
        (FaultClass::FdtTooLarge, "fdt-too-large"),
        (FaultClass::FdtPageUnpreserved, "fdt-page-unpreserved"),
        (
            FaultClass::SubtreeDataOutsideRam,
            "subtree-data-outside-ram",
        ),
        (FaultClass::SubtreeDuplicate, "subtree-duplicate"),
        (
            FaultClass::SubtreeBlobSizeAbsurd,
            "subtree-blob-size-absurd",
        ),
        (FaultClass::MemblockCompatible, "memblock-compatible"),
        (FaultClass::MemblockOverlap, "memblock-overlap"),
        (FaultClass::MemblockOutsideRam, "memblock-outside-ram"),
        (FaultClass::KexecMetadataVersion, "kexec-metadata-version"),
        (FaultClass::KexecMetadataShort, "kexec-metadata-short"),
        (FaultClass::KexecMetadataCount, "kexec-metadata-count"),
        (
            FaultClass::VmallocChunkOutsideRam,
            "vmalloc-chunk-outside-ram",
        ),
        (
            FaultClass::VmallocChunkMisaligned,
            "vmalloc-chunk-misaligned",
        ),
        (
            FaultClass::VmallocChunkUnpreserved,
            "vmalloc-chunk-unpreserved",
        ),
        (
            FaultClass::VmallocBlockUnpreserved,
            "vmalloc-block-unpreserved",
        ),
        (FaultClass::ContentFlip, "content-flip"),
        (FaultClass::RadixLeafInScratch, "radix-leaf-in-scratch"),
        (FaultClass::RadixLeafOutsideRam, "radix-leaf-outside-ram"),
        (FaultClass::RadixNodeInScratch, "radix-node-in-scratch"),
        (FaultClass::ScratchZeroSize, "scratch-zero-size"),
        (FaultClass::ScratchLength, "scratch-length"),
        (FaultClass::SetupDataSelfLoop, "setup-data-self-loop"),
        (FaultClass::SetupDataLoop, "setup-data-loop"),
        (FaultClass::SetupDataLongChain, "setup-data-long-chain"),
        (FaultClass::SetupDataOutsideRam, "setup-data-outside-ram"),
        (FaultClass::ZeroPageMagic, "zero-page-magic"),
        (FaultClass::E820TooMany, "e820-too-many"),
        (FaultClass::ChosenCells, "chosen-cells"),
        (FaultClass::ChosenOneProperty, "chosen-one-property"),
        (FaultClass::DtbInvalid, "dtb-invalid"),
    ];

    fn parse(s: &str) -> Option<FaultClass> {
        FaultClass::ALL
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(c, _)| *c)
    }

    /// Whether the fault is applied at hand-off time, after the handover
    /// checks and just before the jump: the scratch array and the arch entry
    /// only exist then, and a corrupted radix tree would fail the outgoing
    /// generation's own checks. The other classes corrupt the KHO state as
    /// soon as it is built, so `fdt-out` shows the damage.
    pub fn at_handoff(self) -> bool {
        self.arch_handoff()
            || matches!(
                self,
                FaultClass::RadixOutsideRam
                    | FaultClass::RadixCycle
                    | FaultClass::V1ChunkCycle
                    | FaultClass::V1ChunkOutsideRam
                    | FaultClass::RadixFullLeaf
                    | FaultClass::RadixOverlap
                    | FaultClass::RadixMisalignedEntry
                    | FaultClass::RadixSharedNode
                    | FaultClass::ScratchOverlapsPreserved
                    | FaultClass::ScratchOutsideRam
                    | FaultClass::ScratchMisaligned
                    | FaultClass::ScratchOverlapping
                    | FaultClass::FdtPageUnpreserved
                    | FaultClass::RadixLeafInScratch
                    | FaultClass::RadixLeafOutsideRam
                    | FaultClass::RadixNodeInScratch
                    | FaultClass::ScratchZeroSize
            )
    }

    /// Whether the fault edits the arch handoff itself (the x86 zero page
    /// and its `setup_data`, the arm64 `/chosen`): the arch module applies
    /// it (`arch::corrupt_handoff`).
    pub fn arch_handoff(self) -> bool {
        matches!(
            self,
            FaultClass::HandoffLength
                | FaultClass::ScratchLength
                | FaultClass::SetupDataSelfLoop
                | FaultClass::SetupDataLoop
                | FaultClass::SetupDataLongChain
                | FaultClass::SetupDataOutsideRam
                | FaultClass::ZeroPageMagic
                | FaultClass::E820TooMany
                | FaultClass::ChosenCells
                | FaultClass::ChosenOneProperty
                | FaultClass::DtbInvalid
        )
    }
}

/// `kho_stub.fault=CLASS@GEN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What to corrupt.
    pub class: FaultClass,
    /// The generation whose outgoing handover is corrupted.
    pub generation: u32,
}

/// Everything the command line configures.
#[derive(Debug)]
pub struct Config {
    /// This generation's number (`kho_stub.gen`).
    pub generation: u32,
    /// Total generations (`kho_stub.generations`); at least 1.
    pub generations: u32,
    /// Seed of the preserved content (`kho_stub.seed`).
    pub seed: u64,
    /// Fault injection (`kho_stub.fault`).
    pub fault: Option<Fault>,
    /// `kho=` and `kho_scratch=`, parsed as Linux parses them.
    pub kho: KhoCmdline,
    /// Pages of the vmalloc area each generation preserves
    /// (`kho_stub.vmalloc_pages`, default 600: more than one chunk).
    pub vmalloc_pages: u32,
    /// The `reserve_mem=` region used as the log (the one named
    /// [`LOG_REGION`]), if any.
    pub log: Option<LogRegion>,
    /// Generation that pauses before its kexec (`kho_stub.pause_at`) so the
    /// harness can dump guest memory.
    pub pause_at: Option<u32>,
    /// Extra client subtrees each generation publishes (`kho_stub.subtrees`).
    pub subtrees: Subtrees,
    /// What the last generation does (`kho_stub.next=linux`: boot the
    /// payload's Linux kernel instead of exiting).
    pub next: Next,
    /// Publish (and verify) lib/test_kho.c's `kho_test` subtree every
    /// generation (`kho_stub.kho_test=1`).
    pub kho_test: bool,
    /// Hypervisor-scale guest memory, created once and kept by every
    /// generation (`kho_stub.guest=1g:N,2m:N,4k:N`; `guest.rs`).
    pub guest: crate::guest::GuestSpec,
    /// The KHO ABI version this generation's outgoing handover is written
    /// in: `kho_stub.abi=v1|v2|v3|v4`, or a comma-separated list indexed by
    /// generation whose last entry holds for every later generation
    /// (`v1,v2,v3,v4`: generation 0 writes kho-v1, 1 kho-v2, 2 kho-v3, 3
    /// and later kho-v4). Default the newest, kho-v4. Incoming handovers of
    /// every version are read whatever this says.
    pub abi: AbiVersion,
}

/// What the last generation does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Next {
    /// Print `KHO done` and exit.
    #[default]
    Exit,
    /// Boot the payload's Linux kernel with a KHO handover.
    Linux,
}

/// How many extra client subtrees to publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Subtrees {
    /// None.
    #[default]
    None,
    /// Exactly this many.
    Count(u32),
    /// As many as fit in the one-page root FDT.
    Max,
}

/// The name of the first extra client subtree (`kho_stub.subtrees`).
pub const FIRST_CLIENT: &str = "client-000";

/// Name of the `reserve_mem=` region every generation appends a line to.
pub const LOG_REGION: &str = "kho_log";

/// A `reserve_mem=size:align:name` request for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRegion {
    /// Bytes.
    pub size: u64,
    /// Alignment of the start.
    pub align: u64,
}

/// A malformed `kho_stub.*` parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The parameter, as written.
    pub param: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad parameter {:?}: {}", self.param, self.reason)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            generation: 0,
            generations: 1,
            seed: 0x6b68_6f2d_7273,
            fault: None,
            kho: KhoCmdline::default(),
            vmalloc_pages: 600,
            guest: crate::guest::GuestSpec::default(),
            log: None,
            pause_at: None,
            subtrees: Subtrees::None,
            next: Next::Exit,
            kho_test: false,
            abi: AbiVersion::NEWEST,
        }
    }
}

/// Most entries of a `kho_stub.abi=` list.
pub const MAX_ABI_LIST: usize = 64;

/// `v1`, `v2`, `v3`, `v4`: the version whose compatible is `kho-` and the
/// word.
fn parse_abi(s: &str) -> Option<AbiVersion> {
    AbiVersion::ALL
        .into_iter()
        .find(|v| v.compatible().strip_prefix("kho-") == Some(s))
}

/// The version `generation` writes from a `kho_stub.abi=` value: one
/// version, or a comma-separated list of at most [`MAX_ABI_LIST`] indexed
/// by generation, its last entry for every generation past its end.
fn parse_abi_list(s: &str, generation: u32) -> Option<AbiVersion> {
    let mut chosen = None;
    for (i, word) in s.split(',').enumerate() {
        if i >= MAX_ABI_LIST {
            return None;
        }
        let v = parse_abi(word)?;
        if chosen.is_none() || i as u64 <= u64::from(generation) {
            chosen = Some(v);
        }
    }
    chosen
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Config {
    /// Parse the whole command line. `kho=`/`kho_scratch=` errors are kept in
    /// `kho.error` (Linux ignores a bad early parameter and boots on); a bad
    /// `kho_stub.*` parameter is an error because the test cannot run.
    pub fn parse(cmdline: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            kho: kho_scratch::parse_cmdline(cmdline),
            ..Config::default()
        };
        // `kho_stub.abi` depends on `kho_stub.gen`, which may come later.
        let mut abi_word: Option<&str> = None;
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let bad = |reason| ConfigError {
                param: String::from(word),
                reason,
            };
            match key {
                "kho_stub.gen" => {
                    cfg.generation = parse_u64(value)
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| bad("not a 32-bit number"))?;
                }
                "kho_stub.generations" => {
                    cfg.generations = parse_u64(value)
                        .and_then(|v| u32::try_from(v).ok())
                        .filter(|&v| v >= 1)
                        .ok_or_else(|| bad("not a number from 1 up"))?;
                }
                "kho_stub.seed" => {
                    cfg.seed = parse_u64(value).ok_or_else(|| bad("not a number"))?
                }
                "kho_stub.fault" => {
                    let (class, generation) = value
                        .split_once('@')
                        .ok_or_else(|| bad("expected CLASS@GEN"))?;
                    let class =
                        FaultClass::parse(class).ok_or_else(|| bad("unknown fault class"))?;
                    let generation = parse_u64(generation)
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| bad("bad generation"))?;
                    cfg.fault = Some(Fault { class, generation });
                }
                "kho_stub.pause_at" => {
                    cfg.pause_at = Some(
                        parse_u64(value)
                            .and_then(|v| u32::try_from(v).ok())
                            .ok_or_else(|| bad("not a 32-bit number"))?,
                    );
                }
                "kho_stub.subtrees" => {
                    cfg.subtrees = match value {
                        "max" => Subtrees::Max,
                        n => Subtrees::Count(
                            parse_u64(n)
                                .and_then(|v| u32::try_from(v).ok())
                                .ok_or_else(|| bad("not a count or max"))?,
                        ),
                    };
                }
                "kho_stub.abi" => abi_word = Some(word),
                "kho_stub.next" => {
                    cfg.next = match value {
                        "linux" => Next::Linux,
                        "exit" => Next::Exit,
                        _ => return Err(bad("not linux or exit")),
                    };
                }
                "kho_stub.kho_test" => {
                    cfg.kho_test = match value {
                        "1" => true,
                        "0" => false,
                        _ => return Err(bad("not 0 or 1")),
                    };
                }
                "kho_stub.guest" => {
                    cfg.guest = crate::guest::GuestSpec::parse(value).map_err(bad)?;
                }
                "kho_stub.vmalloc_pages" => {
                    cfg.vmalloc_pages = parse_u64(value)
                        .and_then(|v| u32::try_from(v).ok())
                        .filter(|&v| v <= 1 << 20)
                        .ok_or_else(|| bad("not a page count up to 1048576"))?;
                }
                "reserve_mem" => {
                    // Linux parses every reserve_mem= (a bad one is an error
                    // there too); the stub uses the one named kho_log.
                    let r = kho_memblock::parse_reserve_mem(value)
                        .map_err(|_| bad("not size:align:name"))?;
                    if r.name == LOG_REGION {
                        cfg.log = Some(LogRegion {
                            size: r.size,
                            align: r.align,
                        });
                    }
                }
                k if k.starts_with("kho_stub.") => return Err(bad("unknown kho_stub parameter")),
                _ => {}
            }
        }
        if let Some(word) = abi_word {
            let value = word.split_once('=').map_or("", |(_, v)| v);
            cfg.abi = parse_abi_list(value, cfg.generation).ok_or_else(|| ConfigError {
                param: String::from(word),
                reason: "not v1, v2, v3 or v4, or a list of at most 64 of them",
            })?;
        }
        Ok(cfg)
    }

    /// Whether KHO is on (`kho=` given and true; the stub's default is off,
    /// as Linux's is unless built with `KEXEC_HANDOVER_ENABLE_DEFAULT`).
    pub fn kho_enabled(&self) -> bool {
        self.kho.enable == Some(true)
    }

    /// Whether this is the last generation of the run.
    pub fn is_last(&self) -> bool {
        self.generation + 1 >= self.generations
    }
}

/// The command line for the next generation: `kho_stub.gen` set to `next`,
/// everything else unchanged.
pub fn next_cmdline(cmdline: &str, next: u32) -> String {
    let mut out = String::new();
    for word in cmdline
        .split_ascii_whitespace()
        .filter(|w| !w.starts_with("kho_stub.gen="))
    {
        out.push_str(word);
        out.push(' ');
    }
    out.push_str("kho_stub.gen=");
    let mut digits = [0u8; 10];
    let mut n = next;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&b| char::from(b)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stub_knobs_and_kho_params() {
        let c = Config::parse("console=ttyS0 kho=on kho_scratch=16M,64M,32M kho_stub.gen=3 kho_stub.generations=10 kho_stub.seed=0x1234 kho_stub.fault=compatible@3").unwrap();
        assert_eq!((c.generation, c.generations, c.seed), (3, 10, 0x1234));
        assert_eq!(
            c.fault,
            Some(Fault {
                class: FaultClass::Compatible,
                generation: 3
            })
        );
        assert!(c.kho_enabled());
        assert!(c.kho.scratch.is_some());
        assert!(!c.is_last());
        assert_eq!((c.vmalloc_pages, c.log), (600, None));
        let l = Config::parse(
            "reserve_mem=64K:4K:kho_log reserve_mem=1M:4K:other kho_stub.vmalloc_pages=5000",
        )
        .unwrap();
        assert_eq!(
            l.log,
            Some(LogRegion {
                size: 64 << 10,
                align: 4096
            })
        );
        assert_eq!(l.vmalloc_pages, 5000);
        assert_eq!(
            Config::parse("kho_stub.subtrees=max").unwrap().subtrees,
            Subtrees::Max
        );
        assert_eq!(
            Config::parse("kho_stub.subtrees=12").unwrap().subtrees,
            Subtrees::Count(12)
        );
        let d = Config::parse("").unwrap();
        assert_eq!((d.generation, d.generations), (0, 1));
        assert_eq!((d.next, d.kho_test), (Next::Exit, false));
        let l = Config::parse("kho_stub.next=linux kho_stub.kho_test=1").unwrap();
        assert_eq!((l.next, l.kho_test), (Next::Linux, true));
        assert_eq!(d.abi, AbiVersion::V4);
        for (word, abi) in [
            ("v1", AbiVersion::V1),
            ("v2", AbiVersion::V2),
            ("v3", AbiVersion::V3),
            ("v4", AbiVersion::V4),
        ] {
            let c = Config::parse(&alloc::format!("kho=on kho_stub.abi={word}")).unwrap();
            assert_eq!(c.abi, abi);
        }
        assert!(!d.kho_enabled() && d.is_last());
    }

    #[test]
    fn bad_knobs_are_errors_naming_the_parameter() {
        for (line, reason) in [
            ("kho_stub.gen=x", "not a 32-bit number"),
            ("kho_stub.generations=0", "not a number from 1 up"),
            ("kho_stub.fault=compatible", "expected CLASS@GEN"),
            ("kho_stub.fault=nonsense@1", "unknown fault class"),
            ("kho_stub.bogus=1", "unknown kho_stub parameter"),
            ("kho_stub.next=bzimage", "not linux or exit"),
            ("kho_stub.kho_test=yes", "not 0 or 1"),
            (
                "kho_stub.abi=v5",
                "not v1, v2, v3 or v4, or a list of at most 64 of them",
            ),
            (
                "kho_stub.abi=kho-v4",
                "not v1, v2, v3 or v4, or a list of at most 64 of them",
            ),
            (
                "kho_stub.abi=",
                "not v1, v2, v3 or v4, or a list of at most 64 of them",
            ),
            (
                "kho_stub.abi=v1,,v2",
                "not v1, v2, v3 or v4, or a list of at most 64 of them",
            ),
            (
                "kho_stub.vmalloc_pages=99999999",
                "not a page count up to 1048576",
            ),
            ("reserve_mem=0:4K:kho_log", "not size:align:name"),
        ] {
            let e = Config::parse(line).unwrap_err();
            assert_eq!((e.param.as_str(), e.reason), (line, reason));
        }
        // Linux keeps booting on a bad kho_scratch=; so do we, noting it.
        assert!(
            Config::parse("kho_scratch=nonsense")
                .unwrap()
                .kho
                .error
                .is_some()
        );
    }

    #[test]
    fn an_abi_list_is_indexed_by_generation_and_its_last_entry_holds() {
        let at = |g: u32| {
            Config::parse(&alloc::format!("kho_stub.abi=v1,v2,v3,v4 kho_stub.gen={g}"))
                .unwrap()
                .abi
        };
        assert_eq!(
            [at(0), at(1), at(2), at(3), at(4), at(99)],
            [
                AbiVersion::V1,
                AbiVersion::V2,
                AbiVersion::V3,
                AbiVersion::V4,
                AbiVersion::V4,
                AbiVersion::V4
            ]
        );
        let long = alloc::vec!["v2"; MAX_ABI_LIST + 1].join(",");
        assert!(Config::parse(&alloc::format!("kho_stub.abi={long}")).is_err());
    }

    #[test]
    fn next_cmdline_advances_the_generation() {
        assert_eq!(
            next_cmdline("kho=on kho_stub.gen=9 x=y", 10),
            "kho=on x=y kho_stub.gen=10"
        );
        assert_eq!(next_cmdline("kho=on", 1), "kho=on kho_stub.gen=1");
    }
}
