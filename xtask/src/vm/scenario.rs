//! VM scenarios: one TOML file per scenario in `vm-images/`, validated into a [`Scenario`].
//!
//! The schema (every key but the optional ones is required; unknown keys are
//! errors):
//!
//! ```toml
//! description = "ten handovers in a row"
//! arches = ["x86_64"]
//! memory = "512M"               # QEMU -m, in M or G
//! numa_nodes = 0                # optional; > 0 splits memory evenly over that many nodes
//! cmdline = "kho_scratch=16M,64M,32M reserve_mem=64K:4K:kho_log"
//! generations = 10
//! seed = 0x5eed
//! fault = "compatible@3"        # optional: kho_stub.fault=CLASS@G
//! dump_at = 2                   # optional: dump guest memory before G's kexec, check inspect (vm/dump.rs)
//! subtrees = "max"              # optional: kho_stub.subtrees=N|max (extra client subtrees)
//! vmalloc_pages = 5000          # optional: kho_stub.vmalloc_pages=N (default 600)
//! guest = "1g:2,2m:400,4k:25000" # optional: kho_stub.guest= (guest memory kept by every generation)
//! abi = "v3"                    # optional: kho_stub.abi=v1|v2|v3|v4 (the stub's default is v4),
//!                               # or a list indexed by generation whose last entry holds for
//!                               # every later one: ["v1", "v2", "v3", "v4"] (at most 64)
//! snapshot_generations = [0, 1] # optional: the generations snapshotted (default: all)
//! generation_timeout = 30       # optional, seconds per generation (default 30)
//! run_timeout = 330             # optional, seconds per run (default 30 + generations * generation_timeout)
//! refuse = "kho-v1 cannot carry *"  # optional: the last generation must refuse to hand over (`KHO fail`
//!                               # with this reason pattern; QEMU exits with the failure code)
//!
//! [linux]                       # optional: a Linux peer kernel in the run (vm/peer.rs)
//! flow = "stub-to-linux"        # "selftest" (Linux → Linux; no generations/seed then) | "stub-to-linux"
//! cmdline = "reserve_mem=64K:4K:kho_log"  # Linux's parameters besides console=, kho=on, panic=-1
//! expect = ["test_kho: KHO restore succeeded"]  # text Linux must print; {release} = its release
//! subtrees = ["kho_test"]       # stub-to-linux: the kho/in subtrees Linux must list, exactly
//! timeout = 180                 # optional, seconds for the Linux part
//!
//! [[expect]]                    # optional overrides of the default per generation:
//! generation = 4                # generation 0 "cold", every later one "verified"
//! result = "failed"             # "cold" | "verified" | "failed" | "partial"
//! reason = "KHO FDT: *"         # "failed"/"partial" only: the whole reason, `*` = any text;
//!                               # or { x86_64 = "…", aarch64 = "…" }
//! scratch = "any"               # optional: "fresh" | "inherited" | "fresh-or-inherited" | "any"
//! leaked = "none"               # "partial" only, optional: "some" (default: leaked=N > 0,
//!                               # the failed client's blocks stay reserved) | "none" (leaked=0)
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use super::arch::ArchSpec;
use super::peer::{Flow, LinuxFile, LinuxPhase};
use super::reason::{Reason, ReasonFile};

/// Default seconds one generation may take.
const DEFAULT_GENERATION_TIMEOUT: u64 = 30;

/// `abi`: one version for every generation, or one per generation.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AbiFile {
    One(String),
    PerGeneration(Vec<String>),
}

/// Most entries of an `abi` list (the stub's `MAX_ABI_LIST`).
const MAX_ABI_LIST: usize = 64;

/// The file as written (before validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    description: String,
    arches: Vec<String>,
    memory: String,
    #[serde(default)]
    numa_nodes: u32,
    #[serde(default)]
    cmdline: String,
    generations: Option<u32>,
    seed: Option<u64>,
    fault: Option<String>,
    dump_at: Option<u32>,
    subtrees: Option<SubtreesFile>,
    vmalloc_pages: Option<u32>,
    guest: Option<String>,
    abi: Option<AbiFile>,
    snapshot_generations: Option<Vec<u32>>,
    generation_timeout: Option<u64>,
    run_timeout: Option<u64>,
    #[serde(default)]
    expect: Vec<ExpectFile>,
    refuse: Option<ReasonFile>,
    linux: Option<LinuxFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    /// Spanned: a failure of this expectation cites its line.
    generation: toml::Spanned<u32>,
    result: ResultKind,
    reason: Option<ReasonFile>,
    scratch: Option<ScratchExpect>,
    leaked: Option<Leaked>,
}

/// What a `partial` verify leaves reserved (`leaked=N`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Leaked {
    /// `leaked=N`, N > 0: the failed client's blocks stay reserved (the
    /// default).
    Some,
    /// `leaked=0`: nothing stays reserved, e.g. a duplicate child whose
    /// memory the first one already restored.
    None,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ResultKind {
    Cold,
    Verified,
    Failed,
    Partial,
}

/// `subtrees = N` or `subtrees = "max"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged, expecting = "a number of subtrees or \"max\"")]
enum SubtreesFile {
    Count(u32),
    Word(String),
}

/// `kho_stub.subtrees=`: extra client subtrees in the root FDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subtrees {
    /// Exactly this many.
    Count(u32),
    /// As many as fit in the one-page root FDT.
    Max,
}

impl fmt::Display for Subtrees {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subtrees::Count(n) => write!(f, "{n}"),
            Subtrees::Max => f.write_str("max"),
        }
    }
}

/// What a generation's scratch areas must be (`scratch =` in `[[expect]]`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ScratchExpect {
    /// Placed on this boot: the sizes follow `kho_scratch=` (default for a cold boot).
    Fresh,
    /// The previous generation's areas, unchanged (default for a KHO boot).
    Inherited,
    /// Either (default after a failed revival: kept if `kho_populate` passed).
    FreshOrInherited,
    /// Not compared: the previous generation corrupted the array on purpose
    /// and this one uses it as handed over. The areas must still be one per
    /// kind, in RAM and disjoint.
    Any,
}

impl fmt::Display for ScratchExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScratchExpect::Fresh => "fresh",
            ScratchExpect::Inherited => "inherited",
            ScratchExpect::FreshOrInherited => "fresh-or-inherited",
            ScratchExpect::Any => "any",
        })
    }
}

/// What one generation must report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A cold boot: `revival result=none` (generation 0).
    Cold,
    /// `revival result=ok`, `fdt-in` equal to the previous `fdt-out`, `verify result=ok`.
    Verified,
    /// `revival result=failed` with this reason; the generation then boots
    /// cold and the chain continues.
    Failed { reason: Reason },
    /// `revival result=ok`, `fdt-in` equal to the previous `fdt-out`, then
    /// `verify result=partial leaked=N` with this reason: one client could
    /// not restore its state, the revival stands (upstream's behaviour).
    Partial { reason: Reason, leaked: Leaked },
}

impl Expect {
    /// The default scratch expectation of a generation with this result.
    pub(crate) fn default_scratch(&self) -> ScratchExpect {
        match self {
            Expect::Cold => ScratchExpect::Fresh,
            Expect::Verified | Expect::Partial { .. } => ScratchExpect::Inherited,
            Expect::Failed { .. } => ScratchExpect::FreshOrInherited,
        }
    }

    /// Whether the generation revives the previous one's handover (`revival result=ok`).
    pub(crate) fn revives(&self) -> bool {
        matches!(self, Expect::Verified | Expect::Partial { .. })
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Cold => f.write_str("cold"),
            Expect::Verified => f.write_str("verified"),
            Expect::Failed { reason } => write!(f, "failed (reason {reason})"),
            Expect::Partial {
                reason,
                leaked: Leaked::Some,
            } => write!(f, "partial (reason {reason})"),
            Expect::Partial {
                reason,
                leaked: Leaked::None,
            } => write!(f, "partial (reason {reason}, nothing leaked)"),
        }
    }
}

/// `kho_stub.fault=CLASS@G`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) class: String,
    pub(crate) generation: u32,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.class, self.generation)
    }
}

/// A validated scenario.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    /// The file stem.
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) arches: Vec<String>,
    /// `-m`, as written (`512M`).
    pub(crate) memory: String,
    pub(crate) memory_mib: u64,
    pub(crate) numa_nodes: u32,
    /// Extra kernel parameters.
    pub(crate) cmdline: String,
    pub(crate) generations: u32,
    pub(crate) seed: u64,
    pub(crate) fault: Option<Fault>,
    /// Pause before this generation's kexec and check a memory dump (vm/dump.rs).
    pub(crate) dump_at: Option<u32>,
    /// `kho_stub.subtrees=`.
    pub(crate) subtrees: Option<Subtrees>,
    /// `kho_stub.vmalloc_pages=`.
    pub(crate) vmalloc_pages: Option<u32>,
    /// `kho_stub.guest=`: `1g:N,2m:N,4k:N` of guest memory.
    pub(crate) guest: Option<String>,
    /// `kho_stub.abi=`: the ABI version each generation writes (`v1`..`v4`),
    /// indexed by generation, the last entry for every later one; empty:
    /// the stub's default (kho-v4).
    pub(crate) abi: Vec<String>,
    /// The generations whose FDTs and protocol lines are snapshotted, ascending.
    pub(crate) snapshot_generations: Vec<u32>,
    /// One entry per generation.
    pub(crate) expect: Vec<Expect>,
    /// What each generation's scratch areas must be, one entry per generation.
    pub(crate) scratch: Vec<ScratchExpect>,
    /// The line of `vm-images/<name>.toml` whose `[[expect]]` set each
    /// generation's expectation (`None`: the default), for failure messages.
    pub(crate) expect_lines: Vec<Option<usize>>,
    pub(crate) generation_timeout: Duration,
    pub(crate) run_timeout: Duration,
    /// `test-vm --generations N` changed the count: a soak run, checked
    /// generation by generation like any other but not snapshotted (the
    /// command line, and so every snapshot, names the count).
    pub(crate) soak: bool,
    /// `refuse = "reason"`: the last generation must refuse to hand over
    /// (`KHO fail` with this reason, before any kexec; QEMU exits with the
    /// stub's failure code), as a downgrade to a version that cannot carry
    /// what is preserved must.
    pub(crate) refuse: Option<Reason>,
    /// A Linux peer in the run (`[linux]`).
    pub(crate) linux: Option<LinuxPhase>,
}

/// Every `*.toml` in `dir`, sorted by name.
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<Scenario>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_file(p)).collect()
}

/// One scenario file.
pub(crate) fn load_file(path: &Path) -> Result<Scenario> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{}: file name is not UTF-8", path.display()))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(name, &text).with_context(|| format!("scenario {}", path.display()))
}

/// Parse and validate the text of scenario `name`.
pub(crate) fn parse(name: &str, text: &str) -> Result<Scenario> {
    ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
        "scenario name `{name}` must be lower-case letters, digits, `-` and `_`"
    );
    let file: ScenarioFile = toml::from_str(text)?;
    validate(name, file, text)
}

fn validate(name: &str, mut f: ScenarioFile, text: &str) -> Result<Scenario> {
    let linux = f
        .linux
        .take()
        .map(LinuxPhase::from_file)
        .transpose()
        .context("[linux]")?;
    let (generations, seed) = match (&linux, f.generations, f.seed) {
        (Some(l), None, None) if l.flow == Flow::Selftest => (0, 0),
        (Some(l), _, _) if l.flow == Flow::Selftest => {
            bail!("flow = \"selftest\" runs no kho-stub generation: remove generations and seed")
        }
        (_, Some(g), Some(s)) => (g, s),
        (_, None, _) => bail!("missing field `generations`"),
        (_, _, None) => bail!("missing field `seed`"),
    };
    let selftest = linux.as_ref().is_some_and(|l| l.flow == Flow::Selftest);
    ensure!(
        linux
            .as_ref()
            .is_none_or(|l| !matches!(l.flow, Flow::LinuxToStub | Flow::LinuxRoundtrip))
            || generations >= 2,
        "generation 0 is Linux, so generations must be at least 2"
    );
    ensure!(
        selftest || generations >= 1,
        "generations must be at least 1"
    );
    if let Some(g) = &f.guest {
        ensure!(
            !g.is_empty()
                && g.split(',').all(|p| matches!(
                    p.split_once(':'),
                    Some(("1g" | "2m" | "4k", n)) if n.parse::<u32>().is_ok()
                )),
            "guest = {g:?}: want kind:count[,kind:count] with kinds 1g, 2m and 4k"
        );
    }
    if selftest {
        ensure!(
            f.fault.is_none()
                && f.dump_at.is_none()
                && f.subtrees.is_none()
                && f.vmalloc_pages.is_none()
                && f.guest.is_none()
                && f.snapshot_generations.is_none()
                && f.expect.is_empty()
                && f.numa_nodes == 0
                && f.cmdline.is_empty(),
            "flow = \"selftest\" boots only Linux: set its parameters in [linux] cmdline, and no stub keys"
        );
    }
    ensure!(
        !f.arches.is_empty(),
        "arches is empty (known: {})",
        ArchSpec::names()
    );
    for (i, arch) in f.arches.iter().enumerate() {
        ensure!(
            ArchSpec::find(arch).is_some(),
            "unknown arch `{arch}` (known: {})",
            ArchSpec::names()
        );
        ensure!(!f.arches[..i].contains(arch), "arch `{arch}` listed twice");
    }
    let memory_mib = parse_memory(&f.memory)?;
    if f.numa_nodes > 0 {
        ensure!(
            f.numa_nodes <= 64,
            "numa_nodes = {} is more than 64",
            f.numa_nodes
        );
        ensure!(
            memory_mib % u64::from(f.numa_nodes) == 0,
            "memory {} does not split evenly over {} NUMA nodes (whole MiB per node)",
            f.memory,
            f.numa_nodes
        );
    }
    check_cmdline(&f.cmdline)?;
    if !selftest {
        super::layout::scratch_spec(&f.cmdline).context("cmdline")?;
    }
    let fault = f.fault.as_deref().map(parse_fault).transpose()?;

    let mut expect: Vec<Expect> = (0..generations)
        .map(|g| {
            if g == 0 {
                Expect::Cold
            } else {
                Expect::Verified
            }
        })
        .collect();
    let mut scratch: Vec<ScratchExpect> = expect.iter().map(Expect::default_scratch).collect();
    let mut seen = Vec::new();
    let mut expect_lines = vec![None; expect.len()];
    for e in f.expect {
        let g = *e.generation.get_ref();
        let line = text
            .get(..e.generation.span().start)
            .map_or(0, |before| before.matches('\n').count() + 1);
        ensure!(
            g < generations,
            "[[expect]] generation {g} is past the last generation {}",
            generations - 1
        );
        ensure!(
            !seen.contains(&g),
            "[[expect]] generation {g} is given twice"
        );
        seen.push(g);
        expect_lines[g as usize] = Some(line);
        let reason = e
            .reason
            .map(|r| Reason::from_file(r, &f.arches))
            .transpose()
            .with_context(|| format!("[[expect]] generation {g}: reason"))?;
        ensure!(
            e.leaked.is_none() || e.result == ResultKind::Partial,
            "[[expect]] generation {g}: leaked is only for result \"partial\""
        );
        let value = match (e.result, reason) {
            (ResultKind::Failed, Some(reason)) => Expect::Failed { reason },
            (ResultKind::Partial, Some(reason)) => Expect::Partial {
                reason,
                leaked: e.leaked.unwrap_or(Leaked::Some),
            },
            (ResultKind::Failed | ResultKind::Partial, None) => {
                bail!("[[expect]] generation {g}: results \"failed\" and \"partial\" need a reason")
            }
            (_, Some(_)) => {
                bail!(
                    "[[expect]] generation {g}: reason is only for results \"failed\" and \"partial\""
                )
            }
            (ResultKind::Cold, None) => Expect::Cold,
            (ResultKind::Verified, None) => Expect::Verified,
        };
        ensure!(
            g != 0 || value == Expect::Cold,
            "[[expect]] generation 0 boots cold from QEMU: its result can only be \"cold\""
        );
        let scratch_expect = e.scratch.unwrap_or_else(|| value.default_scratch());
        ensure!(
            g != 0 || matches!(scratch_expect, ScratchExpect::Fresh | ScratchExpect::Any),
            "[[expect]] generation 0: scratch = \"{scratch_expect}\", but nothing precedes generation 0 to inherit from"
        );
        scratch[g as usize] = scratch_expect;
        expect[g as usize] = value;
    }
    if let Some(fault) = &fault {
        let next = fault.generation + 1;
        ensure!(
            next < generations,
            "fault {fault} needs generation {next} to see it, but the run has {} generations",
            generations
        );
        // "verified" is for the defects a kernel must accept (Linux writes
        // them too, e.g. a zero-size scratch entry).
        ensure!(
            seen.contains(&next)
                && matches!(
                    expect[next as usize],
                    Expect::Failed { .. } | Expect::Partial { .. } | Expect::Verified
                ),
            "fault {fault}: add an [[expect]] with generation = {next}, result = \"failed\" (or \"partial\", or \"verified\" for a defect to be accepted) and the reason it must report"
        );
    }
    let subtrees = match f.subtrees {
        None => None,
        Some(SubtreesFile::Count(n)) => Some(Subtrees::Count(n)),
        Some(SubtreesFile::Word(w)) if w == "max" => Some(Subtrees::Max),
        Some(SubtreesFile::Word(w)) => {
            bail!("subtrees = {w:?}: must be a number or \"max\"")
        }
    };
    let snapshot_generations = match f.snapshot_generations {
        None => (0..generations).collect(),
        Some(list) => {
            ensure!(!list.is_empty(), "snapshot_generations is empty");
            for (i, g) in list.iter().enumerate() {
                ensure!(
                    *g < generations,
                    "snapshot_generations: generation {g} is past the last generation {}",
                    generations - 1
                );
                ensure!(
                    i == 0 || list[i - 1] < *g,
                    "snapshot_generations must be ascending without repeats"
                );
            }
            list
        }
    };

    let generation_timeout = f.generation_timeout.unwrap_or(DEFAULT_GENERATION_TIMEOUT);
    ensure!(
        generation_timeout > 0,
        "generation_timeout must be at least 1 second"
    );
    let run_timeout = f.run_timeout.unwrap_or_else(|| {
        DEFAULT_GENERATION_TIMEOUT
            + u64::from(generations) * generation_timeout
            + linux.as_ref().map_or(0, |l| l.timeout.as_secs())
    });
    ensure!(run_timeout > 0, "run_timeout must be at least 1 second");

    let abi = match f.abi {
        None => Vec::new(),
        Some(AbiFile::One(v)) => vec![v],
        Some(AbiFile::PerGeneration(list)) => {
            ensure!(
                !list.is_empty() && list.len() <= MAX_ABI_LIST,
                "abi: a list of 1 to {MAX_ABI_LIST} versions, one per generation"
            );
            ensure!(
                list.len() <= generations as usize,
                "abi lists {} versions for {generations} generations",
                list.len()
            );
            list
        }
    };
    for v in &abi {
        ensure!(
            kho_abi::AbiVersion::ALL
                .iter()
                .any(|a| a.compatible().strip_prefix("kho-") == Some(v.as_str())),
            "abi = {v:?}: must be \"v1\", \"v2\", \"v3\" or \"v4\""
        );
    }
    let refuse = f
        .refuse
        .map(|r| Reason::from_file(r, &f.arches))
        .transpose()
        .context("refuse")?;
    ensure!(
        refuse.is_none() || linux.is_none(),
        "refuse: the last generation fails before its kexec, so no [linux] peer can follow it"
    );
    let mut scenario = Scenario {
        name: name.to_owned(),
        description: f.description,
        arches: f.arches,
        memory: f.memory,
        memory_mib,
        numa_nodes: f.numa_nodes,
        cmdline: f.cmdline,
        generations,
        seed,
        fault,
        dump_at: None,
        subtrees,
        vmalloc_pages: f.vmalloc_pages,
        guest: f.guest,
        abi,
        snapshot_generations,
        expect,
        scratch,
        expect_lines,
        generation_timeout: Duration::from_secs(generation_timeout),
        run_timeout: Duration::from_secs(run_timeout),
        soak: false,
        refuse,
        linux,
    };
    super::dump::apply_override(&mut scenario, f.dump_at).context("dump_at")?;
    Ok(scenario)
}

/// `512M` / `1G` to MiB.
fn parse_memory(text: &str) -> Result<u64> {
    let (digits, scale) = match text.as_bytes().last() {
        Some(b'M') => (&text[..text.len() - 1], 1),
        Some(b'G') => (&text[..text.len() - 1], 1024),
        _ => bail!("memory {text:?} must be a number of MiB or GiB, such as \"512M\" or \"2G\""),
    };
    let n: u64 = digits.parse().ok().filter(|n| *n > 0).with_context(|| {
        format!("memory {text:?} must be a positive whole number followed by M or G")
    })?;
    n.checked_mul(scale)
        .with_context(|| format!("memory {text:?} is too large"))
}

/// The xtask owns `kho=` and `kho_stub.*`; quotes would break the protocol's
/// `cmdline="…"` field.
fn check_cmdline(cmdline: &str) -> Result<()> {
    ensure!(
        !cmdline.contains(['"', '\n', '\r']),
        "cmdline must not contain quotes or line breaks (the stub echoes it in cmdline=\"…\")"
    );
    for token in cmdline.split_whitespace() {
        ensure!(
            !(token == "kho" || token.starts_with("kho=") || token.starts_with("kho_stub.")),
            "cmdline sets `{token}`, which the xtask composes from generations, seed, fault, dump_at, subtrees, vmalloc_pages, guest and abi"
        );
    }
    Ok(())
}

fn parse_fault(text: &str) -> Result<Fault> {
    let (class, generation) = text.split_once('@').with_context(|| {
        format!("fault {text:?} must be CLASS@GENERATION, such as \"compatible@3\"")
    })?;
    ensure!(
        !class.is_empty()
            && class
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "fault class {class:?} must be letters, digits, `-` and `_`"
    );
    let generation = generation
        .parse()
        .with_context(|| format!("fault {text:?}: {generation:?} is not a generation number"))?;
    Ok(Fault {
        class: class.to_owned(),
        generation,
    })
}

impl Scenario {
    /// `test-vm --generations N`: run `n` generations instead of the file's
    /// count. Generations added expect what the file's last one does when
    /// it verifies (a verified revival); generations dropped may not carry
    /// an expectation, a fault or a dump. The run timeout grows to cover
    /// them at the scenario's per-generation timeout.
    pub(crate) fn override_generations(&mut self, n: u32) -> Result<()> {
        ensure!(n >= 1, "--generations must be at least 1");
        ensure!(
            self.linux.is_none(),
            "scenario {}: --generations does not apply to runs with the Linux peer",
            self.name
        );
        if let Some(f) = &self.fault {
            ensure!(
                f.generation + 1 < n,
                "scenario {}: its fault at generation {} needs at least {} generations",
                self.name,
                f.generation,
                f.generation + 2
            );
        }
        if let Some(d) = self.dump_at {
            ensure!(
                d + 1 < n,
                "scenario {}: its dump at generation {d} needs at least {} generations",
                self.name,
                d + 2
            );
        }
        ensure!(
            self.refuse.is_none(),
            "scenario {}: its last generation must refuse to hand over, so --generations cannot change which one that is",
            self.name
        );
        let kept = n as usize;
        if let Some(g) = self.expect[kept.min(self.expect.len())..]
            .iter()
            .position(|e| !matches!(e, Expect::Verified))
        {
            bail!(
                "scenario {}: generation {} has an expectation, so --generations must be above it",
                self.name,
                kept + g
            );
        }
        self.expect.resize(kept, Expect::Verified);
        self.scratch
            .resize(kept, Expect::Verified.default_scratch());
        self.generations = n;
        self.snapshot_generations.clear();
        let need = self.generation_timeout * n + Duration::from_secs(30);
        self.run_timeout = self.run_timeout.max(need);
        self.soak = true;
        Ok(())
    }

    /// The kernel command line: `kho=on kho_stub.generations=N kho_stub.seed=S
    /// [kho_stub.fault=CLASS@G] [kho_stub.pause_at=G] [kho_stub.subtrees=N]
    /// [kho_stub.vmalloc_pages=N] [kho_stub.next=linux kho_stub.kho_test=1]
    /// <cmdline> [extra]` (docs/HANDOVER.md).
    pub(crate) fn compose_cmdline(&self, extra: Option<&str>) -> String {
        let mut parts = vec![
            "kho=on".to_owned(),
            format!("kho_stub.generations={}", self.generations),
            format!("kho_stub.seed={:#x}", self.seed),
        ];
        if let Some(fault) = &self.fault {
            parts.push(format!("kho_stub.fault={fault}"));
        }
        if let Some(g) = self.dump_at {
            parts.push(format!("kho_stub.pause_at={g}"));
        }
        if let Some(n) = self.subtrees {
            parts.push(format!("kho_stub.subtrees={n}"));
        }
        if let Some(n) = self.vmalloc_pages {
            parts.push(format!("kho_stub.vmalloc_pages={n}"));
        }
        if let Some(guest) = &self.guest {
            parts.push(format!("kho_stub.guest={guest}"));
        }
        if !self.abi.is_empty() {
            parts.push(format!("kho_stub.abi={}", self.abi.join(",")));
        }
        if self.hands_to_linux() {
            // The last generation boots the peer (the stub's initrd), with
            // a kho_test subtree in lib/test_kho.c's format for it.
            parts.push("kho_stub.next=linux".to_owned());
            parts.push("kho_stub.kho_test=1".to_owned());
        }
        parts.extend(self.cmdline.split_whitespace().map(str::to_owned));
        if let Some(extra) = extra {
            parts.extend(extra.split_whitespace().map(str::to_owned));
        }
        parts.join(" ")
    }

    /// Whether the stub's last generation kexecs the Linux peer.
    pub(crate) fn hands_to_linux(&self) -> bool {
        self.linux
            .as_ref()
            .is_some_and(|l| matches!(l.flow, Flow::StubToLinux | Flow::LinuxRoundtrip))
    }

    /// Whether Linux is generation 0 and the stub starts at generation 1
    /// from Linux's handover (`linux-to-stub`).
    pub(crate) fn linux_first(&self) -> bool {
        self.linux
            .as_ref()
            .is_some_and(|l| matches!(l.flow, Flow::LinuxToStub | Flow::LinuxRoundtrip))
    }

    /// Whether the run is Linux alone (upstream's selftest, no stub).
    pub(crate) fn linux_only(&self) -> bool {
        self.linux
            .as_ref()
            .is_some_and(|l| l.flow == Flow::Selftest)
    }

    /// Whether this generation's outgoing handover is deliberately corrupted.
    #[cfg(test)]
    pub(crate) fn faulty_generation(&self, generation: u32) -> bool {
        self.fault
            .as_ref()
            .is_some_and(|f| f.generation == generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = r#"
description = "ten handovers"
arches = ["x86_64"]
memory = "512M"
cmdline = "kho_scratch=16M,64M,32M  reserve_mem=64K:4K:kho_log"
generations = 10
seed = 0x5eed
"#;

    const FAULT: &str = r#"
description = "bad compatible"
arches = ["x86_64"]
memory = "512M"
cmdline = "kho_scratch=16M,64M,32M"
generations = 6
seed = 7
fault = "compatible@3"
generation_timeout = 20
run_timeout = 100

[[expect]]
generation = 4
result = "failed"
reason = "*kho-v9*"
"#;

    fn err(name: &str, text: &str) -> String {
        format!("{:#}", parse(name, text).unwrap_err())
    }

    #[test]
    fn basic_defaults() {
        let s = parse("basic", BASIC).unwrap();
        assert_eq!(s.name, "basic");
        assert_eq!(s.memory_mib, 512);
        assert_eq!(s.numa_nodes, 0);
        assert_eq!(s.seed, 0x5eed);
        assert_eq!(s.fault, None);
        assert_eq!(s.expect.len(), 10);
        assert_eq!(s.expect[0], Expect::Cold);
        assert!(s.expect[1..].iter().all(|e| *e == Expect::Verified));
        assert_eq!(s.generation_timeout, Duration::from_secs(30));
        assert_eq!(s.run_timeout, Duration::from_secs(30 + 10 * 30));
    }

    #[test]
    fn fault_scenario() {
        let s = parse("fault-compatible", FAULT).unwrap();
        assert_eq!(
            s.fault,
            Some(Fault {
                class: "compatible".into(),
                generation: 3
            })
        );
        assert_eq!(
            s.expect[4],
            Expect::Failed {
                reason: Reason::One("*kho-v9*".into())
            }
        );
        assert_eq!(s.expect[5], Expect::Verified);
        assert!(s.faulty_generation(3) && !s.faulty_generation(4));
        assert_eq!(s.run_timeout, Duration::from_secs(100));
        assert_eq!(s.generation_timeout, Duration::from_secs(20));
    }

    #[test]
    fn composed_cmdline() {
        let s = parse("basic", BASIC).unwrap();
        assert_eq!(
            s.compose_cmdline(None),
            "kho=on kho_stub.generations=10 kho_stub.seed=0x5eed kho_scratch=16M,64M,32M reserve_mem=64K:4K:kho_log"
        );
        assert!(
            s.compose_cmdline(Some(" loglevel=8  x "))
                .ends_with("kho_log loglevel=8 x")
        );
        let f = parse("f", FAULT).unwrap();
        assert_eq!(
            f.compose_cmdline(None),
            "kho=on kho_stub.generations=6 kho_stub.seed=0x7 kho_stub.fault=compatible@3 kho_scratch=16M,64M,32M"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_key_named() {
        let e = err("basic", &format!("{BASIC}memroy = \"1G\"\n"));
        assert!(e.contains("unknown field `memroy`"), "{e}");
        let e = err("f", &FAULT.replace("reason = ", "reasons = "));
        assert!(e.contains("unknown field `reasons`"), "{e}");
    }

    #[test]
    fn linux_scenarios() {
        let selftest = "description = \"l\"\narches = [\"x86_64\"]\nmemory = \"1G\"\n[linux]\nflow = \"selftest\"\nexpect = [\"KHO restore succeeded\"]\ntimeout = 100\n";
        let s = parse("l", selftest).unwrap();
        assert!(s.linux_only() && !s.hands_to_linux());
        assert_eq!(s.generations, 0);
        assert_eq!(s.run_timeout, Duration::from_secs(130));
        let e = err("l", &format!("generations = 2\nseed = 1\n{selftest}"));
        assert!(e.contains("runs no kho-stub generation"), "{e}");
        let e = err(
            "l",
            &format!("cmdline = \"reserve_mem=64K:4K:x\"\n{selftest}"),
        );
        assert!(e.contains("boots only Linux"), "{e}");
        let stub = format!(
            "{}[linux]\nflow = \"stub-to-linux\"\nexpect = [\"x\"]\nsubtrees = [\"kho_test\"]\n",
            BASIC
        );
        let s = parse("basic", &stub).unwrap();
        assert!(s.hands_to_linux() && !s.linux_only());
        assert!(
            s.compose_cmdline(None)
                .contains(" kho_stub.next=linux kho_stub.kho_test=1 ")
        );
        let e = err("basic", &stub.replace("subtrees = [\"kho_test\"]\n", ""));
        assert!(e.contains("needs subtrees"), "{e}");
    }

    #[test]
    fn missing_and_mistyped_keys() {
        let e = err("basic", &BASIC.replace("generations = 10\n", ""));
        assert!(e.contains("missing field `generations`"), "{e}");
        let e = err(
            "basic",
            &BASIC.replace("generations = 10", "generations = \"10\""),
        );
        assert!(
            e.contains("generations") || e.contains("invalid type"),
            "{e}"
        );
        let e = err("f", &FAULT.replace("\"failed\"", "\"broken\""));
        assert!(e.contains("broken"), "{e}");
    }

    #[test]
    fn memory_and_numa() {
        assert_eq!(parse_memory("2G").unwrap(), 2048);
        for bad in ["512", "512K", "M", "0M", "-1G", "1.5G"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        let s = parse("n", &format!("{BASIC}numa_nodes = 2\n")).unwrap();
        assert_eq!(s.numa_nodes, 2);
        let e = err("n", &format!("{BASIC}numa_nodes = 3\n"));
        assert!(e.contains("split evenly over 3 NUMA nodes"), "{e}");
    }

    /// A defect the next kernel must accept (a zero-size scratch entry) is
    /// expected as "verified", explicitly.
    #[test]
    fn a_fault_may_expect_verified() {
        let text = FAULT.replace(
            "result = \"failed\"\nreason = \"*kho-v9*\"",
            "result = \"verified\"",
        );
        let s = parse("f", &text).unwrap();
        assert_eq!(s.expect[4], Expect::Verified);
    }

    #[test]
    fn validation_errors() {
        let cases = [
            (
                BASIC.replace("generations = 10", "generations = 0"),
                "at least 1",
            ),
            (
                BASIC.replace("[\"x86_64\"]", "[\"riscv\"]"),
                "unknown arch `riscv`",
            ),
            (BASIC.replace("[\"x86_64\"]", "[]"), "arches is empty"),
            (
                BASIC.replace("[\"x86_64\"]", "[\"x86_64\", \"x86_64\"]"),
                "listed twice",
            ),
            (
                BASIC.replace("kho_scratch", "kho=off kho_scratch"),
                "`kho=off`",
            ),
            (
                BASIC.replace("kho_scratch", "kho_stub.gen=3 kho_scratch"),
                "`kho_stub.gen=3`",
            ),
            (BASIC.replace("kho_log", "kho_log\\\"x"), "quotes"),
            (
                FAULT.replace("compatible@3", "compatible"),
                "CLASS@GENERATION",
            ),
            (
                FAULT.replace("compatible@3", "compatible@x"),
                "not a generation number",
            ),
            (
                FAULT.replace("compatible@3", "compatible@5"),
                "needs generation 6",
            ),
            (
                FAULT.replace("generation = 4", "generation = 2"),
                "add an [[expect]] with generation = 4",
            ),
            (FAULT.replace("reason = \"*kho-v9*\"", ""), "need a reason"),
            (
                FAULT.replace("generation = 4", "generation = 9"),
                "past the last generation 5",
            ),
            (
                format!("{BASIC}[[expect]]\ngeneration = 0\nresult = \"verified\"\n"),
                "generation 0 boots cold",
            ),
            (
                format!(
                    "{BASIC}[[expect]]\ngeneration = 2\nresult = \"verified\"\nreason = \"x\"\n"
                ),
                "reason is only for",
            ),
            (
                format!(
                    "{BASIC}[[expect]]\ngeneration = 2\nresult = \"cold\"\n[[expect]]\ngeneration = 2\nresult = \"cold\"\n"
                ),
                "given twice",
            ),
            (
                format!("{BASIC}generation_timeout = 0\n"),
                "generation_timeout",
            ),
        ];
        for (text, want) in cases {
            let e = err("s", &text);
            assert!(e.contains(want), "want {want:?} in: {e}");
        }
        assert!(err("Bad Name", BASIC).contains("lower-case"));
    }

    #[test]
    fn abi_is_passed_to_the_stub() {
        assert!(parse("b", BASIC).unwrap().abi.is_empty());
        let s = parse("a", &format!("{BASIC}abi = \"v2\"\n")).unwrap();
        assert_eq!(s.abi, ["v2"]);
        assert_eq!(
            s.compose_cmdline(None),
            "kho=on kho_stub.generations=10 kho_stub.seed=0x5eed kho_stub.abi=v2 kho_scratch=16M,64M,32M reserve_mem=64K:4K:kho_log"
        );
        let s = parse(
            "a",
            &format!("{BASIC}abi = [\"v1\", \"v2\", \"v3\", \"v4\"]\n"),
        )
        .unwrap();
        assert_eq!(s.abi, ["v1", "v2", "v3", "v4"]);
        assert!(
            s.compose_cmdline(None)
                .contains(" kho_stub.abi=v1,v2,v3,v4 ")
        );
        for bad in ["v5", "kho-v4", "4", ""] {
            let e = err("a", &format!("{BASIC}abi = \"{bad}\"\n"));
            assert!(
                e.contains("must be \"v1\", \"v2\", \"v3\" or \"v4\""),
                "{e}"
            );
            let e = err("a", &format!("{BASIC}abi = [\"v1\", \"{bad}\"]\n"));
            assert!(
                e.contains("must be \"v1\", \"v2\", \"v3\" or \"v4\""),
                "{e}"
            );
        }
        let e = err("a", &format!("{BASIC}abi = []\n"));
        assert!(e.contains("a list of 1 to 64"), "{e}");
        let eleven = ["\"v1\""; 11].join(", ");
        let e = err("a", &format!("{BASIC}abi = [{eleven}]\n"));
        assert!(
            e.contains("abi lists 11 versions for 10 generations"),
            "{e}"
        );
    }

    #[test]
    fn knobs_partial_and_per_arch_reasons() {
        let text = format!(
            "{}subtrees = \"max\"\nvmalloc_pages = 5000\nsnapshot_generations = [0, 1, 9]\n",
            BASIC.replace("[\"x86_64\"]", "[\"x86_64\", \"aarch64\"]")
        );
        let s = parse("k", &text).unwrap();
        assert_eq!(s.subtrees, Some(Subtrees::Max));
        assert_eq!(s.vmalloc_pages, Some(5000));
        assert_eq!(s.snapshot_generations, [0, 1, 9]);
        assert_eq!(
            s.compose_cmdline(None),
            "kho=on kho_stub.generations=10 kho_stub.seed=0x5eed kho_stub.subtrees=max kho_stub.vmalloc_pages=5000 kho_scratch=16M,64M,32M reserve_mem=64K:4K:kho_log"
        );
        let s = parse("k", &format!("{BASIC}subtrees = 7\n")).unwrap();
        assert_eq!(s.subtrees, Some(Subtrees::Count(7)));
        assert_eq!(parse("b", BASIC).unwrap().snapshot_generations.len(), 10);

        let partial = format!(
            "{BASIC}fault = \"vmalloc-cycle@1\"\n[[expect]]\ngeneration = 2\nresult = \"partial\"\nreason = \"vmalloc: *\"\n"
        );
        let s = parse("p", &partial).unwrap();
        assert_eq!(
            s.expect[2],
            Expect::Partial {
                reason: Reason::One("vmalloc: *".into()),
                leaked: Leaked::Some,
            }
        );
        assert_eq!(s.scratch[2], ScratchExpect::Inherited);
        assert_eq!(s.scratch[0], ScratchExpect::Fresh);
        let none = parse("p", &format!("{partial}leaked = \"none\"\n")).unwrap();
        assert!(matches!(
            none.expect[2],
            Expect::Partial {
                leaked: Leaked::None,
                ..
            }
        ));
        let leaked_err = parse(
            "p",
            &format!(
                "{BASIC}[[expect]]\ngeneration = 2\nresult = \"verified\"\nleaked = \"none\"\n"
            ),
        )
        .unwrap_err();
        assert!(format!("{leaked_err:#}").contains("leaked is only for result \"partial\""));

        let per_arch = format!(
            "{}fault = \"handoff-length@1\"\n[[expect]]\ngeneration = 2\nresult = \"failed\"\nreason = {{ x86_64 = \"setup_data*\", aarch64 = \"/chosen*\" }}\nscratch = \"any\"\n",
            BASIC.replace("[\"x86_64\"]", "[\"x86_64\", \"aarch64\"]")
        );
        let s = parse("h", &per_arch).unwrap();
        let Expect::Failed { reason } = &s.expect[2] else {
            panic!("{:?}", s.expect[2]);
        };
        assert_eq!(reason.pattern("aarch64"), Some("/chosen*"));
        assert_eq!(s.scratch[2], ScratchExpect::Any);
        assert_eq!(s.scratch[1], ScratchExpect::Inherited);
        assert_eq!(s.scratch[3], ScratchExpect::Inherited);
        // Only x86_64 is listed: an aarch64 reason is an error.
        let e = err(
            "h",
            &per_arch.replace("[\"x86_64\", \"aarch64\"]", "[\"x86_64\"]"),
        );
        assert!(e.contains("scenario's arches do not list"), "{e}");
    }

    #[test]
    fn knob_and_expectation_errors() {
        let cases = [
            (
                format!("{BASIC}subtrees = \"all\"\n"),
                "must be a number or \"max\"",
            ),
            (format!("{BASIC}subtrees = -1\n"), "number of subtrees"),
            (
                format!("{BASIC}snapshot_generations = []\n"),
                "snapshot_generations is empty",
            ),
            (
                format!("{BASIC}snapshot_generations = [3, 3]\n"),
                "ascending",
            ),
            (
                format!("{BASIC}snapshot_generations = [10]\n"),
                "past the last generation 9",
            ),
            (
                format!("{BASIC}[[expect]]\ngeneration = 2\nresult = \"partial\"\n"),
                "need a reason",
            ),
            (
                format!("{BASIC}[[expect]]\ngeneration = 2\nresult = \"failed\"\nreason = \"*\"\n"),
                "more than `*`",
            ),
            (
                format!(
                    "{BASIC}[[expect]]\ngeneration = 0\nresult = \"cold\"\nscratch = \"inherited\"\n"
                ),
                "nothing precedes generation 0",
            ),
            (
                format!(
                    "{BASIC}[[expect]]\ngeneration = 2\nresult = \"cold\"\nscratch = \"old\"\n"
                ),
                "old",
            ),
            (
                BASIC.replace("16M,64M,32M", "16M,64M"),
                "want N% or three sizes",
            ),
            (
                BASIC.replace("kho_scratch", "kho_stub.subtrees=3 kho_scratch"),
                "`kho_stub.subtrees=3`",
            ),
        ];
        for (text, want) in cases {
            let e = err("s", &text);
            assert!(e.contains(want), "want {want:?} in: {e}");
        }
    }

    #[test]
    fn the_committed_scenarios_load() {
        let dir = crate::util::project_root().join("vm-images");
        let all = load_dir(&dir).unwrap();
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        for name in [
            "basic",
            "numa2",
            "numa4",
            "scratch-percent",
            "scratch-explicit",
            "long",
            "vmalloc-large",
            "many-subtrees",
        ] {
            assert!(names.contains(&name), "no vm-images/{name}.toml: {names:?}");
        }
        // One scenario per fault class of docs/HANDOVER.md, each injecting
        // its class and expecting the next generation to report it.
        for class in [
            "bad-magic",
            "truncated",
            "compatible",
            "memory-map-missing",
            "memory-map-4-bytes",
            "memory-map-zero",
            "memory-map-outside-ram",
            "subtree-data-zero",
            "radix-outside-ram",
            "radix-cycle",
            "v1-chunk-cycle",
            "v1-chunk-outside-ram",
            "radix-full-leaf",
            "radix-overlap",
            "radix-misaligned-entry",
            "radix-shared-node",
            "vmalloc-cycle",
            "vmalloc-block-outside-ram",
            "vmalloc-block-misaligned",
            "vmalloc-count-mismatch",
            "scratch-overlaps-preserved",
            "scratch-outside-ram",
            "scratch-misaligned",
            "scratch-overlapping",
            "handoff-length",
            "heap-in-revival",
        ] {
            let s = all
                .iter()
                .find(|s| s.name == format!("fault-{class}"))
                .unwrap_or_else(|| panic!("no vm-images/fault-{class}.toml"));
            let fault = s.fault.as_ref().unwrap();
            assert_eq!(fault.class, class);
            let next = &s.expect[fault.generation as usize + 1];
            assert!(
                matches!(next, Expect::Failed { .. } | Expect::Partial { .. }),
                "fault-{class}: {next}"
            );
            assert!(s.arches.len() == 2, "fault-{class} runs on both arches");
        }
    }

    #[test]
    fn generations_can_be_overridden_for_a_soak() {
        let all = load_dir(&crate::util::project_root().join("vm-images")).unwrap();
        let mut long = all.iter().find(|s| s.name == "long").unwrap().clone();
        long.override_generations(1000).unwrap();
        assert_eq!(
            (long.generations, long.expect.len(), long.scratch.len()),
            (1000, 1000, 1000)
        );
        assert!(long.soak && long.snapshot_generations.is_empty());
        assert!(long.run_timeout >= long.generation_timeout * 1000);
        assert!(
            long.compose_cmdline(None)
                .contains("kho_stub.generations=1000")
        );
        // A fault scenario keeps its fault and the expectation after it.
        let fault = all.iter().find(|s| s.name == "fault-bad-magic").unwrap();
        let mut more = fault.clone();
        more.override_generations(10).unwrap();
        assert_eq!(more.expect[2], fault.expect[2]);
        let mut fewer = fault.clone();
        let e = fewer.override_generations(2).unwrap_err().to_string();
        assert!(e.contains("needs at least 3 generations"), "{e}");
        let linux = all.iter().find(|s| s.name == "stub-to-linux").unwrap();
        assert!(linux.clone().override_generations(5).is_err());
    }
}
