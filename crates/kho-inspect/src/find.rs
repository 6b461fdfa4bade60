//! `inspect --find`: find a KHO handover in a memory dump without knowing
//! any address (docs/DEBUGGING.md, "Finding the handover").
//!
//! One pass over every RAM range of the image, a chunk at a time through
//! the image's lazy reader (never the whole dump in memory), looks at each
//! page that is not all zero for:
//!
//! - root KHO FDTs: an FDT at a page start whose root `compatible` starts
//!   with `kho-v` (a known version, or an unknown one reported as a
//!   problem), or is `kho-2024` (the 2024 design, whose tree may be larger
//!   than a page). Linux keeps its root FDT in a preserved order-0 page at
//!   all times, from `kho_init` on;
//! - x86 `setup_data` entries of type 10 at 8-byte boundaries (the 8-byte
//!   word `type = 10, len = 32`), whose `kho_data` names the FDT and the
//!   scratch array, or `len = 48`, the 2024 design's `kho_data` naming the
//!   FDT, the scratch region and the mem cache;
//! - boot DTBs at 8-byte boundaries whose `/chosen` has `linux,kho-fdt`.
//!
//! Every structure is recognised by the workspace's own readers
//! (`kho_fdt::dtb::Dtb`, `kho_fdt::KhoFdt`, `kho::handoff::dt::read_chosen`,
//! `kho_abi::x86::KhoData`); the handover is then decoded by the decoder
//! `--fdt`, `--dtb` and `--x86-boot-params` use, started at the boot
//! structure that names the FDT (so the scratch areas are known) or at the
//! FDT itself. The cost is one read of the image's file plus work bounded
//! by [`Limits`]: past a limit the scan goes on counting, lists a
//! `find-limit` problem and keeps what it has. Over an [`Image`]
//! ([`find_in`]) the zero fill past a segment's `p_filesz` is skipped, not
//! read: an ELF core claiming 2^50 bytes of memory costs what its file
//! holds.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use kho::Handover;
use kho::handoff::dt;
use kho_abi::AbiVersion;
use kho_abi::chosen::PROP_KHO_FDT;
use kho_abi::fdt::{FDT_HEADER_SIZE, FDT_MAGIC, FDT_VERSION, PROP_COMPATIBLE};
use kho_abi::rfc2024;
use kho_abi::x86::{KHO_DATA_SIZE, KhoData, SETUP_DATA_HEADER_SIZE, SETUP_KEXEC_KHO};
use kho_fdt::KhoFdt;
use kho_fdt::dtb::{Dtb, MAX_DTB_SIZE};
use kho_mem::{PhysAddr, PhysMem};
use serde::Serialize;
use zerocopy::FromBytes;

pub use crate::Limits;
use crate::decode::inspect_with;
use crate::decode::rfc2024::{SETUP_DATA_LEN as RFC2024_LEN, looks_rfc2024};
use crate::image::{Fill, Image, ReadAt};
use crate::report::{
    HandoverInfo, Location, Problem, Report, Rfc2024Handover, Start, serialize_problems,
};

const PAGE: u64 = kho_abi::PAGE_SIZE as u64;
/// Bytes read at a time: physical-address aligned, so a page never spans
/// two chunks (except at the end of a range).
const CHUNK: u64 = 1 << 20;
/// A `setup_data` header's second word for the KHO entry: `type` = 10 in
/// its low half, `len` = 32 in its high half (both little-endian).
const SETUP_KHO_WORD: u64 = SETUP_KEXEC_KHO as u64 | ((KHO_DATA_SIZE as u64) << 32);
/// A whole `setup_data` KHO entry: header and `kho_data`.
const SETUP_ENTRY_LEN: usize = SETUP_DATA_HEADER_SIZE + KHO_DATA_SIZE;
/// The same word for the 2024 design's entry: `len` = 48.
const SETUP_KHO_2024_WORD: u64 = SETUP_KEXEC_KHO as u64 | ((RFC2024_LEN as u64) << 32);
/// The 2024 design's whole entry.
const SETUP_ENTRY_2024_LEN: usize = SETUP_DATA_HEADER_SIZE + rfc2024::KHO_DATA_SIZE;
/// The 2024 design's root compatible, as `Candidate::RootFdt` names it.
const RFC2024: &str = rfc2024::COMPATIBLE;
/// What a zero page compares against (one `memcmp`).
static ZERO_PAGE: [u8; PAGE as usize] = [0; PAGE as usize];

/// What the scan covered and how often each pattern matched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScanInfo {
    /// The RAM ranges scanned: (start, length).
    pub ranges: Vec<(u64, u64)>,
    /// Bytes scanned (the ranges' total).
    pub bytes: u64,
    /// Pages (4 KiB, by physical address) that were not all zero.
    pub nonzero_pages: u64,
    /// FDT magics at 8-byte boundaries (page starts included).
    pub fdt_magics: u64,
    /// `setup_data` headers with `type` 10 and `len` 32 (or 48: the 2024
    /// design).
    pub setup_data_headers: u64,
    /// Device trees read whole to look at their `/chosen`.
    pub dtbs_read: u64,
}

/// A structure the scan found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Candidate {
    /// A root KHO FDT at a page start.
    RootFdt {
        /// Its physical address.
        addr: u64,
        /// The header's `totalsize`.
        total_size: u64,
        /// The root `compatible` (its first string).
        compatible: String,
        /// The version it names, when kho-rs reads it (`None`: unknown).
        abi_version: Option<String>,
        /// Why `KhoFdt::parse` refuses it, if it does (the decoder says
        /// where).
        error: Option<String>,
        /// The boot structures that name it, by address.
        named_by: Vec<u64>,
    },
    /// An x86 `setup_data` entry of type 10.
    X86SetupData {
        /// Its physical address.
        addr: u64,
        /// The handover its `kho_data` names.
        handover: HandoverInfo,
        /// The version of the root FDT it names, if the scan found it.
        abi_version: Option<String>,
        /// Whether `handover.fdt` is a root KHO FDT the scan found.
        names_root_fdt: bool,
    },
    /// An x86 `setup_data` entry of type 10 and `len` 48: the 2024
    /// design's `kho_data`.
    #[serde(rename = "x86-setup-data-2024")]
    X86SetupData2024 {
        /// Its physical address.
        addr: u64,
        /// The FDT, scratch region and mem cache its `kho_data` names.
        kho_data: Rfc2024Handover,
        /// The version of the root FDT it names, if the scan found it.
        abi_version: Option<String>,
        /// Whether `kho_data.fdt` is a root KHO FDT the scan found.
        names_root_fdt: bool,
    },
    /// A boot DTB whose `/chosen` names a handover.
    Dtb {
        /// Its physical address.
        addr: u64,
        /// The header's `totalsize`.
        total_size: u64,
        /// The handover its `/chosen` names.
        handover: HandoverInfo,
        /// The version of the root FDT it names, if the scan found it.
        abi_version: Option<String>,
        /// Whether `handover.fdt` is a root KHO FDT the scan found.
        names_root_fdt: bool,
    },
}

impl Candidate {
    /// Where the candidate is.
    pub fn addr(&self) -> u64 {
        match *self {
            Candidate::RootFdt { addr, .. }
            | Candidate::X86SetupData { addr, .. }
            | Candidate::X86SetupData2024 { addr, .. }
            | Candidate::Dtb { addr, .. } => addr,
        }
    }
}

/// An FDT magic at a page start that is not a root KHO FDT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its physical address.
    pub addr: u64,
    /// Why it is not a candidate.
    pub reason: String,
}

/// One handover decoded from a candidate.
#[derive(Clone, Debug, Serialize)]
pub struct Decoded {
    /// Why this candidate, in words.
    pub why: String,
    /// Where the decoder started.
    pub start: Start,
    /// What to keep in mind reading the report (not problems).
    pub notes: Vec<String>,
    /// What the decoder found.
    #[serde(flatten)]
    pub report: Report,
}

/// Everything `--find` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Found {
    /// What the scan covered.
    pub scan: ScanInfo,
    /// Root KHO FDTs by address, then boot structures by address.
    pub candidates: Vec<Candidate>,
    /// FDT magics at page starts that are not root KHO FDTs (at most
    /// [`Limits::skipped`]) …
    pub skipped: Vec<Skipped>,
    /// … and how many there were.
    pub skipped_total: u64,
    /// Problems of the scan itself (each decoded handover has its own).
    #[serde(serialize_with = "serialize_problems")]
    pub problems: Vec<Problem>,
    /// The handovers decoded, best first.
    pub decoded: Vec<Decoded>,
}

impl Found {
    /// Why nothing was decoded, in one line (`None`: something was).
    pub fn nothing_found(&self) -> Option<String> {
        if !self.decoded.is_empty() {
            return None;
        }
        let ranges = self.scan.ranges.len();
        let mut why = format!(
            "no KHO handover found in {:#x} bytes of RAM ({ranges} range{}): no page holds a root \
             KHO FDT (root compatible \"kho-v…\") and no x86 setup_data entry or boot DTB names one",
            self.scan.bytes,
            if ranges == 1 { "" } else { "s" }
        );
        if self.skipped_total > 0 {
            why.push_str(&format!(
                "; {} FDT magic{} at a page start skipped",
                self.skipped_total,
                if self.skipped_total == 1 { "" } else { "s" }
            ));
        }
        if let Some(p) = self.problems.first() {
            why.push_str(&format!("; {}: {}", p.code, p.message));
        }
        Some(why)
    }

    /// Whether the scan and every decoded handover are free of problems.
    pub fn is_sound(&self) -> bool {
        !self.decoded.is_empty()
            && self.problems.is_empty()
            && self.decoded.iter().all(|d| d.report.problems.is_empty())
    }
}

/// Scan `ram` (start, length ranges of `mem`) and decode what it finds.
pub fn find<M: PhysMem>(mem: &M, ram: &[(u64, u64)], limits: Limits) -> Found {
    scan(mem, ram, limits, &|_| None)
}

/// Scan all of `image`'s RAM ([`Image::ram_ranges`]) and decode what it
/// finds, reading only the file's bytes: the zero fill past a segment's
/// `p_filesz` is skipped (it holds no structure).
pub fn find_in<R: ReadAt>(image: &Image<R>, limits: Limits) -> Found {
    scan(image, &image.ram_ranges(), limits, &|addr| {
        image.fill_at(addr)
    })
}

/// What [`find`] and [`find_in`] do; `fill` says where the zero fill is.
fn scan<M: PhysMem>(
    mem: &M,
    ram: &[(u64, u64)],
    limits: Limits,
    fill: &dyn Fn(u64) -> Option<Fill>,
) -> Found {
    let mut s = Scanner {
        mem,
        fill,
        limits,
        found: Found::default(),
        roots: BTreeMap::new(),
        setups: Vec::new(),
        dtbs: Vec::new(),
        dtb_bytes: 0,
        read_errors: 0,
        read_bytes: 0,
        stopped: false,
        limited: Vec::new(),
    };
    s.found.scan.ranges = ram.to_vec();
    let mut buf = Vec::new();
    for &(start, len) in ram {
        if s.stopped {
            break;
        }
        s.range(start, len, &mut buf);
    }
    if s.read_errors > limits.read_errors {
        s.limit(
            "read-errors",
            format!(
                "{} chunks of the image could not be read; the first {} are listed",
                s.read_errors, limits.read_errors
            ),
        );
    }
    s.resolve();
    let mut found = s.found;
    let mut problems = core::mem::take(&mut found.problems);
    found.decoded = decode(mem, &found, limits, &mut problems);
    found.problems = problems;
    found
}

/// A root KHO FDT as the scan keeps it until the boot structures are matched.
#[derive(Debug)]
struct Root {
    total_size: u64,
    compatible: String,
    /// The version it names, when kho-rs reads it.
    abi_version: Option<String>,
    error: Option<String>,
    named_by: Vec<u64>,
}

struct Scanner<'m, M> {
    mem: &'m M,
    /// Where the image's zero fill is (skipped, not read).
    fill: &'m dyn Fn(u64) -> Option<Fill>,
    limits: Limits,
    found: Found,
    /// Root FDTs by address.
    roots: BTreeMap<u64, Root>,
    /// `setup_data` KHO entries: address, handover, and for the 2024
    /// design its whole `kho_data` (the handover then holds its FDT and
    /// scratch region).
    setups: Vec<(u64, Handover, Option<Rfc2024Handover>)>,
    /// DTBs naming a handover: address, totalsize, handover.
    dtbs: Vec<(u64, u64, Handover)>,
    dtb_bytes: u64,
    read_errors: usize,
    /// Bytes of the image read so far (counted against `scan_bytes`).
    read_bytes: u64,
    /// The scan stopped at `scan_bytes`.
    stopped: bool,
    /// The limits already reported (each once).
    limited: Vec<&'static str>,
}

impl<M: PhysMem> Scanner<'_, M> {
    fn problem(&mut self, code: &'static str, location: Location, message: String) {
        self.found.problems.push(Problem {
            code,
            location,
            message,
        });
    }

    /// Report limit `what` once.
    fn limit(&mut self, what: &'static str, message: String) {
        if !self.limited.contains(&what) {
            self.limited.push(what);
            self.problem("find-limit", Location::Scan { bound: what }, message);
        }
    }

    fn range(&mut self, start: u64, len: u64, buf: &mut Vec<u8>) {
        let Some(end) = start.checked_add(len) else {
            self.problem(
                "find-read",
                Location::Ram { addr: start, len },
                "the range runs past the end of the address space".to_owned(),
            );
            return;
        };
        let mut at = start;
        while at < end {
            let mut next = (at / CHUNK)
                .checked_add(1)
                .and_then(|c| c.checked_mul(CHUNK))
                .map_or(end, |n| n.min(end));
            match (self.fill)(at) {
                // Zeros up to `zero_end`: nothing to find, nothing to read.
                Some(Fill::Zero(zero_end)) => {
                    let to = zero_end.clamp(at.saturating_add(1), end);
                    self.found.scan.bytes = self.found.scan.bytes.saturating_add(to - at);
                    at = to;
                    continue;
                }
                // File bytes up to `file_end`: read them, and the rest of
                // their last page, so that a page is read whole.
                Some(Fill::File(file_end)) => {
                    let page_end = file_end
                        .checked_next_multiple_of(PAGE)
                        .unwrap_or(file_end)
                        .max(at.saturating_add(1));
                    next = next.min(page_end);
                }
                None => {}
            }
            // At most CHUNK bytes.
            let n = (next - at) as usize;
            if self.read_bytes.saturating_add(n as u64) > self.limits.scan_bytes {
                let (read, max) = (self.read_bytes, self.limits.scan_bytes);
                self.limit(
                    "scan-bytes",
                    format!(
                        "read {read} bytes of the image, the most the scan may read ({max}, --max-scan-bytes); RAM from {at:#x} on was not scanned"
                    ),
                );
                self.stopped = true;
                return;
            }
            self.read_bytes += n as u64;
            buf.resize(n, 0);
            match self.mem.read(PhysAddr::new(at), buf) {
                Ok(()) => self.chunk(at, buf),
                Err(e) => {
                    self.read_errors += 1;
                    if self.read_errors <= self.limits.read_errors {
                        self.problem(
                            "find-read",
                            Location::Ram {
                                addr: at,
                                len: n as u64,
                            },
                            format!("cannot read this part of the image ({e}); not scanned"),
                        );
                    }
                }
            }
            self.found.scan.bytes = self.found.scan.bytes.saturating_add(n as u64);
            at = next;
        }
    }

    /// One chunk of RAM at `at`: each page that is not all zero.
    fn chunk(&mut self, at: u64, buf: &[u8]) {
        let mut off = 0usize;
        while off < buf.len() {
            // `at + off` is in the range, so below its (checked) end.
            let addr = at + off as u64;
            let page_end = (off + (PAGE - addr % PAGE) as usize).min(buf.len());
            let page = buf.get(off..page_end).unwrap_or_default();
            if ZERO_PAGE.get(..page.len()) != Some(page) {
                self.found.scan.nonzero_pages += 1;
                self.page(at, buf, off, page_end);
            }
            off = page_end;
        }
    }

    /// The 8-byte words of `buf[from..to]` (physical addresses `at + …`).
    fn page(&mut self, at: u64, buf: &[u8], from: usize, to: usize) {
        let misalign = ((at + from as u64) % 8) as usize;
        let mut i = from + (8 - misalign) % 8;
        while i + 8 <= to {
            let Some(word) = buf.get(i..i + 8) else {
                break;
            };
            match word.first() {
                Some(0xd0) if word.starts_with(&FDT_MAGIC.to_be_bytes()) => {
                    self.fdt_magic(at + i as u64, buf, i);
                }
                Some(&b) if b == SETUP_KEXEC_KHO as u8 && le64(word) == SETUP_KHO_WORD => {
                    self.setup_word(at + i as u64, buf, i);
                }
                Some(&b) if b == SETUP_KEXEC_KHO as u8 && le64(word) == SETUP_KHO_2024_WORD => {
                    self.setup_word_2024(at + i as u64, buf, i);
                }
                _ => {}
            }
            i += 8;
        }
    }

    /// Bytes `[addr, addr + len)`: from the chunk when they are in it (it
    /// holds `buf[i]` at `addr`; `i` is `None` when `addr` is before the
    /// chunk), else read from the image (`None`: not all in it).
    fn bytes(&self, addr: u64, len: usize, buf: &[u8], i: Option<usize>) -> Option<Vec<u8>> {
        if let Some(b) = i.and_then(|i| buf.get(i..i.checked_add(len)?)) {
            return Some(b.to_vec());
        }
        let mut out = vec![0u8; len];
        self.mem.read(PhysAddr::new(addr), &mut out).ok()?;
        Some(out)
    }

    fn fdt_magic(&mut self, addr: u64, buf: &[u8], i: usize) {
        self.found.scan.fdt_magics += 1;
        let page_start = addr.is_multiple_of(PAGE);
        // At a page start: `Ok(why not a root)` for a device tree,
        // `Err(kho-fdt's reason)` for what is none within the page.
        let page = if page_start {
            // The page, or what the range holds of it.
            let end = i.saturating_add(PAGE as usize).min(buf.len());
            let bytes = buf.get(i..end).unwrap_or_default();
            if looks_rfc2024(bytes) {
                self.rfc2024_root(addr, buf, i);
                return;
            }
            match root_fdt(bytes) {
                RootCheck::Root(root) => {
                    self.root(addr, root);
                    return;
                }
                RootCheck::NotKho(why) => Some(Ok(why)),
                RootCheck::NotDt(error) => Some(Err(error)),
            }
        } else {
            None
        };
        // Not a root KHO FDT: a boot DTB, or why it is skipped. Only page
        // starts are listed (any 8-byte word may hold the magic), and DTBs
        // that mention the handover.
        let reason = match (self.dtb(addr, buf, i), page) {
            (DtbCheck::Handover, _) => return,
            (DtbCheck::BadChosen(e), _) => {
                format!("a device tree whose /chosen KHO properties are bad: {e}")
            }
            (
                DtbCheck::Refused {
                    error,
                    mentions_kho: true,
                },
                _,
            ) => format!(
                "a device tree that has linux,kho-fdt, but kho-fdt's DTB reader refuses it \
                 (its /chosen cannot be read): {error}"
            ),
            (_, None) => return,
            (_, Some(Ok(why))) => why,
            (DtbCheck::NoHandover { total }, Some(Err(_))) => format!(
                "a device tree of {total} bytes (more than a page: not a root KHO FDT) whose \
                 /chosen names no handover"
            ),
            // The whole tree's reason when it was read, else the page's.
            (DtbCheck::Refused { error, .. }, Some(Err(_)))
            | (DtbCheck::NotRead, Some(Err(error))) => {
                format!("FDT magic, but not a device tree: {error}")
            }
        };
        self.skip(addr, reason);
    }

    /// A page start whose root compatible is the 2024 design's: read the
    /// tree whole (it may be larger than a page) within the scan's
    /// device-tree bounds and check its container and compatible.
    fn rfc2024_root(&mut self, addr: u64, buf: &[u8], i: usize) {
        let total = buf
            .get(i.saturating_add(4)..i.saturating_add(8))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u64::from(u32::from_be_bytes(b)));
        let root = |error: Option<String>| Root {
            total_size: total,
            compatible: RFC2024.to_owned(),
            abi_version: Some(RFC2024.to_owned()),
            error,
            named_by: Vec::new(),
        };
        // A page at most is in hand; a larger tree is a device tree read.
        if total > PAGE {
            let over = total > self.limits.fdt_bytes
                || self.found.scan.dtbs_read >= self.limits.dtbs as u64
                || self.dtb_bytes.saturating_add(total) > self.limits.dtb_bytes;
            if over {
                let (n, bytes) = (self.limits.dtbs, self.limits.dtb_bytes);
                self.limit(
                    "device trees",
                    format!(
                        "more device trees than the scan reads ({n}, {bytes:#x} bytes), or one \
                         larger than the `fdt_bytes` limit (--max-fdt-bytes); those past the limit were not read"
                    ),
                );
                let why = format!("not read whole: {total} bytes, past the scan's limits");
                self.root(addr, root(Some(why)));
                return;
            }
            self.found.scan.dtbs_read += 1;
            self.dtb_bytes += total;
        }
        // `total` ≤ fdt_bytes, which a usize holds when the test passed.
        let Some(blob) = usize::try_from(total)
            .ok()
            .and_then(|n| self.bytes(addr, n, buf, Some(i)))
        else {
            self.skip(
                addr,
                format!("the 2024 design's root compatible, but its {total} bytes are not all RAM"),
            );
            return;
        };
        match kho_ranges::Tree::parse(&blob) {
            Ok(_) => self.root(addr, root(None)),
            Err(e @ kho_ranges::Error::Fdt { .. }) => {
                self.skip(addr, format!("FDT magic, but not a device tree: {e}"));
            }
            Err(e) => self.root(addr, root(Some(e.to_string()))),
        }
    }

    fn skip(&mut self, addr: u64, reason: String) {
        self.found.skipped_total += 1;
        if self.found.skipped.len() < self.limits.skipped {
            self.found.skipped.push(Skipped { addr, reason });
        }
    }

    fn root(&mut self, addr: u64, root: Root) {
        if self.roots.len() >= self.limits.root_fdts {
            let max = self.limits.root_fdts;
            self.limit(
                "root FDTs",
                format!(
                    "more than {max} root KHO FDTs; the first {max} are listed \
                     (give --fdt ADDR for another)"
                ),
            );
            return;
        }
        if root.abi_version.is_none() {
            let known = AbiVersion::ALL.map(|v| format!("{:?}", v.compatible()));
            let message = format!(
                "compatible {:?}, a KHO version kho-rs does not know (it reads {})",
                root.compatible,
                known.join(", ")
            );
            self.problem(
                "find-unknown-version",
                Location::RootFdt { addr, offset: None },
                message,
            );
        }
        self.roots.insert(addr, root);
    }

    /// The FDT magic at `addr` as a boot DTB: read it whole (within the
    /// limits) and look at its `/chosen`.
    fn dtb(&mut self, addr: u64, buf: &[u8], i: usize) -> DtbCheck {
        let Some(header) = self.bytes(addr, FDT_HEADER_SIZE, buf, Some(i)) else {
            return DtbCheck::NotRead;
        };
        let be32 = |o: usize| {
            header
                .get(o..o + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| u64::from(u32::from_be_bytes(b)))
        };
        let (total, version) = (be32(4), be32(20));
        // Cheap refusals first: only a plausible header costs a read.
        if total < FDT_HEADER_SIZE as u64
            || total > MAX_DTB_SIZE as u64
            || version < u64::from(FDT_VERSION)
        {
            return DtbCheck::NotRead;
        }
        if self.found.scan.dtbs_read >= self.limits.dtbs as u64
            || self.dtb_bytes.saturating_add(total) > self.limits.dtb_bytes
        {
            let (n, bytes) = (self.limits.dtbs, self.limits.dtb_bytes);
            self.limit(
                "device trees",
                format!(
                    "more device trees than the scan reads ({n}, {bytes:#x} bytes); those past \
                     the limit were not searched for /chosen linux,kho-fdt"
                ),
            );
            return DtbCheck::NotRead;
        }
        self.found.scan.dtbs_read += 1;
        self.dtb_bytes += total;
        // `total` ≤ MAX_DTB_SIZE.
        let Some(blob) = self.bytes(addr, total as usize, buf, Some(i)) else {
            return DtbCheck::NotRead;
        };
        match dt::read_chosen(&blob) {
            Ok(Some(h)) => {
                if self.dtbs.len() < self.limits.setup_data {
                    self.dtbs.push((addr, total, h));
                } else {
                    self.boot_limit();
                }
                DtbCheck::Handover
            }
            Ok(None) => DtbCheck::NoHandover { total },
            Err(kho::Error::Fdt(e)) => {
                // The strings block (as the header places it, else the whole
                // blob) names every property of the tree.
                let (off, len) = (be32(12) as usize, be32(32) as usize);
                let strings = off
                    .checked_add(len)
                    .and_then(|end| blob.get(off..end))
                    .unwrap_or(&blob);
                let name = PROP_KHO_FDT.as_bytes();
                let mentions_kho = strings.split(|&b| b == 0).any(|s| s == name);
                DtbCheck::Refused {
                    error: e.to_string(),
                    mentions_kho,
                }
            }
            Err(e) => DtbCheck::BadChosen(e.to_string()),
        }
    }

    fn boot_limit(&mut self) {
        let max = self.limits.setup_data;
        self.limit(
            "boot structures",
            format!(
                "more than {max} setup_data entries or DTBs name a handover; the rest are ignored"
            ),
        );
    }

    /// The word `type = 10, len = 32` at `addr`: a `setup_data` header at
    /// `addr - 8`.
    fn setup_word(&mut self, addr: u64, buf: &[u8], i: usize) {
        let Some(entry) = addr.checked_sub(8) else {
            return;
        };
        self.found.scan.setup_data_headers += 1;
        let Some(bytes) = self.bytes(entry, SETUP_ENTRY_LEN, buf, i.checked_sub(8)) else {
            return;
        };
        let Some(Ok(data)) = bytes
            .get(SETUP_DATA_HEADER_SIZE..)
            .map(KhoData::read_from_bytes)
        else {
            return;
        };
        let h = Handover::from_kho_data(&data);
        // Only an entry naming a page can name a root FDT.
        if h.fdt.as_u64() == 0 || !h.fdt.as_u64().is_multiple_of(PAGE) {
            return;
        }
        if self.setups.len() < self.limits.setup_data {
            self.setups.push((entry, h, None));
        } else {
            self.boot_limit();
        }
    }

    /// The word `type = 10, len = 48` at `addr`: a 2024-design `setup_data`
    /// header at `addr - 8`.
    fn setup_word_2024(&mut self, addr: u64, buf: &[u8], i: usize) {
        let Some(entry) = addr.checked_sub(8) else {
            return;
        };
        self.found.scan.setup_data_headers += 1;
        let Some(bytes) = self.bytes(entry, SETUP_ENTRY_2024_LEN, buf, i.checked_sub(8)) else {
            return;
        };
        let Some(Ok(data)) = bytes
            .get(SETUP_DATA_HEADER_SIZE..)
            .map(rfc2024::KhoData::read_from_bytes)
        else {
            return;
        };
        // A pair that wraps names nothing.
        let Ok(h) = kho_ranges::Handover::from_kho_data(&data) else {
            return;
        };
        // Only an entry naming a page can name a root FDT.
        let fdt = h.fdt.start();
        if fdt.as_u64() == 0 || !fdt.as_u64().is_multiple_of(PAGE) {
            return;
        }
        let handover = Handover {
            fdt,
            fdt_size: h.fdt.size(),
            scratch: h.scratch.start(),
            scratch_len: h.scratch.size(),
        };
        let kho_data = Rfc2024Handover {
            fdt: fdt.as_u64(),
            fdt_size: h.fdt.size(),
            scratch: h.scratch.start().as_u64(),
            scratch_size: h.scratch.size(),
            mem_cache: h.mem_cache.start().as_u64(),
            mem_cache_size: h.mem_cache.size(),
        };
        if self.setups.len() < self.limits.setup_data {
            self.setups.push((entry, handover, Some(kho_data)));
        } else {
            self.boot_limit();
        }
    }

    /// Match boot structures to root FDTs and list the candidates.
    fn resolve(&mut self) {
        let mut boot = Vec::new();
        let setups = core::mem::take(&mut self.setups);
        let dtbs = core::mem::take(&mut self.dtbs);
        let structures = setups
            .into_iter()
            .map(|(a, h, k)| (a, None, h, k))
            .chain(dtbs.into_iter().map(|(a, t, h)| (a, Some(t), h, None)));
        for (addr, dtb_size, h, kho_data) in structures {
            let fdt = h.fdt.as_u64();
            let plausible = match &kho_data {
                Some(k) => self.plausible_2024(k),
                None => dtb_size.is_some() || self.plausible(&h),
            };
            let (names_root_fdt, abi_version) = match self.roots.get_mut(&fdt) {
                Some(root) => {
                    root.named_by.push(addr);
                    (true, root.abi_version.clone())
                }
                // A setup_data lookalike must look like a real handover to
                // be listed when its FDT was not found (a DTB with
                // linux,kho-fdt is one by construction).
                None if plausible => (false, None),
                None => continue,
            };
            let handover = HandoverInfo {
                fdt,
                fdt_size: h.fdt_size,
                scratch: h.scratch.as_u64(),
                scratch_len: h.scratch_len,
            };
            boot.push(match (dtb_size, kho_data) {
                (_, Some(kho_data)) => Candidate::X86SetupData2024 {
                    addr,
                    kho_data,
                    abi_version,
                    names_root_fdt,
                },
                (Some(total_size), None) => Candidate::Dtb {
                    addr,
                    total_size,
                    handover,
                    abi_version,
                    names_root_fdt,
                },
                (None, None) => Candidate::X86SetupData {
                    addr,
                    handover,
                    abi_version,
                    names_root_fdt,
                },
            });
        }
        boot.sort_by_key(Candidate::addr);
        let roots = core::mem::take(&mut self.roots);
        self.found.candidates = roots
            .into_iter()
            .map(|(addr, r)| Candidate::RootFdt {
                addr,
                total_size: r.total_size,
                compatible: r.compatible,
                abi_version: r.abi_version,
                error: r.error,
                named_by: {
                    let mut n = r.named_by;
                    n.sort_unstable();
                    n
                },
            })
            .chain(boot)
            .collect();
    }

    /// Whether a 2024-design `setup_data` entry whose FDT was not found looks
    /// like one kho-ranges writes: an FDT at least a header long and within
    /// `fdt_bytes`, a page-aligned scratch region and a mem cache of whole
    /// entries, all in the image.
    fn plausible_2024(&self, k: &Rfc2024Handover) -> bool {
        let ram = |addr: u64, len: u64| len == 0 || self.mem.is_ram(PhysAddr::new(addr), len);
        (FDT_HEADER_SIZE as u64..=self.limits.fdt_bytes).contains(&k.fdt_size)
            && ram(k.fdt, k.fdt_size)
            && k.scratch_size != 0
            && k.scratch.is_multiple_of(PAGE)
            && k.scratch_size.is_multiple_of(PAGE)
            && ram(k.scratch, k.scratch_size)
            && k.mem_cache_size
                .is_multiple_of(rfc2024::KHO_MEM_SIZE as u64)
            && ram(k.mem_cache, k.mem_cache_size)
    }

    /// Whether a `setup_data` KHO entry whose FDT was not found looks like
    /// one Linux or kho-rs writes: a one-page FDT mapping and a scratch
    /// array of whole descriptors, both in the image.
    fn plausible(&self, h: &Handover) -> bool {
        let entries = h.scratch_len / kho_scratch::array_byte_len(1);
        h.fdt_size == PAGE
            && self.mem.is_ram(h.fdt, PAGE)
            && h.scratch_len.is_multiple_of(kho_scratch::array_byte_len(1))
            && (1..=kho_scratch::MAX_AREAS as u64).contains(&entries)
            && self.mem.is_ram(h.scratch, h.scratch_len)
    }
}

/// What an FDT magic at a page start is.
enum RootCheck {
    /// A root KHO FDT (known version or not).
    Root(Root),
    /// Not a device tree within the page: kho-fdt's reason.
    NotDt(String),
    /// A device tree, but not a root KHO FDT: why.
    NotKho(String),
}

/// What an FDT magic is as a boot DTB.
enum DtbCheck {
    /// Not read: an implausible header, past the limits, or not all RAM.
    NotRead,
    /// Its `/chosen` names a handover (kept).
    Handover,
    /// A device tree without the KHO properties.
    NoHandover { total: u64 },
    /// `/chosen` has KHO properties, malformed.
    BadChosen(String),
    /// kho-fdt refuses the tree; `mentions_kho`: its strings block has
    /// `linux,kho-fdt`.
    Refused { error: String, mentions_kho: bool },
}

/// The page at a page start with an FDT magic: a root KHO FDT, or why not.
fn root_fdt(page: &[u8]) -> RootCheck {
    let dtb = match Dtb::parse(page) {
        Ok(dtb) => dtb,
        Err(e) => return RootCheck::NotDt(e.to_string()),
    };
    let Some(compatible) = dtb.property("/", PROP_COMPATIBLE).map(|v| {
        let first = v.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8_lossy(first).into_owned()
    }) else {
        return RootCheck::NotKho("a device tree without a root compatible".to_owned());
    };
    if !compatible.starts_with("kho-v") {
        return RootCheck::NotKho(format!(
            "a device tree whose root compatible is {compatible:?}, not a root KHO FDT"
        ));
    }
    let (abi_version, error) = match KhoFdt::parse(dtb.as_bytes()) {
        Ok(fdt) => (Some(fdt.version().to_string()), None),
        Err(e) => (
            AbiVersion::from_compatible(&compatible).map(|v| v.to_string()),
            Some(e.to_string()),
        ),
    };
    RootCheck::Root(Root {
        total_size: dtb.as_bytes().len() as u64,
        compatible,
        abi_version,
        error,
        named_by: Vec::new(),
    })
}

/// The little-endian word `b` holds (0 unless it is 8 bytes).
fn le64(b: &[u8]) -> u64 {
    <[u8; 8]>::try_from(b).map_or(0, u64::from_le_bytes)
}

/// Decode the best candidates: the root FDTs a boot structure names (from
/// the first such structure, so that the scratch areas are known); else
/// every root FDT (the only one, or each of several); else every boot
/// structure whose FDT was not found (the decoder says what is there).
fn decode<M: PhysMem>(
    mem: &M,
    found: &Found,
    limits: Limits,
    problems: &mut Vec<Problem>,
) -> Vec<Decoded> {
    let roots: Vec<(u64, &Vec<u64>)> = found
        .candidates
        .iter()
        .filter_map(|c| match c {
            Candidate::RootFdt { addr, named_by, .. } => Some((*addr, named_by)),
            _ => None,
        })
        .collect();
    let boot_at = |addr: u64| -> Option<Start> {
        found.candidates.iter().find_map(|c| match *c {
            Candidate::X86SetupData { addr: a, .. }
            | Candidate::X86SetupData2024 { addr: a, .. }
                if a == addr =>
            {
                Some(Start::X86SetupData(a))
            }
            Candidate::Dtb { addr: a, .. } if a == addr => Some(Start::Dtb(a)),
            _ => None,
        })
    };
    let describe = |start: Start| match start {
        Start::X86SetupData(a) => format!("the x86 setup_data KHO entry at {a:#x}"),
        Start::Dtb(a) => format!("the boot DTB at {a:#x}"),
        Start::Fdt(a) => format!("the root FDT at {a:#x}"),
        Start::X86BootParams(a) => format!("the zero page at {a:#x}"),
    };
    let named: Vec<_> = roots.iter().filter(|(_, by)| !by.is_empty()).collect();
    let mut plan: Vec<(String, Start)> = Vec::new();
    if !named.is_empty() {
        let n = named.len();
        for (fdt, by) in &named {
            let Some(start) = by.first().and_then(|&a| boot_at(a)) else {
                continue;
            };
            let mut why = format!("the root FDT at {fdt:#x}, named by {}", describe(start));
            if by.len() > 1 {
                why.push_str(&format!(" (and {} more)", by.len() - 1));
            }
            if n > 1 {
                why.push_str(&format!(
                    "; {n} root FDTs are named by boot structures, each is decoded"
                ));
            }
            plan.push((why, start));
        }
    } else if let [(only, _)] = roots.as_slice() {
        plan.push((
            format!(
                "the only root KHO FDT in the image, at {only:#x}; no boot structure names it, \
                 so the scratch areas are unknown"
            ),
            Start::Fdt(*only),
        ));
    } else if !roots.is_empty() {
        let n = roots.len();
        for (fdt, _) in &roots {
            plan.push((
                format!(
                    "the root FDT at {fdt:#x}, one of {n} root KHO FDTs no boot structure names \
                     (each is decoded; the scratch areas are unknown)"
                ),
                Start::Fdt(*fdt),
            ));
        }
    } else {
        for c in &found.candidates {
            let (start, fdt) = match *c {
                Candidate::X86SetupData { addr, handover, .. } => {
                    (Start::X86SetupData(addr), handover.fdt)
                }
                Candidate::X86SetupData2024 { addr, kho_data, .. } => {
                    (Start::X86SetupData(addr), kho_data.fdt)
                }
                Candidate::Dtb { addr, handover, .. } => (Start::Dtb(addr), handover.fdt),
                Candidate::RootFdt { .. } => continue,
            };
            plan.push((
                format!(
                    "{} names a root FDT at {fdt:#x}, but the scan found none there",
                    describe(start)
                ),
                start,
            ));
        }
    }
    if plan.len() > limits.decodes {
        problems.push(Problem {
            code: "find-limit",
            location: Location::Scan { bound: "decodes" },
            message: format!(
                "{} candidates to decode; the first {} are decoded (give --fdt, --dtb or \
                 --x86-boot-params for another)",
                plan.len(),
                limits.decodes
            ),
        });
        plan.truncate(limits.decodes);
    }
    plan.into_iter()
        .map(|(why, start)| {
            let report = inspect_with(mem, start, limits);
            Decoded {
                why,
                start,
                notes: notes(&report),
                report,
            }
        })
        .collect()
}

/// Notes on a decoded handover read from a dump taken before the kexec.
fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    if let (Some(h), Some(areas)) = (&report.handover, &report.scratch)
        && !areas.is_empty()
        && areas.iter().all(|a| a.size == 0)
    {
        notes.push(format!(
            "every entry of the scratch array at {:#x} reads as size 0. On a Linux host that has \
             run kexec_file_load but not yet kexec'd, that is expected: the array is a kexec \
             segment, still in the kimage's own pages, and is copied to this address only at the \
             kexec (so the preserved-in-scratch checks had nothing to check)",
            h.scratch
        ));
    }
    notes
}
