//! One generation of the stub: revive, verify, change the preserved set, hand over.
//!
//! The order follows Linux: validate the handover (`kho_populate`), take the
//! scratch areas, walk the radix tree and reserve every preserved block
//! before allocating anything outside scratch (`kho_memory_init`), then let
//! the "clients" (the folios, the stub's blob, `kexec-metadata`) restore
//! their memory. Any failure before the reservation is "no revival": the
//! generation boots cold with a one-line reason.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use kho::{KhoIn, KhoOut};
use kho_abi::AbiVersion;
use kho_abi::v1::BitmapSize;
use kho_abi::vmalloc::VmallocDescriptor;
use kho_bitmaps::IncomingMap;
use kho_mem::{Order, PhysAddr, PhysMem, PhysRange};
use kho_radix::VisitedSet;
use kho_scratch::{AreaKind, BootUsage, MemRegion, ScratchAllocator, ScratchAreas, ScratchSizes};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

use crate::arch;
use crate::config::{Config, FaultClass, Next, Subtrees, next_cmdline};
use crate::content::{self, Checksum};
use crate::mem::StubMem;
use crate::why::Why;
use kho_abi::stub::{self as blob, Header, Record};

/// What the arch layer learned at entry.
#[derive(Debug)]
pub struct BootInfo {
    /// The firmware's (or previous generation's) memory map.
    pub memory: Vec<MemRegion>,
    /// The kernel command line.
    pub cmdline: String,
    /// The handover, if one was passed; `Err` if the handoff itself (the
    /// setup_data entry or `/chosen` properties) is malformed.
    pub handover: Result<Option<kho::Handover>, String>,
    /// Where the initrd is: the payload (next kernel, initramfs, command
    /// line; see `payload.rs`), if any. `Err`: the initrd is named in a
    /// malformed way.
    pub payload: Result<Option<PhysRange>, String>,
    /// Arch-private boot state needed to write the next handoff.
    pub arch: arch::ArchBoot,
}

/// Folios preserved per generation, by order.
const ORDERS: [u32; 4] = [0, 1, 3, 9];
/// A folio is kept this many generations after the one that filled it.
const KEEP_GENERATIONS: u32 = 3;
/// Most radix nodes an incoming walk may visit.
const MAX_WALK_NODES: usize = 16 * 1024;
/// Most bitmaps an incoming kho-v1 chunk list may have: the walk's buffer
/// is sized for this many (`IncomingMap::words_for`, about 8.5 KiB), and a
/// longer list is `TooManyPages`, a failed revival. 1024 page bitmaps
/// cover 128 GiB of densely preserved 4 KiB pages, far more than any
/// scenario preserves.
const MAX_V1_BITMAPS: usize = 1024;

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut console = Console(arch::console());
        let _ = writeln!(console, $($arg)*);
    }};
}

/// Ticks spent writing protocol lines this generation (`ticks-console`):
/// the console is an emulated UART, one device access per byte.
static CONSOLE_TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The arch console, timed into [`CONSOLE_TICKS`].
struct Console(arch::Serial);

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let t = arch::ticks();
        let r = self.0.write_str(s);
        CONSOLE_TICKS.fetch_add(
            arch::ticks().wrapping_sub(t),
            core::sync::atomic::Ordering::Relaxed,
        );
        r
    }
}

/// The ticks [`Console`] has spent so far.
fn console_ticks() -> u64 {
    CONSOLE_TICKS.load(core::sync::atomic::Ordering::Relaxed)
}

/// A reason for a quoted protocol field: one line, no double quotes
/// (they become single quotes), so the field ends at the line's last `"`.
struct Quoted<'a>(&'a dyn core::fmt::Display);

impl core::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = format!("{}", self.0);
        for c in text.chars() {
            f.write_char(match c {
                '"' => '\'',
                '\n' | '\r' => ' ',
                c => c,
            })?;
        }
        Ok(())
    }
}

/// Report a fatal error and exit the VM with the failure code.
pub fn fail(generation: u32, reason: &dyn core::fmt::Display) -> ! {
    say!("KHO fail gen={generation} reason=\"{}\"", Quoted(reason));
    arch::exit(false)
}

fn print_hex(verb: &str, generation: u32, bytes: &[u8]) {
    let mut console = Console(arch::console());
    let _ = write!(
        console,
        "KHO {verb} gen={generation} bytes={} hex=",
        bytes.len()
    );
    for b in bytes {
        let _ = write!(console, "{b:02x}");
    }
    let _ = writeln!(console);
}

/// This generation's number, once the command line is parsed (for the
/// panic handler's report).
static CURRENT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// This generation's number (0 until the command line is parsed).
pub fn current() -> u32 {
    CURRENT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Run one generation; never returns.
pub fn run(boot: BootInfo) -> ! {
    let t0 = arch::ticks();
    let cfg = match Config::parse(&boot.cmdline) {
        Ok(c) => c,
        Err(e) => fail(0, &e),
    };
    let g = cfg.generation;
    CURRENT.store(g, core::sync::atomic::Ordering::Relaxed);
    let mut boot = boot;
    if let Some(reason) = crate::restart::take() {
        // The first attempt's revival ran the heap out: boot cold now.
        boot.handover = Err(reason);
    }
    let mode = if matches!(boot.handover, Ok(None)) {
        "cold"
    } else {
        "kho"
    };
    say!(
        "KHO boot gen={g} arch={} mode={mode} ticks-hz={} cmdline=\"{}\"",
        arch::NAME,
        arch::tick_hz(),
        boot.cmdline.trim()
    );
    // Where this generation runs: a loader (QEMU, our kexec, Linux's
    // kexec_file_load) chose it; after a KHO boot it must be scratch.
    let (_, running) = crate::kexec::image();
    say!(
        "KHO image gen={g} addr={} size={:#x}",
        running.start(),
        running.size()
    );
    // Caches on and memory typed, as a kernel does right after entry:
    // everything from here on runs with RAM write-back.
    let setup = arch::setup_memory(&boot.memory);
    say!("KHO memtypes gen={g} {setup}");
    if !cfg.kho_enabled() {
        fail(g, &"kho=on is not set: nothing to hand over");
    }

    let memory: Vec<MemRegion> = boot
        .memory
        .iter()
        .filter_map(|r| clip(r, arch::MAPPED_LIMIT))
        .collect();
    for r in memory.iter().filter(|r| r.is_usable_ram()) {
        say!(
            "KHO memory gen={g} addr={} size={:#x} node={}",
            r.range.start(),
            r.range.size(),
            r.node.get()
        );
    }
    let mut mem = StubMem::new(
        memory.iter().filter(|r| r.is_usable_ram()).map(|r| r.range),
        arch::MAPPED_LIMIT,
    );
    mem.start_allocations_at(arch::POOL_START);
    for r in arch::boot_in_use() {
        mem.reserve(r);
    }
    mem.reserve(crate::kexec::image().1);
    // The payload stays untouched until it is copied after the walk.
    let incoming_payload = boot.payload.clone().unwrap_or(None);
    if let Some(p) = incoming_payload {
        mem.reserve(p);
    }

    // From here to the end of verification a heap exhaustion restarts this
    // generation cold (restart.rs): nothing for the next kernel exists yet.
    crate::restart::set_reviving(matches!(boot.handover, Ok(Some(_))));
    // kho_populate: validate the handover, or boot cold with a reason.
    let mut incoming = None;
    let mut failure: Option<String> = None;
    match &boot.handover {
        Ok(None) => {}
        Err(reason) => failure = Some(reason.clone()),
        Ok(Some(h)) => match KhoIn::populate(&mem, *h) {
            Ok(k) => incoming = Some(k),
            Err(e) => failure = Some(format!("{e}")),
        },
    }

    // Scratch: inherited as is on a KHO boot, placed fresh on a cold one.
    let areas = match &incoming {
        Some(k) => *k.scratch_areas(),
        None => place_cold(&cfg, &memory, incoming_payload).unwrap_or_else(|e| fail(g, &e)),
    };
    for a in areas.as_slice() {
        mem.reserve(a.range);
    }

    // kho_memory_init: reserve every preserved block before any allocation
    // outside scratch.
    let t_walk = arch::ticks();
    let boot_ticks = t_walk - t0;
    let mut walk = kho::WalkStats::default();
    // The walk's node set: its buffer is the only incoming-side memory that
    // depends on the tree (bounded by MAX_WALK_NODES, not by the blocks).
    let mut walk_buf = vec![0u64; VisitedSet::words_for(MAX_WALK_NODES)];
    let mut visited = VisitedSet::new(&mut walk_buf);
    // kho-v1's chunk and bitmap pages, listed by its walk (a fixed buffer:
    // a longer list is a failed revival, never a larger allocation).
    // Allocated only for a kho-v1 handover, so the heap of other
    // generations is as before.
    let mut v1_buf: Vec<u64> = Vec::new();
    let mut v1_pages = 0usize;
    if let Some(k) = incoming.as_mut().filter(|k| k.version() == AbiVersion::V1) {
        v1_buf = vec![0u64; IncomingMap::words_for(MAX_V1_BITMAPS)];
        let view = mem.ram_view();
        let result = k
            .reserve_preserved_v1(&view, BitmapSize::Page, &mut v1_buf, |range, _| {
                mem.claim(range).map_err(|used| kho::Error::BlockInUse {
                    addr: range.start(),
                    size: range.size(),
                    used,
                })
            })
            .and_then(|stats| {
                // The map's pages (chunks tagged with bit 0, page bitmaps)
                // are kept until every client restored its memory.
                let listed = usize::try_from(stats.nodes).unwrap_or(usize::MAX);
                for &word in v1_buf.get(..listed).unwrap_or_default() {
                    let page =
                        PhysRange::try_new(PhysAddr::new(word & !1), kho_mem::PAGE_SIZE as u64)?;
                    mem.claim(page).map_err(|used| kho::Error::BlockInUse {
                        addr: page.start(),
                        size: page.size(),
                        used,
                    })?;
                    v1_pages += 1;
                }
                Ok(stats)
            });
        match result {
            Ok(stats) => walk = stats,
            Err(e) => {
                failure = Some(format!("{e}"));
                incoming = None;
            }
        }
    }
    if let Some(k) = incoming.as_mut().filter(|k| k.version() != AbiVersion::V1) {
        // Each block is claimed as it is found: one overlapping the image,
        // boot data, scratch, the payload or another block is corrupt.
        let view = mem.ram_view();
        let result = k
            .reserve_preserved(&view, &mut visited, |range, _| {
                mem.claim(range).map_err(|used| kho::Error::BlockInUse {
                    addr: range.start(),
                    size: range.size(),
                    used,
                })
            })
            .and_then(|stats| {
                // The tree's own pages hold what is not restored yet: kept
                // until every client restored its memory.
                for node in visited.nodes() {
                    let page = PhysRange::try_new(node, kho_mem::PAGE_SIZE as u64)?;
                    mem.claim(page).map_err(|used| kho::Error::BlockInUse {
                        addr: node,
                        size: page.size(),
                        used,
                    })?;
                }
                Ok(stats)
            });
        // Reservations made before a failure stay, as in Linux.
        match result {
            Ok(stats) => walk = stats,
            Err(e) => {
                failure = Some(format!("{e}"));
                incoming = None;
            }
        }
    }
    let walk_ticks = arch::ticks() - t_walk;
    // Every preserved block is reserved: copy the payload out of the way of
    // the handoff's scratch allocations.
    let payload = incoming_payload
        .map(|p| crate::carry::carry(&mut mem, p))
        .transpose()
        .unwrap_or_else(|e| fail(g, &e));

    match (&incoming, &failure) {
        (Some(k), _) => {
            let h = k.handover();
            say!(
                "KHO revival gen={g} result=ok fdt={} scratch={}+{:#x}",
                h.fdt,
                h.scratch,
                h.scratch_len
            );
            print_hex("fdt-in", g, k.fdt_bytes());
        }
        (None, Some(reason)) => {
            say!(
                "KHO revival gen={g} result=failed reason=\"{}\"",
                Quoted(reason)
            )
        }
        (None, None) => say!("KHO revival gen={g} result=none reason=\"no handover\""),
    }
    for (i, a) in areas.as_slice().iter().enumerate() {
        let kind = match a.kind {
            AreaKind::Lowmem => String::from("lowmem"),
            AreaKind::Global => String::from("global"),
            AreaKind::Node(n) => format!("node{}", n.get()),
        };
        say!(
            "KHO scratch gen={g} index={i} kind={kind} addr={} size={:#x}",
            a.range.start(),
            a.range.size()
        );
    }
    say!(
        "KHO walk gen={g} blocks={} pages={} ranges={} nodes={} ticks={walk_ticks}",
        walk.blocks,
        walk.pages,
        walk.ranges,
        walk.nodes
    );

    // Restore and verify what the previous generation preserved.
    let t_verify = arch::ticks();
    let mut kept: Vec<Record> = Vec::new();
    let mut log = None;
    let mut verified = Verified::default();
    if let Some(k) = incoming.as_mut() {
        match verify(k, &mut mem, &cfg, &mut kept, &mut log) {
            Ok(v) => verified = v,
            Err(reason) => {
                say!(
                    "KHO verify gen={g} folios=0 bytes=0 vmalloc-pages=0 log-lines=0 result=failed reason=\"{}\"",
                    Quoted(&reason)
                );
                arch::exit(false);
            }
        }
    }
    let verify_ticks = arch::ticks() - t_verify;
    crate::restart::set_reviving(false);
    // Restoring is over: the incoming tree's pages are free memory now (as
    // in Linux after memblock_free_all).
    if incoming.is_some() {
        for node in visited.nodes() {
            mem.free_page(node).unwrap_or_else(|e| fail(g, &e));
        }
        for &word in v1_buf.get(..v1_pages).unwrap_or_default() {
            mem.free_page(PhysAddr::new(word & !1))
                .unwrap_or_else(|e| fail(g, &e));
        }
    }
    let leaked = incoming.as_ref().map_or(0, |k| k.unrestored_blocks());
    let result = match &verified.partial {
        Some(reason) => format!(
            "result=partial leaked={leaked} reason=\"{}\"",
            Quoted(reason)
        ),
        None => String::from("result=ok"),
    };
    // `kho-test=` only when kho_test is on (or a subtree came anyway), so
    // other runs print the line as before.
    let kho_test = match (cfg.kho_test, verified.kho_test) {
        (_, true) => " kho-test=ok",
        (true, false) => " kho-test=none",
        (false, false) => "",
    };
    say!(
        "KHO verify gen={g} folios={} bytes={} vmalloc-pages={} log-lines={} subtrees={} kexec-count={}{kho_test} {result}",
        verified.folios,
        verified.bytes,
        verified.vmalloc_pages,
        verified.log_lines,
        verified.subtrees,
        verified.kexec_count
    );

    // Build this generation's handover.
    let t_build = arch::ticks();
    let carried = verified.kho_test_data.take();
    let (out, vmalloc) = build_outgoing(
        &mut mem,
        &cfg,
        kept,
        log,
        verified.kexec_count,
        carried.as_ref(),
        &areas,
    )
    .unwrap_or_else(|e| fail(g, &e));
    // kho-v1: everything is preserved and every subtree added; serialize
    // the bitmaps and write the root FDT (nothing from kho-v2 on).
    let mut out = out;
    out.finalize(&mut mem).unwrap_or_else(|e| fail(g, &e));
    let t_prep = arch::ticks();
    let build_ticks = t_prep - t_build;

    let fault = cfg.fault.filter(|f| f.generation == g).map(|f| f.class);
    if let Some(class) = fault.filter(|c| !c.at_handoff()) {
        radix_root(&out)
            .and_then(|root| {
                crate::fault::corrupt_state(&mut mem, class, out.fdt(), root, &vmalloc)
            })
            .unwrap_or_else(|e| fail(g, &e));
    }
    let fdt = read_fdt(&mem, out.fdt()).unwrap_or_else(|e| fail(g, &e));
    print_hex("fdt-out", g, &fdt);

    let to_linux = cfg.is_last() && cfg.next == Next::Linux;
    if cfg.is_last() && !to_linux {
        say!(
            "KHO done gen={g} generations={} heap={} ticks-boot={boot_ticks} ticks-walk={walk_ticks} ticks-verify={verify_ticks} ticks-build={build_ticks} ticks-prep={} ticks-console={} ticks-total={} result=ok",
            cfg.generations,
            crate::heap::high_water(),
            arch::ticks() - t_prep,
            console_ticks(),
            arch::ticks() - t0
        );
        arch::exit(true);
    }

    // The handoff: everything the next kernel needs at boot goes in scratch.
    let mut scratch: ScratchAllocator = ScratchAllocator::new(&areas);
    let result = (|| -> Result<(crate::kexec::Kexec, PhysRange, Vec<PhysRange>), String> {
        // This image may itself lie in scratch (where our kexec or Linux's
        // kexec_file_load put it): nothing for the next kernel goes over it.
        scratch
            .reserve(crate::kexec::image().1)
            .map_err(|e| format!("the running image: {e}"))?;
        let array_len = areas.array_byte_len();
        let array = scratch
            .alloc(array_len, kho_abi::scratch::ARRAY_SEGMENT_ALIGN)
            .map_err(|e| format!("scratch array: {e}"))?;
        let array = areas
            .write_array(&mut mem, array.start())
            .map_err(|e| format!("scratch array: {e}"))?;
        let kexec = if to_linux {
            let p = payload.ok_or_else(|| match &boot.payload {
                Err(e) => format!("kho_stub.next=linux: no payload: {e}"),
                Ok(_) => String::from("kho_stub.next=linux: no payload (initrd)"),
            })?;
            arch::prepare_linux(&mut mem, &mut scratch, &boot, p, out.handover(array))?
        } else {
            let cmdline = next_cmdline(&boot.cmdline, g + 1);
            arch::prepare_kexec(
                &mut mem,
                &mut scratch,
                &boot,
                &cmdline,
                payload,
                out.handover(array),
            )?
        };
        let mut ranges = vec![array];
        ranges.extend_from_slice(kexec.ranges());
        out.check_handover(&mem, areas.as_slice(), &ranges)
            .map_err(|e| format!("{e}"))?;
        Ok((kexec, array, ranges))
    })();
    let (kexec, array, segments) = result.unwrap_or_else(|e| fail(g, &e));
    // Every range the next kernel reads at boot, for the harness to check
    // against scratch (check_handover already did, on this side).
    let mut list = String::new();
    for (i, r) in segments.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(list, "{sep}{}+{:#x}", r.start(), r.size());
    }
    say!(
        "KHO segments gen={g} count={} ranges={list}",
        segments.len()
    );
    if cfg.pause_at == Some(g) {
        // Everything the next generation will read is in memory now: say
        // what is preserved, let the harness dump memory, go on when it
        // sends a byte.
        report_preserved(&mem, &out, g);
        let h = kexec.handover();
        say!(
            "KHO pause gen={g} fdt={} scratch={}+{:#x} handoff={}",
            h.fdt,
            h.scratch,
            h.scratch_len,
            kexec.handoff().start()
        );
        arch::read_byte();
    }
    if let Some(class) = fault.filter(|c| c.at_handoff()) {
        // The array the next kernel reads (an x86 Linux boot gets a copy).
        let h = kexec.handover();
        let array = PhysRange::try_new(h.scratch, h.scratch_len).unwrap_or(array);
        corrupt_handoff(&mut mem, class, &out, &kexec, array).unwrap_or_else(|e| fail(g, &e));
    }
    let next = match kexec.linux_target() {
        Some(l) => {
            let initrd = l.initrd.map_or((0, 0), |r| (r.start().as_u64(), r.size()));
            say!(
                "KHO linux gen={g} kernel={}+{:#x} initrd={:#x}+{:#x} handoff={} cmdline=\"{}\"",
                l.kernel.start(),
                l.kernel.size(),
                initrd.0,
                initrd.1,
                kexec.handoff().start(),
                Quoted(&l.cmdline)
            );
            String::from("linux")
        }
        None => format!("{}", g + 1),
    };
    let now = arch::ticks();
    say!(
        "KHO kexec gen={g} next={next} heap={} ticks-boot={boot_ticks} ticks-walk={walk_ticks} ticks-verify={verify_ticks} ticks-build={build_ticks} ticks-prep={} ticks-console={} ticks-total={}",
        crate::heap::high_water(),
        now - t_prep,
        console_ticks(),
        now - t0
    );
    crate::kexec::kexec(&kexec)
}

/// Clip a memory-map entry to the identity map's reach.
fn clip(r: &MemRegion, limit: u64) -> Option<MemRegion> {
    let start = r.range.start().as_u64();
    if start >= limit || r.range.is_empty() {
        return None;
    }
    let end = r.range.end().map_or(limit, |e| e.as_u64().min(limit));
    let range = PhysRange::try_new(r.range.start(), end - start).ok()?;
    Some(MemRegion::new(range, r.kind, r.node))
}

/// Place scratch on a cold boot from `kho_scratch=` (or the default sizing,
/// where "memory the kernel allocated during boot" is the stub's image).
fn place_cold(
    cfg: &Config,
    memory: &[MemRegion],
    payload: Option<PhysRange>,
) -> Result<ScratchAreas, String> {
    let image = crate::kexec::image().1;
    let usage = BootUsage::new(image.size(), image.size());
    let sizes =
        ScratchSizes::compute(cfg.kho.scratch_or_default(), &usage).map_err(|e| format!("{e}"))?;
    let mut in_use: Vec<PhysRange> = arch::boot_in_use();
    in_use.push(image);
    in_use.extend(payload);
    kho_scratch::place_scratch(memory, &in_use, &sizes, arch::low_limit(memory))
        .map_err(|e| format!("{e}"))
}

#[derive(Debug, Default)]
struct Verified {
    folios: u64,
    bytes: u64,
    vmalloc_pages: u64,
    log_lines: u32,
    kexec_count: u32,
    /// A client whose state could not be restored: as in Linux the revival
    /// stands, that client's preserved blocks stay reserved (leaked).
    partial: Option<String>,
    /// Extra client subtrees restored and checked.
    subtrees: u32,
    /// lib/test_kho.c's `kho_test` subtree was restored and checked.
    kho_test: bool,
    /// What it restored, to be handed on unchanged.
    kho_test_data: Option<crate::kho_test::Restored>,
}

/// Name prefix of the extra client subtrees (`kho_stub.subtrees`).
const CLIENT_PREFIX: &str = "client-";
/// Block ids of client-subtree pages start here.
const CLIENT_BLOCK_BASE: u32 = 1 << 17;

/// The `reserve_mem` log region, kept at the same address across
/// generations.
#[derive(Debug)]
struct Log {
    range: PhysRange,
    /// The generation that wrote the first line.
    first: u32,
    lines: u32,
    used: u64,
}

/// Block ids of vmalloc pages start here (folios use small ids).
const VMALLOC_BLOCK_BASE: u32 = 1 << 16;

/// The line generation `generation` appends to the log.
fn log_line(generation: u32, seed: u64) -> String {
    format!("kho-stub gen={generation} seed={seed:#x}\n")
}

/// Smallest order whose block holds `bytes`.
fn order_for(bytes: u64) -> Order {
    let pages = bytes.div_ceil(kho_mem::PAGE_SIZE as u64).max(1);
    Order::try_new(pages.next_power_of_two().trailing_zeros()).unwrap_or(Order::MAX)
}

fn text<E: core::fmt::Display>(e: E) -> String {
    format!("{e}")
}

/// Restore and check everything the previous generation preserved; every
/// preserved block must be accounted for.
///
/// As in Linux, a client that cannot be restored fails alone: its error
/// becomes the partial-revival reason (the first one wins), its blocks stay
/// reserved, and every other client is restored as usual. Only a handover
/// the stub cannot attribute at all (its own subtree left out) is an error.
fn verify(
    k: &mut KhoIn,
    mem: &mut StubMem,
    cfg: &Config,
    kept: &mut Vec<Record>,
    log: &mut Option<Log>,
) -> Result<Verified, String> {
    let g = cfg.generation;
    // Malformed children are left out (as Linux's kho_retrieve_subtree
    // fails for that client alone); the others are verified as usual.
    let rejected = Rejected::of(k);
    if cfg
        .fault
        .is_some_and(|f| f.class == FaultClass::HeapInRevival && f.generation + 1 == g)
    {
        // The simulated failure: more than the whole heap, at once.
        let hog = vec![0u8; crate::heap::HEAP_SIZE + 1];
        core::hint::black_box(&hog);
    }
    let mut v = Verified::default();
    // A failed client: the first reason is the one reported.
    let lost = |v: &mut Verified, reason: String| {
        v.partial.get_or_insert(reason);
    };

    // kexec-metadata: without it the count starts again at 0, as Linux's
    // kho_in.kexec_count does.
    let mut release = String::new();
    // kho-v1 has no kexec-metadata (its children have no blob-size): the
    // stub's wrapped blob carries the count instead (below).
    let v1 = k.version() == AbiVersion::V1;
    let meta = (|| -> Result<(u32, String), String> {
        let meta = k
            .kexec_metadata(mem)
            .map_err(text)?
            .ok_or("no kexec-metadata subtree")?;
        let count = meta.kexec_count.get();
        let release = String::from_utf8_lossy(meta.release_bytes()).into_owned();
        let (page, _) = k
            .subtree(kho_abi::metadata::SUBTREE_NAME)
            .ok_or("no kexec-metadata subtree")?;
        k.restore_folio(mem, page, Order::ZERO)
            .map_err(|e| format!("kexec-metadata page: {e}"))?;
        mem.free_page(page).map_err(text)?;
        Ok((count, release))
    })();
    match meta {
        _ if v1 => {}
        Ok((count, r)) => {
            v.kexec_count = count;
            release = r;
        }
        Err(e) => lost(&mut v, e),
    }

    // The stub's blob: folios, checksums, the vmalloc descriptor. Without
    // one the handover comes from another kernel (Linux).
    let Some((blob_at, size)) = k.subtree(blob::SUBTREE_NAME) else {
        if rejected.names(blob::SUBTREE_NAME) {
            return Err(format!("the kho-stub subtree was left out: {rejected}"));
        }
        let partial = v.partial.take();
        let mut v = verify_foreign(k, mem, cfg, v, &release, log, &rejected)?;
        if let Some(reason) = partial {
            v.partial = Some(reason);
        }
        return Ok(v);
    };
    let located = if v1 {
        crate::wrapper::unwrap(mem, blob_at).map(|w| {
            v.kexec_count = w.kexec_count;
            StubBlob {
                data: w.data,
                size: w.size,
                folio: (blob_at, order_for(w.total)),
            }
        })
    } else {
        size.ok_or_else(|| String::from("kho-stub subtree has no blob-size"))
            .map(|size| StubBlob {
                data: blob_at,
                size,
                folio: (blob_at, order_for(size)),
            })
    };
    match located.and_then(|b| verify_blob(k, mem, cfg, &b, kept, &mut v)) {
        Ok((writer, vmalloc, log_start)) => {
            // A kho-v1 writer preserved no vmalloc area (the descriptor is
            // zero), no log and no kexec-metadata: nothing is missing.
            verify_vmalloc(k, mem, cfg, writer, &vmalloc, &mut v);
            if let Some(req) = cfg.log.filter(|_| !v1) {
                match verify_log(k, mem, cfg, req, log_start) {
                    Ok(l) => {
                        v.log_lines = l.lines;
                        *log = Some(l);
                    }
                    Err(e) => lost(&mut v, e),
                }
            }
            verify_clients(k, mem, cfg, writer, &mut v);
        }
        // Everything the blob describes stays reserved.
        Err(e) => lost(&mut v, format!("kho-stub blob: {e}")),
    }

    // lib/test_kho.c's subtree, checked as test_kho checks it.
    match crate::kho_test::verify(k, mem) {
        Ok(data) => {
            v.kho_test = data.is_some();
            v.kho_test_data = data;
        }
        Err(e) => lost(&mut v, e),
    }

    // The root FDT page was preserved too; its bytes are already copied.
    let fdt = k.handover().fdt;
    match k.restore_folio(mem, fdt, Order::ZERO) {
        Ok(()) => mem.free_page(fdt).map_err(text)?,
        Err(e) => lost(&mut v, format!("root FDT page: {e}")),
    }

    if !rejected.0.is_empty() && v.partial.is_none() {
        v.partial = Some(rejected.reason());
    }
    let left = k.unrestored_blocks();
    if left != 0 && v.partial.is_none() {
        return Err(format!("{left} preserved blocks were restored by nobody"));
    }
    Ok(v)
}

/// The stub's own blob: every folio record restored and checked (kept or
/// freed), then the blob itself. Returns what the rest of the blob's
/// clients need: the generation that wrote it, the vmalloc descriptor and
/// the log's first generation.
fn verify_blob(
    k: &mut KhoIn,
    mem: &mut StubMem,
    cfg: &Config,
    located: &StubBlob,
    kept: &mut Vec<Record>,
    v: &mut Verified,
) -> Result<(u32, VmallocDescriptor, u32), String> {
    let g = cfg.generation;
    let (blob_at, size) = (located.data, located.size);
    // Read in place, one record at a time: nothing here grows with the
    // blob, whose size is checked against its record count first.
    let header: Header = mem.read_obj(blob_at).map_err(text)?;
    blob::check(&header, size).map_err(text)?;
    if header.seed.get() != cfg.seed {
        return Err(format!(
            "seed {:#x} in the blob, {:#x} on the command line",
            header.seed.get(),
            cfg.seed
        ));
    }
    let writer = header.generation.get();
    let log_start = u32::try_from(header.log_start.get())
        .ok()
        .filter(|&s| s <= g)
        .ok_or_else(|| {
            format!(
                "log start {} is past generation {g}",
                header.log_start.get()
            )
        })?;
    for index in 0..header.count.get() {
        let at = blob::record_at(blob_at.as_u64(), index)
            .map(PhysAddr::new)
            .ok_or("blob wraps")?;
        let rec: Record = mem
            .read_obj(at)
            .map_err(|e| format!("record {index}: {e}"))?;
        if crate::guest::is_guest(&rec) {
            // Guest memory stays where it is, generation after generation.
            v.bytes += crate::guest::verify(k, mem, cfg.seed, &rec)?;
            v.folios += 1;
            kept.push(rec);
            continue;
        }
        let phys = PhysAddr::new(rec.phys.get());
        let order = Order::try_new(rec.order.get()).map_err(text)?;
        k.restore_folio(mem, phys, order)
            .map_err(|e| format!("folio {phys}: {e}"))?;
        let sum = check_block(
            mem,
            cfg.seed,
            rec.generation.get(),
            rec.block.get(),
            phys,
            order,
        )?;
        if sum != rec.checksum.get() {
            return Err(format!(
                "folio {phys}: checksum {sum:#x}, blob says {:#x}",
                rec.checksum.get()
            ));
        }
        v.folios += 1;
        v.bytes += order.bytes();
        if rec.generation.get() + KEEP_GENERATIONS > g {
            kept.push(rec);
        } else {
            mem.free_pages(phys, order).map_err(text)?;
        }
    }
    let (folio, order) = located.folio;
    k.restore_folio(mem, folio, order).map_err(text)?;
    mem.free_pages(folio, order).map_err(text)?;
    Ok((writer, header.vmalloc, log_start))
}

/// Where the stub's blob bytes are, and the preserved folio holding them.
#[derive(Debug)]
struct StubBlob {
    /// The blob's first byte (its [`Header`]).
    data: PhysAddr,
    /// Its bytes.
    size: u64,
    /// The preserved block it lies in, with its order.
    folio: (PhysAddr, Order),
}

/// The vmalloc area: restored through its chunk chain, every page checked.
/// A corrupt chain fails this client only (kho_restore_vmalloc returns
/// NULL upstream; the kernel goes on).
fn verify_vmalloc(
    k: &mut KhoIn,
    mem: &mut StubMem,
    cfg: &Config,
    writer: u32,
    vmalloc: &VmallocDescriptor,
    v: &mut Verified,
) {
    if vmalloc.total_pages.get() == 0 {
        return;
    }
    let area = match k.restore_vmalloc(mem, vmalloc) {
        Ok(area) => area,
        Err(e) => {
            v.partial.get_or_insert(format!("{e}"));
            return;
        }
    };
    // Checked and freed in chain order, in place.
    let order = area.order();
    let mut index = 0u32;
    let checked = area.for_each_mut(mem, |mem, piece| -> Result<(), Why> {
        match piece {
            kho_vmalloc::Piece::Block(b) => {
                check_block(mem, cfg.seed, writer, VMALLOC_BLOCK_BASE + index, b, order)?;
                mem.free_pages(b, order).map_err(text)?;
                index += 1;
            }
            kho_vmalloc::Piece::Chunk(c) => mem.free_page(c).map_err(text)?,
        }
        Ok(())
    });
    match checked {
        Ok(()) => {
            v.vmalloc_pages = u64::from(area.total_pages());
            v.bytes += u64::from(area.total_pages()) * kho_mem::PAGE_SIZE as u64;
        }
        Err(e) => {
            v.partial
                .get_or_insert(format!("vmalloc: {}", String::from(e)));
        }
    }
}

/// The reserve_mem log: revived at the same place, one line per generation
/// since the last cold boot.
fn verify_log(
    k: &mut KhoIn,
    mem: &mut StubMem,
    cfg: &Config,
    req: crate::config::LogRegion,
    log_start: u32,
) -> Result<Log, String> {
    let g = cfg.generation;
    let range = our_log_region(k, mem, req)?.map_err(text)?;
    let (memblock_blob, _) = k
        .subtree(kho_abi::memblock::SUBTREE_NAME)
        .ok_or("no memblock subtree")?;
    k.restore_folio(mem, memblock_blob, Order::ZERO)
        .map_err(|e| format!("memblock blob: {e}"))?;
    mem.free_page(memblock_blob).map_err(text)?;
    k.restore_pages(
        mem,
        kho_memblock::covering_pages(range).ok_or("kho_log wraps")?,
    )
    .map_err(|e| format!("kho_log: {e}"))?;
    let mut content = vec![0u8; range.size() as usize];
    mem.read(range.start(), &mut content).map_err(text)?;
    let mut used = 0usize;
    let lines = g - log_start;
    for j in 0..lines {
        let want = log_line(log_start + j, cfg.seed);
        let got = content.get(used..used + want.len()).unwrap_or_default();
        if got != want.as_bytes() {
            return Err(format!(
                "kho_log line {j}: {:?}, expected {:?}",
                String::from_utf8_lossy(got),
                want.trim_end()
            ));
        }
        used += want.len();
    }
    if content[used..].iter().any(|&b| b != 0) {
        return Err(format!("kho_log has bytes after its {lines} lines"));
    }
    Ok(Log {
        range,
        first: log_start,
        lines,
        used: used as u64,
    })
}

/// The reserve_mem region `kho_log` as the memblock blob hands it over:
/// the outer error when the blob is missing or malformed, the inner one
/// when it has no such region (or one of another size or alignment).
fn our_log_region(
    k: &KhoIn,
    mem: &StubMem,
    req: crate::config::LogRegion,
) -> Result<Result<PhysRange, kho_memblock::Error>, String> {
    let mut page = [0u8; kho_mem::PAGE_SIZE];
    let fdt = k
        .memblock(mem, &mut page)
        .map_err(text)?
        .ok_or("no memblock subtree for kho_log")?;
    let want = kho_memblock::ReserveMem {
        size: req.size,
        align: req.align,
        name: crate::config::LOG_REGION,
    };
    Ok(fdt.revive(&want).map(|r| r.range()))
}

/// Extra client subtrees: one page each, content from their index. Each
/// fails alone.
fn verify_clients(k: &mut KhoIn, mem: &mut StubMem, cfg: &Config, writer: u32, v: &mut Verified) {
    let clients: Vec<(String, PhysAddr, Option<u64>)> = k
        .subtree_names()
        .into_iter()
        .filter_map(|name| name.strip_prefix(CLIENT_PREFIX).map(|_| String::from(name)))
        .filter_map(|name| k.subtree(&name).map(|(at, size)| (name, at, size)))
        .collect();
    for (name, at, size) in &clients {
        let one = (|| -> Result<(), String> {
            let index: u32 = name[CLIENT_PREFIX.len()..]
                .parse()
                .map_err(|_| format!("bad client subtree name {name}"))?;
            // The client knows its blob: one page (no blob-size before
            // kho-v3).
            if let Some(size) = size.filter(|&s| s != kho_mem::PAGE_SIZE as u64) {
                return Err(format!("{name}: blob-size {size:#x}, expected one page"));
            }
            k.restore_folio(mem, *at, Order::ZERO)
                .map_err(|e| format!("{name}: {e}"))?;
            check_block(
                mem,
                cfg.seed,
                writer,
                CLIENT_BLOCK_BASE + index,
                *at,
                Order::ZERO,
            )?;
            mem.free_page(*at).map_err(text)
        })();
        match one {
            Ok(()) => v.subtrees += 1,
            Err(e) => {
                v.partial.get_or_insert(e);
            }
        }
    }
}

/// The root FDT's children the lenient parse left out (malformed: as
/// Linux's kho_retrieve_subtree fails for that client alone), by name with
/// the error.
#[derive(Debug, Default)]
struct Rejected(Vec<(String, String)>);

impl Rejected {
    fn of(k: &KhoIn) -> Rejected {
        Rejected(
            k.fdt()
                .map(|f| {
                    f.rejected()
                        .map(|(n, e)| (String::from(n), format!("{e}")))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// Whether a child called exactly `name` was left out.
    fn names(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The reason of the partial revival they cause.
    fn reason(&self) -> String {
        format!("malformed subtree(s) left out, their memory stays reserved: {self}")
    }
}

impl core::fmt::Display for Rejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (name, error)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{name}: {error}")?;
        }
        Ok(())
    }
}

/// Restore a handover another kernel (Linux) wrote: no `kho-stub` blob,
/// so nothing of ours to check. What a Linux 7.2 handover holds is
/// restored and checked as its own clients would: `kexec-metadata` (said
/// on a `KHO peer` line), lib/test_kho.c's `kho_test` (its folios and
/// checksum), the `memblock` sub-blob and its `kho_log` region, which this
/// generation adopts as its log (it starts empty here), and the root FDT
/// page. A subtree the stub does not know is dropped: its memory stays
/// reserved, and the revival is partial with the names as the reason
/// (docs/HANDOVER.md, "A handover from Linux"). Every other preserved block
/// must be restored by someone.
fn verify_foreign(
    k: &mut KhoIn,
    mem: &mut StubMem,
    cfg: &Config,
    mut v: Verified,
    release: &str,
    log: &mut Option<Log>,
    rejected: &Rejected,
) -> Result<Verified, String> {
    let g = cfg.generation;
    let known = [
        kho_abi::metadata::SUBTREE_NAME,
        kho_abi::memblock::SUBTREE_NAME,
        crate::kho_test::SUBTREE_NAME,
    ];
    let unknown: Vec<String> = k
        .subtree_names()
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(String::from)
        .collect();
    say!(
        "KHO peer gen={g} kexec-count={} subtrees={} unknown={} release=\"{}\"",
        v.kexec_count,
        k.subtree_names().len(),
        if unknown.is_empty() {
            String::from("none")
        } else {
            unknown.join(",")
        },
        Quoted(&release)
    );

    // lib/test_kho.c's subtree, checked as test_kho checks it.
    if let Some(r) = crate::kho_test::verify(k, mem)? {
        v.kho_test = true;
        v.folios += u64::from(r.folios);
        v.bytes += r.bytes;
        v.kho_test_data = Some(r);
    }

    // memblock: the reserve_mem region named like ours becomes our log.
    if let Some((memblock_blob, _)) = k.subtree(kho_abi::memblock::SUBTREE_NAME) {
        let region = match cfg.log {
            Some(req) => our_log_region(k, mem, req)?.ok(),
            None => None,
        };
        k.restore_folio(mem, memblock_blob, Order::ZERO)
            .map_err(|e| format!("memblock blob: {e}"))?;
        mem.free_page(memblock_blob).map_err(text)?;
        if let Some(range) = region {
            k.restore_pages(
                mem,
                kho_memblock::covering_pages(range).ok_or("kho_log wraps")?,
            )
            .map_err(|e| format!("kho_log: {e}"))?;
            mem.fill(range.start(), range.size(), 0).map_err(text)?;
            *log = Some(Log {
                range,
                first: g,
                lines: 0,
                used: 0,
            });
        }
    }

    // (The caller restored the kexec-metadata page.)
    let fdt = k.handover().fdt;
    k.restore_folio(mem, fdt, Order::ZERO)
        .map_err(|e| format!("root FDT page: {e}"))?;
    mem.free_page(fdt).map_err(text)?;

    let left = k.unrestored_blocks();
    if !rejected.0.is_empty() {
        v.partial = Some(rejected.reason());
    } else if !unknown.is_empty() {
        v.partial = Some(format!(
            "unknown client subtree(s) {}: their memory stays reserved",
            unknown.join(", ")
        ));
    } else if left != 0 {
        return Err(format!("{left} preserved blocks were restored by nobody"));
    }
    Ok(v)
}

/// Compare every word of a block with the content `generation` wrote for
/// `block`; return the checksum.
fn check_block(
    mem: &StubMem,
    seed: u64,
    generation: u32,
    block: u32,
    phys: PhysAddr,
    order: Order,
) -> Result<u64, String> {
    let mut sum = Checksum::new();
    let word = |i| content::word(seed, generation, block, i);
    content::check(mem, phys, order, word, |page| {
        page.iter().for_each(|&w| sum.add(w))
    })?;
    Ok(sum.get())
}

/// Fill a block with this generation's content; return its checksum.
fn fill_block(
    mem: &mut StubMem,
    seed: u64,
    generation: u32,
    block: u32,
    phys: PhysAddr,
    order: Order,
) -> Result<u64, String> {
    let mut sum = Checksum::new();
    let word = |i| content::word(seed, generation, block, i);
    content::fill(mem, phys, order, word, |page| {
        page.iter().for_each(|&w| sum.add(w))
    })?;
    Ok(sum.get())
}

/// Preserve the kept folios and new ones, a fresh vmalloc area, the log,
/// the stub blob and kexec-metadata, and the `kho_test` data that came in
/// (`carried`) or a fresh one.
fn build_outgoing(
    mem: &mut StubMem,
    cfg: &Config,
    kept: Vec<Record>,
    log: Option<Log>,
    kexec_count: u32,
    carried: Option<&crate::kho_test::Restored>,
    areas: &ScratchAreas,
) -> Result<(KhoOut, VmallocDescriptor), String> {
    let g = cfg.generation;
    let mut out = KhoOut::new(mem, cfg.abi).map_err(text)?;
    // Anything preserved in scratch is refused at once, not by the next
    // kernel's walk.
    out.exclude_scratch(areas);
    let mut records = kept;
    for rec in &records {
        if crate::guest::is_guest(rec) {
            crate::guest::preserve(mem, &mut out, rec)?;
            continue;
        }
        let order = Order::try_new(rec.order.get()).map_err(text)?;
        out.preserve_folio(mem, PhysAddr::new(rec.phys.get()), order)
            .map_err(text)?;
    }
    // Guest memory: created once (here, after a cold boot), then carried.
    if !cfg.guest.is_empty() && !records.iter().any(crate::guest::is_guest) {
        let guest = crate::guest::create(mem, StubMem::alloc_pages_dirty, &cfg.guest, cfg.seed, g)?;
        for rec in &guest {
            crate::guest::preserve(mem, &mut out, rec)?;
        }
        records.extend(guest);
    }
    for (block, &o) in ORDERS.iter().enumerate() {
        let order = Order::try_new(o).map_err(text)?;
        let phys = mem.alloc_pages(order).map_err(|e| format!("folio: {e}"))?;
        let checksum = fill_block(mem, cfg.seed, g, block as u32, phys, order)?;
        out.preserve_folio(mem, phys, order).map_err(text)?;
        records.push(Record {
            phys: U64::new(phys.as_u64()),
            checksum: U64::new(checksum),
            order: U32::new(o),
            generation: U32::new(g),
            block: U32::new(block as u32),
            count: U16::new(1),
            spacing: U16::new(0),
        });
    }
    // Exercise unpreserve on the outgoing side: a block preserved and
    // dropped again before the handover must leave no trace.
    let temp = mem.alloc_page().map_err(text)?;
    out.preserve_folio(mem, temp, Order::ZERO).map_err(text)?;
    out.unpreserve_folio(mem, temp, Order::ZERO).map_err(text)?;
    mem.free_page(temp).map_err(text)?;

    // A vmalloc area of scattered pages: every other page, so no two
    // blocks are adjacent and the chain must list each one.
    // kho-v1 carries no vmalloc area, no memblock log and no
    // kexec-metadata (docs/HANDOVER.md, "kho-v1 generations"): none is written.
    let v1 = cfg.abi == AbiVersion::V1;
    let vmalloc_pages = if v1 { 0 } else { cfg.vmalloc_pages };
    let mut vmalloc = VmallocDescriptor::default();
    if vmalloc_pages > 0 {
        // Pages and gaps alternate as the allocator hands them out; both are
        // kept as runs (start, count) of every-other-page, so the heap used
        // grows with the fragmentation of free memory, not with the area.
        let mut pages = Runs::default();
        let mut gaps = Runs::default();
        for i in 0..vmalloc_pages {
            let p = mem.alloc_page().map_err(|e| format!("vmalloc page: {e}"))?;
            fill_block(mem, cfg.seed, g, VMALLOC_BLOCK_BASE + i, p, Order::ZERO)?;
            pages.push(p);
            gaps.push(mem.alloc_page().map_err(|e| format!("vmalloc gap: {e}"))?);
        }
        for gap in gaps.iter() {
            mem.free_page(gap).map_err(text)?;
        }
        vmalloc = out
            .preserve_vmalloc(
                mem,
                pages.iter(),
                Order::ZERO,
                kho_abi::vmalloc::FLAG_VM_ALLOC,
            )
            .map_err(text)?;
    }

    // The reserve_mem log: allocated on a cold boot, one line appended by
    // every generation, preserved with the memblock sub-blob.
    let mut log_lines = 0;
    let mut log_start = 0;
    if v1 && let Some(l) = &log {
        // A downgrade that would drop a carried region: refused here,
        // before the kexec, not discovered by the next kernel.
        return Err(format!(
            "kho-v1 cannot carry the {} reserve_mem region ({} lines since generation {}): refusing the downgrade",
            crate::config::LOG_REGION,
            l.lines,
            l.first
        ));
    }
    if let Some(req) = cfg.log.filter(|_| !v1) {
        let mut log = match log {
            Some(l) => l,
            None => {
                let order = order_for(req.size.max(req.align));
                let at = mem
                    .alloc_pages(order)
                    .map_err(|e| format!("kho_log: {e}"))?;
                Log {
                    range: PhysRange::try_new(at, req.size).map_err(text)?,
                    first: g,
                    lines: 0,
                    used: 0,
                }
            }
        };
        let line = log_line(g, cfg.seed);
        if log.used + line.len() as u64 > log.range.size() {
            // Full: start over, as a ring that keeps the latest run of
            // lines (the blob's log_start says where they begin).
            if line.len() as u64 > log.range.size() {
                return Err(format!(
                    "kho_log of {:#x} bytes cannot hold one line",
                    log.range.size()
                ));
            }
            say!(
                "KHO log-rotate gen={g} lines={} bytes={:#x}",
                log.lines,
                log.used
            );
            mem.fill(log.range.start(), log.range.size(), 0)
                .map_err(text)?;
            log.first = g;
            log.lines = 0;
            log.used = 0;
        }
        let at = log
            .range
            .start()
            .checked_add(log.used)
            .ok_or("kho_log wraps")?;
        mem.write(at, line.as_bytes()).map_err(text)?;
        log.used += line.len() as u64;
        log.lines += 1;
        log_lines = log.lines;
        log_start = log.first;
        let region = kho_memblock::Region::new(
            crate::config::LOG_REGION,
            log.range.start(),
            log.range.size(),
        )
        .map_err(text)?;
        out.preserve_memblock(mem, &[region]).map_err(text)?;
    }

    let header = Header {
        magic: blob::MAGIC,
        generation: U32::new(g),
        count: U32::new(records.len() as u32),
        seed: U64::new(cfg.seed),
        vmalloc,
        log_start: U64::new(u64::from(log_start)),
    };
    let size = blob::blob_size(records.len()) as u64;
    if v1 {
        // A kho-v1 child is an FDT: the blob goes in a wrapper, which also
        // carries the kexec count.
        let mut bytes = Vec::from(header.as_bytes());
        bytes.extend_from_slice(records.as_bytes());
        let wrapper = crate::wrapper::wrap(&bytes, kexec_count.wrapping_add(1))?;
        let len = wrapper.len() as u64;
        let order = order_for(len);
        let at = mem.alloc_pages(order).map_err(|e| format!("blob: {e}"))?;
        mem.write(at, &wrapper).map_err(text)?;
        out.preserve_folio(mem, at, order).map_err(text)?;
        out.add_subtree(mem, blob::SUBTREE_NAME, at, Some(len))
            .map_err(text)?;
    } else {
        let order = order_for(size);
        let at = mem.alloc_pages(order).map_err(|e| format!("blob: {e}"))?;
        mem.write(at, header.as_bytes()).map_err(text)?;
        mem.write(at.checked_add(48).ok_or("blob wraps")?, records.as_bytes())
            .map_err(text)?;
        out.preserve_folio(mem, at, order).map_err(text)?;
        out.add_subtree(mem, blob::SUBTREE_NAME, at, Some(size))
            .map_err(text)?;
        out.add_kexec_metadata(mem, kexec_count.wrapping_add(1), "kho-stub")
            .map_err(text)?;
    }
    // A kho_test subtree that came in goes on unchanged (its writer, Linux
    // or an earlier generation, verifies it in the end); else, when asked,
    // a fresh one.
    match carried {
        Some(r) => crate::kho_test::carry(mem, &mut out, r)?,
        None if cfg.kho_test => {
            crate::kho_test::publish(mem, &mut out, cfg.seed, g)?;
        }
        None => {}
    }
    let subtrees = add_clients(mem, &mut out, cfg)?;
    let folios = records.len() as u64;
    let bytes: u64 = records
        .iter()
        .map(|r| (4096u64 << r.order.get()) * u64::from(r.count.get().max(1)))
        .sum::<u64>()
        + u64::from(vmalloc_pages) * kho_mem::PAGE_SIZE as u64;
    say!(
        "KHO preserve gen={g} folios={folios} bytes={bytes} unpreserved=1 vmalloc-pages={vmalloc_pages} log-lines={log_lines} subtrees={subtrees} radix-tables={} radix-leaves={}",
        out.node_stats().tables,
        out.node_stats().leaves
    );
    Ok((out, vmalloc))
}

/// Page addresses as runs of `count` pages two pages apart: how the
/// vmalloc area's pages (and the gaps between them) come out of the
/// allocator, stored in a few entries instead of one per page.
#[derive(Debug, Default)]
struct Runs(Vec<(PhysAddr, u32)>);

/// The stride of a run: every other page.
const RUN_STRIDE: u64 = 2 * kho_mem::PAGE_SIZE as u64;

impl Runs {
    fn push(&mut self, page: PhysAddr) {
        if let Some((start, count)) = self.0.last_mut()
            && start.as_u64() + u64::from(*count) * RUN_STRIDE == page.as_u64()
        {
            *count += 1;
            return;
        }
        self.0.push((page, 1));
    }

    fn iter(&self) -> impl Iterator<Item = PhysAddr> + '_ {
        self.0.iter().flat_map(|&(start, count)| {
            (0..u64::from(count)).map(move |i| PhysAddr::new(start.as_u64() + i * RUN_STRIDE))
        })
    }
}

/// The outgoing radix root: a named error under kho-v1 (bitmaps, no
/// tree), so the radix fault classes cannot be injected there.
fn radix_root(out: &KhoOut) -> Result<PhysAddr, String> {
    out.tree()
        .map(|t| t.root())
        .ok_or_else(|| String::from("kho-v1 has no radix tree to corrupt"))
}

/// The stub's own account of its outgoing preserved set, for comparison
/// with an outside reading of a memory dump (`cargo xtask inspect`): one
/// line per run of adjacent blocks of one order, in key order, then totals.
fn report_preserved(mem: &StubMem, out: &KhoOut, g: u32) {
    let (mut blocks, mut pages, mut runs) = (0u64, 0u64, 0u64);
    for item in out.tree().into_iter().flat_map(|t| t.ranges(mem)) {
        match item {
            Ok(run) => {
                say!(
                    "KHO run gen={g} order={} addr={} blocks={}",
                    run.order().get(),
                    run.range().start(),
                    run.blocks()
                );
                blocks += run.blocks();
                pages += run.range().size() / kho_mem::PAGE_SIZE as u64;
                runs += 1;
            }
            Err(e) => fail(g, &e),
        }
    }
    let nodes = out.node_stats();
    say!(
        "KHO preserved gen={g} blocks={blocks} pages={pages} runs={runs} radix-tables={} radix-leaves={}",
        nodes.tables,
        nodes.leaves
    );
}

/// Publish the extra client subtrees `kho_stub.subtrees` asks for: each a
/// preserved page of content, registered as `client-NNN` with its size.
/// With `max`, add them until the next one no longer fits the root FDT's
/// page (that last page is unpreserved and freed again).
fn add_clients(mem: &mut StubMem, out: &mut KhoOut, cfg: &Config) -> Result<u32, String> {
    let limit = match cfg.subtrees {
        Subtrees::None => return Ok(0),
        Subtrees::Count(n) => n,
        Subtrees::Max => u32::MAX,
    };
    let mut added = 0;
    while added < limit {
        let page = mem
            .alloc_page()
            .map_err(|e| format!("client subtree: {e}"))?;
        fill_block(
            mem,
            cfg.seed,
            cfg.generation,
            CLIENT_BLOCK_BASE + added,
            page,
            Order::ZERO,
        )?;
        out.preserve_folio(mem, page, Order::ZERO).map_err(text)?;
        let name = format!("{CLIENT_PREFIX}{added:03}");
        match out.add_subtree(mem, &name, page, Some(kho_mem::PAGE_SIZE as u64)) {
            Ok(()) => added += 1,
            Err(kho::Error::Fdt(kho_fdt::Error::TooLarge { .. }))
                if cfg.subtrees == Subtrees::Max =>
            {
                out.unpreserve_folio(mem, page, Order::ZERO).map_err(text)?;
                mem.free_page(page).map_err(text)?;
                break;
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Ok(added)
}

/// Apply a hand-off-time fault to what was just written for the next
/// generation.
fn corrupt_handoff(
    mem: &mut StubMem,
    class: FaultClass,
    out: &KhoOut,
    kexec: &crate::kexec::Kexec,
    array: PhysRange,
) -> Result<(), String> {
    match class {
        FaultClass::ScratchOverlapsPreserved => {
            let first = out
                .tree()
                .ok_or("kho-v1 has no radix tree")?
                .ranges(mem)
                .next()
                .ok_or("nothing preserved")?
                .map_err(text)?;
            crate::fault::corrupt_scratch_entry(mem, array, first.range())
        }
        FaultClass::ScratchOutsideRam => {
            let outside = PhysRange::try_new(PhysAddr::new(crate::fault::OUTSIDE_RAM), 2 << 20)
                .map_err(text)?;
            crate::fault::corrupt_scratch_entry(mem, array, outside)
        }
        FaultClass::ScratchMisaligned | FaultClass::ScratchOverlapping => {
            let mut entries = [0u64; 4];
            mem.read_u64s(array.start(), &mut entries).map_err(text)?;
            let [a0, s0, a1, s1] = entries;
            let range = if class == FaultClass::ScratchMisaligned {
                PhysRange::try_new(PhysAddr::new(a1 + 0x800), s1)
            } else {
                PhysRange::try_new(PhysAddr::new(a0), s0)
            }
            .map_err(text)?;
            crate::fault::corrupt_scratch_entry(mem, array, range)
        }
        FaultClass::ScratchZeroSize => {
            let mut entry = [0u64; 2];
            let at = array.start().checked_add(16).ok_or("scratch array wraps")?;
            mem.read_u64s(at, &mut entry).map_err(text)?;
            let empty = PhysRange::try_new(PhysAddr::new(entry[0]), 0).map_err(text)?;
            crate::fault::corrupt_scratch_entry(mem, array, empty)
        }
        FaultClass::FdtPageUnpreserved => {
            crate::fault::set_block_bit(mem, radix_root(out)?, out.fdt(), 0, false)
        }
        FaultClass::RadixLeafInScratch | FaultClass::RadixNodeInScratch => {
            // Scratch area 1 (the global one), from the array the next
            // kernel reads.
            let mut entry = [0u64; 2];
            let at = array.start().checked_add(16).ok_or("scratch array wraps")?;
            mem.read_u64s(at, &mut entry).map_err(text)?;
            let [start, size] = entry;
            if class == FaultClass::RadixLeafInScratch {
                // A 2 MiB block inside the area (order 9: its leaf spans
                // 64 GiB, so it exists wherever a 2 MiB folio is kept).
                let block = (start + (2 << 20) - 1) & !((2 << 20) - 1);
                if block + (2 << 20) > start + size {
                    return Err(String::from("scratch area 1 holds no 2 MiB block"));
                }
                crate::fault::set_block_bit(mem, radix_root(out)?, PhysAddr::new(block), 9, true)
            } else {
                // Its last page: the next kernel allocates from the front.
                let last = PhysAddr::new(start + size - 4096);
                crate::fault::move_last_leaf(mem, radix_root(out)?, last)
            }
        }
        FaultClass::RadixLeafOutsideRam => {
            let block = PhysAddr::new(crate::fault::OUTSIDE_RAM / 2);
            crate::fault::set_block_bit(mem, radix_root(out)?, block, 9, true)
        }
        FaultClass::V1ChunkCycle | FaultClass::V1ChunkOutsideRam => {
            crate::fault::corrupt_v1_chunks(mem, class, out.fdt())
        }
        c if c.arch_handoff() => arch::corrupt_handoff(mem, kexec, c),
        FaultClass::RadixOutsideRam
        | FaultClass::RadixCycle
        | FaultClass::RadixFullLeaf
        | FaultClass::RadixOverlap
        | FaultClass::RadixMisalignedEntry
        | FaultClass::RadixSharedNode => {
            let none = VmallocDescriptor::default();
            crate::fault::corrupt_state(mem, class, out.fdt(), radix_root(out)?, &none)
        }
        _ => Err(String::from("not a hand-off-time fault")),
    }
}

/// The root FDT page, cut to its `totalsize`.
fn read_fdt(mem: &StubMem, at: PhysAddr) -> Result<Vec<u8>, String> {
    let mut page = vec![0u8; 4096];
    mem.read(at, &mut page).map_err(|e| format!("{e}"))?;
    let total = u32::from_be_bytes([page[4], page[5], page[6], page[7]]) as usize;
    page.truncate(total.min(4096));
    Ok(page)
}
