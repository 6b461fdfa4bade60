//! [`Limits`]: the budget of one inspection, so that its work and memory
//! follow the real handover and stop, named, at a bound.
//!
//! A dump is untrusted input: a 2 MB ELF core can claim a `p_memsz` of
//! 2^50 bytes and fill a radix tree with leaves of alternating bits (7.8
//! million runs of one page each). Without a budget that image made
//! `inspect` list every run (643 MB of memory, 27 s). With one, the decoder
//! stops at the bound and says so: a `budget-exceeded` problem names the
//! limit, its value and what was not decoded.
//!
//! The defaults cover a real handover of a 16 TiB host comfortably:
//!
//! - [`nodes`](Limits::nodes) 1,048,576 radix nodes: every 4 KiB page of
//!   16 TiB preserved one by one is 131,072 leaves and 260 tables, so
//!   about 8× that (the walk's visited set is then 9.6 MB);
//! - [`runs`](Limits::runs) 1,048,576 runs of adjacent blocks: 16 TiB in
//!   1 GiB folios is at most 16,384 runs, in 2 MiB folios a million runs
//!   needs every eighth folio to stand alone; a million runs take about
//!   72 MiB (32 bytes each in the report, 40 in the index the checks
//!   search) and a line each of the text;
//! - [`blocks`](Limits::blocks) 4,194,304 blocks checked one by one
//!   (client records: the stub's extents, `kho_test`'s folios);
//! - [`bytes`](Limits::bytes) 8 GiB read from the image per handover: a
//!   walk of a tree at the node limit reads 4 GiB (its restarts with a
//!   larger visited set included, about 4.6 GiB);
//! - [`problems`](Limits::problems) 1024 problems listed; the rest are
//!   counted;
//! - [`fdt_bytes`](Limits::fdt_bytes) 64 MiB: the largest FDT of the 2024
//!   design read whole (any node may carry `mem`, so the tree grows with
//!   what is preserved: a million ranges are 16 MiB of `mem` entries).
//!
//! The remaining fields bound `--find`'s scan ([`crate::find`]). The scan
//! reads each byte of the image's file once and skips the zero fill past
//! `p_filesz`; [`scan_bytes`](Limits::scan_bytes) (64 GiB, about a minute
//! of reading at disk speed) bounds what it reads, so a multi-terabyte dump
//! ends with a named `find-limit` instead of hours of reading.

/// Bounds on the work and memory of one inspection: the decoder's budget
/// for each handover, and the bounds of `--find`'s scan.
///
/// Past a decoder bound the report gets a `budget-exceeded` problem naming
/// the limit and its value, and what it stopped decoding; past a scan bound
/// a `find-limit` problem. Every field has a default ([`Limits::default`]);
/// set one with struct update syntax:
///
/// ```
/// let limits = kho_inspect::Limits { runs: 4096, ..Default::default() };
/// assert_eq!(limits.nodes, 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Radix nodes (tables and leaves) the walk of the preserved-memory tree
    /// visits (`--max-nodes`).
    pub nodes: usize,
    /// Runs of the preserved set recorded (`--max-runs`): the walk stops
    /// after this many. For a 2024-design handover, the `mem` entries
    /// listed and checked, and the mem cache entries checked.
    pub runs: usize,
    /// Blocks the decoder checks one at a time against the preserved set
    /// (`--max-blocks`): the stub's folio records and extents, the folios
    /// `kho_test` lists.
    pub blocks: u64,
    /// Bytes read from the image to decode one handover (`--max-bytes`).
    pub bytes: u64,
    /// Problems listed in one report (`--max-problems`); more are counted.
    pub problems: usize,
    /// Bytes of a 2024-design FDT read whole (its `dt_size`, or its
    /// header's `totalsize` when decoded from the FDT alone;
    /// `--max-fdt-bytes`).
    pub fdt_bytes: u64,
    /// `--find`: root KHO FDTs listed.
    pub root_fdts: usize,
    /// `--find`: `setup_data` type-10 entries (and DTBs naming a handover)
    /// kept for matching.
    pub setup_data: usize,
    /// `--find`: boot DTBs read whole (to look at `/chosen`) …
    pub dtbs: usize,
    /// … and the bytes they may add up to.
    pub dtb_bytes: u64,
    /// `--find`: skipped FDT magics listed (the rest are counted).
    pub skipped: usize,
    /// `--find`: unreadable chunks listed as problems (the rest are counted).
    pub read_errors: usize,
    /// `--find`: handovers decoded.
    pub decodes: usize,
    /// `--find`: bytes of the image the scan reads (`--max-scan-bytes`); the
    /// zero fill it skips does not count. Past it the scan stops, names
    /// where, and decodes what it found.
    pub scan_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            nodes: 1 << 20,
            runs: 1 << 20,
            blocks: 1 << 22,
            bytes: 8 << 30,
            problems: 1024,
            fdt_bytes: 64 << 20,
            root_fdts: 64,
            setup_data: 1024,
            dtbs: 256,
            dtb_bytes: 64 << 20,
            skipped: 32,
            read_errors: 8,
            decodes: 8,
            scan_bytes: 64 << 30,
        }
    }
}
