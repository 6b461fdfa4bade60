//! `cargo xtask linux`: the Linux peer kernel, built once per machine and cached.
//!
//! The peer is Linux from Debian's `linux-source-7.2` package, configured
//! with the fragment upstream's own KHO selftest uses
//! (`tools/testing/selftests/kho/vmtest.sh`, kept in
//! `vm-images/linux/kho-*.config`) on top of an otherwise default
//! `olddefconfig`. Steps, each skipped when its result is already there:
//!
//! 1. the package: `apt-get download` through a private apt configuration
//!    (sources list, lists and package cache under the cache directory; the
//!    system's apt sources are never touched);
//! 2. the source: the package's tarball, extracted once per version;
//! 3. the kernel: an out-of-tree build per (version, arch), kept for
//!    incremental rebuilds;
//! 4. the entry: the kernel image, its `.config`, the two initramfs images
//!    (upstream's selftest `init` with the kernel itself as `/kernel`, and
//!    kho-rs's `kho-peer-init`), both built with the source's nolibc, and a
//!    manifest with the SHA-256 of each file.
//!
//! An entry lives at `<cache>/linux/<version>-<arch>-<key>/` where `<key>`
//! hashes everything that decides its content (package version, arch,
//! config fragments, the peer init's source, the compiler). It is written
//! under a temporary name and renamed when complete, so a half-written
//! entry is never used; on reuse every file's hash is checked against the
//! manifest, and a mismatch rebuilds the entry.

use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::util;
use crate::vm::arch::ArchSpec;

/// The Debian source package the peer is built from.
const PACKAGE: &str = "linux-source-7.2";
/// The suites of Debian's registry that carry [`PACKAGE`], in the order
/// tried (sid has it now; trixie-backports keeps 7.2.x after sid moves on).
const SUITES: [&str; 2] = ["sid", "trixie-backports"];
/// Debian's registry, as the system's own apt sources name it.
const DEBIAN_URI: &str = "http://deb.debian.org/debian";
/// The fragment every arch shares (upstream's vmtest.sh lines).
const COMMON_FRAGMENT: &str = include_str!("../../vm-images/linux/kho-common.config");
/// kho-rs's own init for the peer's initramfs.
const PEER_INIT: &str = include_str!("../../vm-images/linux/kho-peer-init.c");
/// Bump when the entry layout or the build recipe below changes.
const RECIPE: &str = "kho-rs linux peer recipe 1";
/// The manifest inside a finished entry.
const MANIFEST: &str = "manifest.txt";
/// Every file of a finished entry, each with its hash in the manifest.
const ENTRY_FILES: [&str; 7] = [
    "kernel",
    "config",
    "gen_init_cpio",
    "selftest-init",
    "kho-peer-init",
    "initramfs-selftest.cpio",
    "initramfs-peer.cpio",
];
/// Marks a fully extracted source tree.
const SOURCE_STAMP: &str = ".kho-rs-extracted";

/// How to build the peer for one architecture.
#[derive(Debug)]
pub(crate) struct PeerArch {
    /// The xtask's arch name (`x86_64`, `aarch64`).
    pub(crate) name: &'static str,
    /// Kbuild's `ARCH=`.
    make_arch: &'static str,
    /// `CROSS_COMPILE=` when the host is not this arch.
    cross: Option<(&'static str, &'static str)>,
    /// The image target and where the build leaves it.
    image_target: &'static str,
    image_path: &'static str,
    /// The arch's own config lines.
    fragment: &'static str,
    /// Linux's console on this machine.
    pub(crate) console: &'static str,
}

/// The arches the peer is built for.
pub(crate) const PEER_ARCHES: &[PeerArch] = &[
    PeerArch {
        name: "x86_64",
        make_arch: "x86_64",
        cross: None,
        image_target: "bzImage",
        image_path: "arch/x86/boot/bzImage",
        fragment: include_str!("../../vm-images/linux/kho-x86_64.config"),
        console: "ttyS0",
    },
    PeerArch {
        name: "aarch64",
        make_arch: "arm64",
        cross: Some(("aarch64-linux-gnu-", "gcc-aarch64-linux-gnu")),
        image_target: "Image",
        image_path: "arch/arm64/boot/Image",
        fragment: include_str!("../../vm-images/linux/kho-aarch64.config"),
        console: "ttyAMA0",
    },
];

impl PeerArch {
    /// The peer recipe for the xtask arch `arch`.
    pub(crate) fn of(arch: &ArchSpec) -> Result<&'static PeerArch> {
        PEER_ARCHES
            .iter()
            .find(|p| p.name == arch.name)
            .with_context(|| format!("no Linux peer recipe for {}", arch.name))
    }

    /// The compiler prefix for this arch on this host.
    fn prefix(&self) -> &'static str {
        match self.cross {
            Some((prefix, _)) if std::env::consts::ARCH != self.name => prefix,
            _ => "",
        }
    }

    /// Every config line the build must keep, in order.
    fn fragment_lines(&self) -> Vec<&'static str> {
        COMMON_FRAGMENT
            .lines()
            .chain(self.fragment.lines())
            .map(str::trim)
            .filter(|l| l.starts_with("CONFIG_"))
            .collect()
    }
}

/// A finished, verified cache entry.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// The Debian package version the source came from (e.g. `7.2.13-1`).
    pub(crate) package_version: String,
    /// The kernel release (`uname -r`, e.g. `7.2.13`).
    pub(crate) release: String,
    /// The entry directory.
    pub(crate) dir: PathBuf,
    /// bzImage / Image.
    pub(crate) kernel: PathBuf,
    /// Upstream selftest initramfs: its `init` kexecs `/kernel` (this kernel).
    pub(crate) selftest_initramfs: PathBuf,
    /// kho-rs's peer initramfs: `kho-peer-init` reports `kho/in` and reboots
    /// (or kexecs `/next/kernel`).
    pub(crate) peer_initramfs: PathBuf,
}

/// `cargo xtask linux`.
pub(crate) fn run(arches: &[&'static ArchSpec], jobs: Option<usize>) -> Result<()> {
    let arches: Vec<&'static ArchSpec> = if arches.is_empty() {
        PEER_ARCHES
            .iter()
            .filter_map(|p| ArchSpec::find(p.name))
            .collect()
    } else {
        arches.to_vec()
    };
    for arch in arches {
        let started = Instant::now();
        let peer = ensure(arch, jobs)?;
        println!(
            "linux {} (Debian {PACKAGE} {}) for {}: {} ({:.1} s)",
            peer.release,
            peer.package_version,
            arch.name,
            peer.dir.display(),
            started.elapsed().as_secs_f64()
        );
        println!("  kernel:             {}", peer.kernel.display());
        println!(
            "  selftest initramfs: {}",
            peer.selftest_initramfs.display()
        );
        println!("  peer initramfs:     {}", peer.peer_initramfs.display());
    }
    Ok(())
}

/// The cache root: `$KHO_RS_CACHE`, else `$XDG_CACHE_HOME/kho-rs`, else
/// `~/.cache/kho-rs`. Outside the checkout, so every checkout (and CI on the
/// same machine) shares one build.
pub(crate) fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KHO_RS_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("kho-rs"));
    }
    let home = std::env::var_os("HOME")
        .context("cannot find a cache directory: set KHO_RS_CACHE (or HOME)")?;
    Ok(PathBuf::from(home).join(".cache/kho-rs"))
}

/// The peer for `arch`: reused from the cache when a verified entry exists,
/// built otherwise.
pub(crate) fn ensure(arch: &ArchSpec, jobs: Option<usize>) -> Result<Peer> {
    let recipe = PeerArch::of(arch)?;
    let root = cache_root()?.join("linux");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    // One xtask at a time works on the cache (two makes in one build
    // directory corrupt it); the lock ends with the process.
    let lock = fs::File::create(root.join(".lock"))?;
    if lock.try_lock().is_err() {
        println!(
            "linux: waiting for another `cargo xtask` using {}",
            root.display()
        );
        lock.lock().context("locking the Linux peer cache")?;
    }
    let sh = util::shell()?;
    ensure_build_tools(&sh, recipe)?;
    let deb = package(&sh, &root)?;
    let version = deb_version(&deb)?;
    let compiler = compiler_version(&sh, recipe)?;
    let key = entry_key(&version, recipe, &compiler);
    let entry = root.join(format!(
        "{}-{}-{key}",
        upstream_version(&version),
        arch.name
    ));
    tracing::debug!(arch = arch.name, package = %version, compiler = %compiler, entry = %entry.display(), "Linux peer cache key");
    if entry.exists() {
        match verify_entry(&entry) {
            Ok(peer) => {
                tracing::debug!(release = %peer.release, "Linux peer cache hit, every file matches its hash");
                return Ok(peer);
            }
            Err(e) => {
                println!(
                    "linux: cache entry {} is not usable ({e:#}); rebuilding it",
                    entry.display()
                );
                fs::remove_dir_all(&entry)
                    .with_context(|| format!("removing {}", entry.display()))?;
            }
        }
    }
    let src = source(&sh, &root, &deb, &version)?;
    let started = Instant::now();
    let work = root
        .join("work")
        .join(format!("{}-{}", upstream_version(&version), arch.name));
    build_kernel(recipe, &src, &work, jobs)?;
    let build_secs = started.elapsed().as_secs_f64();
    // Leftovers of interrupted runs are never reused: with the cache lock
    // held, every temporary entry is one.
    for old in fs::read_dir(&root)?.filter_map(|e| e.ok()) {
        if old.file_name().to_string_lossy().starts_with(".tmp-") {
            fs::remove_dir_all(old.path())?;
        }
    }
    let tmp = root.join(format!(".tmp-{}-{key}-{}", arch.name, std::process::id()));
    fs::create_dir_all(&tmp)?;
    assemble_entry(&sh, recipe, &src, &work, &tmp, &version, build_secs)
        .with_context(|| format!("assembling the cache entry in {}", tmp.display()))?;
    fs::rename(&tmp, &entry)
        .with_context(|| format!("moving {} to {}", tmp.display(), entry.display()))?;
    println!(
        "linux: built {} for {} in {:.0} s; cached at {}",
        upstream_version(&version),
        arch.name,
        build_secs,
        entry.display()
    );
    verify_entry(&entry)
}

/// Install the host tools the kernel build needs (root on Debian), or name
/// the package to install.
fn ensure_build_tools(sh: &Shell, recipe: &PeerArch) -> Result<()> {
    for (program, package) in [
        ("make", "make"),
        ("gcc", "gcc"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("cpio", "cpio"),
        ("xz", "xz-utils"),
        ("dpkg-deb", "dpkg"),
        ("perl", "perl"),
    ] {
        util::ensure_tool(sh, program, package)?;
    }
    for (header, package) in [
        ("/usr/include/gelf.h", "libelf-dev"),
        ("/usr/include/openssl/ssl.h", "libssl-dev"),
    ] {
        if !Path::new(header).exists() {
            util::install_package(sh, package, &format!("{header} is missing"))?;
        }
    }
    if let (prefix @ "aarch64-linux-gnu-", Some((_, package))) = (recipe.prefix(), recipe.cross) {
        util::ensure_tool(sh, &format!("{prefix}gcc"), package)?;
    }
    Ok(())
}

/// The downloaded package: the newest `.deb` already in the cache, or a
/// fresh `apt-get download` through the private apt configuration, from
/// the first of [`SUITES`] that has it.
fn package(sh: &Shell, root: &Path) -> Result<PathBuf> {
    let dl = root.join("dl");
    if let Some(deb) = newest_deb(&dl)? {
        return Ok(deb);
    }
    ensure!(
        util::have("apt-get"),
        "apt-get is missing: download Debian's `{PACKAGE}` package by hand into {}",
        dl.display()
    );
    fs::create_dir_all(&dl)?;
    let mut tried = Vec::new();
    for suite in SUITES {
        match download(sh, root, &dl, suite) {
            Ok(()) => {
                if let Some(deb) = newest_deb(&dl)? {
                    return Ok(deb);
                }
                tried.push(format!(
                    "{suite}: apt-get left no package in {}",
                    dl.display()
                ));
            }
            Err(e) => tried.push(format!("{suite}: {e:#}")),
        }
    }
    bail!(
        "cannot download Debian's `{PACKAGE}` ({}); check that Debian's registry is reachable, then rerun `cargo xtask linux`",
        tried.join("; ")
    )
}

/// `apt-get update` and `apt-get download` of [`PACKAGE`] from `suite`,
/// with lists, cache and sources of our own.
fn download(sh: &Shell, root: &Path, dl: &Path, suite: &str) -> Result<()> {
    let apt = root.join("apt").join(suite);
    for d in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(apt.join(d))?;
    }
    let list = apt.join("sources.list");
    fs::write(
        &list,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {DEBIAN_URI} {suite} main\n"
        ),
    )?;
    let opts = [
        format!("-o=Dir::Etc::SourceList={}", list.display()),
        "-o=Dir::Etc::SourceParts=/dev/null".to_owned(),
        format!("-o=Dir::State::Lists={}", apt.join("lists").display()),
        format!("-o=Dir::Cache={}", apt.join("cache").display()),
        "-o=APT::Sandbox::User=root".to_owned(),
        "-qq".to_owned(),
    ];
    let opts = &opts;
    println!("linux: fetching the package list of Debian {suite} (private apt configuration)");
    cmd!(sh, "apt-get {opts...} update")
        .run()
        .with_context(|| format!("reading Debian {suite}'s package list"))?;
    println!("linux: downloading {PACKAGE} from {suite}");
    let _dir = sh.push_dir(dl);
    cmd!(sh, "apt-get {opts...} download {PACKAGE}")
        .run()
        .with_context(|| format!("downloading `{PACKAGE}` from Debian {suite}"))?;
    Ok(())
}

fn newest_deb(dl: &Path) -> Result<Option<PathBuf>> {
    let Ok(entries) = fs::read_dir(dl) else {
        return Ok(None);
    };
    let mut debs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{PACKAGE}_")) && n.ends_with("_all.deb"))
        })
        .collect();
    debs.sort();
    Ok(debs.pop())
}

/// `linux-source-7.2_7.2.13-1_all.deb` → `7.2.13-1`.
fn deb_version(deb: &Path) -> Result<String> {
    let name = deb
        .file_name()
        .and_then(|n| n.to_str())
        .context("package path has no file name")?;
    let version = name
        .strip_prefix(&format!("{PACKAGE}_"))
        .and_then(|r| r.strip_suffix("_all.deb"))
        .with_context(|| format!("unexpected package file name {name}"))?;
    ensure!(
        !version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-+~".contains(c)),
        "unexpected package version `{version}` in {name}"
    );
    Ok(version.to_owned())
}

/// `7.2.13-1` → `7.2.13` (the kernel's own version).
fn upstream_version(package_version: &str) -> &str {
    package_version
        .split_once('-')
        .map_or(package_version, |(v, _)| v)
}

fn compiler_version(sh: &Shell, recipe: &PeerArch) -> Result<String> {
    let gcc = format!("{}gcc", recipe.prefix());
    let out = cmd!(sh, "{gcc} --version")
        .quiet()
        .read()
        .with_context(|| format!("running {gcc} --version"))?;
    Ok(out.lines().next().unwrap_or_default().to_owned())
}

/// The hex key of everything that decides an entry's content.
fn entry_key(version: &str, recipe: &PeerArch, compiler: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        RECIPE,
        version,
        recipe.name,
        COMMON_FRAGMENT,
        recipe.fragment,
        PEER_INIT,
        compiler,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// The extracted source tree of `version`, extracting it on first use.
fn source(sh: &Shell, root: &Path, deb: &Path, version: &str) -> Result<PathBuf> {
    let dir = root.join("src").join(upstream_version(version));
    if dir.join(SOURCE_STAMP).is_file() {
        return Ok(dir);
    }
    if dir.exists() {
        println!("linux: {} is incomplete; extracting again", dir.display());
        fs::remove_dir_all(&dir)?;
    }
    let tmp = root
        .join("src")
        .join(format!(".tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(tmp.join("deb"))?;
    println!("linux: extracting {}", deb.display());
    let debdir = tmp.join("deb");
    cmd!(sh, "dpkg-deb -x {deb} {debdir}")
        .run()
        .with_context(|| {
            format!(
                "{} is not a readable package; delete it and rerun",
                deb.display()
            )
        })?;
    let tarball = debdir.join(format!("usr/src/{PACKAGE}.tar.xz"));
    ensure!(
        tarball.is_file(),
        "{} has no usr/src/{PACKAGE}.tar.xz",
        deb.display()
    );
    let tree = tmp.join("tree");
    fs::create_dir_all(&tree)?;
    cmd!(sh, "tar -C {tree} -xJf {tarball}")
        .run()
        .context("extracting the Linux source tarball")?;
    let top = tree.join(PACKAGE);
    ensure!(
        top.join("Makefile").is_file(),
        "the tarball has no {PACKAGE}/Makefile"
    );
    fs::write(top.join(SOURCE_STAMP), format!("{version}\n"))?;
    fs::create_dir_all(root.join("src"))?;
    fs::rename(&top, &dir)?;
    fs::remove_dir_all(&tmp)?;
    Ok(dir)
}

/// Configure (fragment + olddefconfig, every fragment line checked) and
/// build the image in `work`, with the output in `work/build.log` and a
/// progress line every 30 seconds.
fn build_kernel(recipe: &PeerArch, src: &Path, work: &Path, jobs: Option<usize>) -> Result<()> {
    fs::create_dir_all(work)?;
    let mut config = String::new();
    for line in recipe.fragment_lines() {
        config.push_str(line);
        config.push('\n');
    }
    fs::write(work.join(".config"), &config)?;
    let jobs =
        jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() + 1));
    let log = work.join("build.log");
    make(recipe, src, work, &["olddefconfig"], &log, "configure")?;
    let written = fs::read_to_string(work.join(".config"))?;
    for line in recipe.fragment_lines() {
        ensure!(
            written.lines().any(|l| l.trim() == line),
            "the Linux config lost `{line}` after olddefconfig (a dependency is missing); see {}",
            work.join(".config").display()
        );
    }
    println!(
        "linux: building {} for {} with {jobs} jobs (log: {}); a first build takes 10–20 minutes on two cores",
        recipe.image_target,
        recipe.name,
        log.display()
    );
    make(
        recipe,
        src,
        work,
        &[&format!("-j{jobs}"), recipe.image_target],
        &log,
        "build",
    )?;
    // The initramfs tool: built with the kernel when it has an initramfs
    // source, otherwise on request.
    if !work.join("usr/gen_init_cpio").is_file() {
        make(
            recipe,
            src,
            work,
            &["usr/gen_init_cpio"],
            &log,
            "gen_init_cpio",
        )?;
    }
    Ok(())
}

/// Run make in the build directory, appending to `log`; on failure show
/// the log's tail.
fn make(
    recipe: &PeerArch,
    src: &Path,
    work: &Path,
    targets: &[&str],
    log: &Path,
    what: &str,
) -> Result<()> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let mut command = Command::new("make");
    command
        .arg("-C")
        .arg(src)
        .arg(format!("O={}", work.display()))
        .arg(format!("ARCH={}", recipe.make_arch))
        .args(targets)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if !recipe.prefix().is_empty() {
        command.arg(format!("CROSS_COMPILE={}", recipe.prefix()));
    }
    let started = Instant::now();
    let mut child = command.spawn().context("starting make (install `make`)")?;
    let mut last_report = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(250));
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            let objects = fs::read_to_string(log)
                .map(|t| {
                    t.lines()
                        .filter(|l| l.trim_start().starts_with("CC"))
                        .count()
                })
                .unwrap_or(0);
            println!(
                "linux: {what} for {}: {:.0} s, {objects} files compiled so far",
                recipe.name,
                started.elapsed().as_secs_f64()
            );
        }
    };
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("  | {line}");
        }
        bail!(
            "the Linux {what} for {} failed ({status}); full log: {}",
            recipe.name,
            log.display()
        );
    }
    Ok(())
}

/// Fill `tmp` with the entry's files and manifest.
fn assemble_entry(
    sh: &Shell,
    recipe: &PeerArch,
    src: &Path,
    work: &Path,
    tmp: &Path,
    version: &str,
    build_secs: f64,
) -> Result<()> {
    let image = work.join(recipe.image_path);
    ensure!(image.is_file(), "the build left no {}", image.display());
    fs::copy(&image, tmp.join("kernel"))?;
    fs::copy(work.join(".config"), tmp.join("config"))?;
    let release = fs::read_to_string(work.join("include/config/kernel.release"))
        .context("the build left no include/config/kernel.release")?
        .trim()
        .to_owned();
    let gen_init_cpio = work.join("usr/gen_init_cpio");
    ensure!(
        gen_init_cpio.is_file(),
        "the build left no usr/gen_init_cpio"
    );
    fs::copy(&gen_init_cpio, tmp.join("gen_init_cpio"))?;

    // The uapi headers the nolibc programs need, left in <build>/usr/include
    // by `make headers` (headers_install would only copy them, with rsync).
    let log = work.join("build.log");
    make(recipe, src, work, &["headers"], &log, "headers")?;
    let gcc = format!("{}gcc", recipe.prefix());
    let nolibc = src.join("tools/include/nolibc");
    let include = work.join("usr/include");
    let build_init = |source: &Path, out: &Path| -> Result<()> {
        cmd!(
            sh,
            "{gcc} -s -static -Os -nostdinc -nostdlib -fno-asynchronous-unwind-tables -fno-ident -I {include} -I {nolibc} -o {out} {source}"
        )
        .quiet()
        .run()
        .with_context(|| format!("compiling {} with nolibc", source.display()))
    };
    let selftest_init = tmp.join("selftest-init");
    build_init(
        &src.join("tools/testing/selftests/kho/init.c"),
        &selftest_init,
    )?;
    let peer_src = tmp.join("kho-peer-init.c");
    fs::write(&peer_src, PEER_INIT)?;
    let peer_init = tmp.join("kho-peer-init");
    build_init(&peer_src, &peer_init)?;

    let kernel = tmp.join("kernel");
    let base = "dir /dev 0755 0 0\ndir /proc 0755 0 0\ndir /debugfs 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\n";
    write_cpio(
        sh,
        &gen_init_cpio,
        &format!(
            "{base}file /init {} 0755 0 0\nfile /kernel {} 0644 0 0\n",
            selftest_init.display(),
            kernel.display()
        ),
        &tmp.join("initramfs-selftest.cpio"),
    )?;
    write_cpio(
        sh,
        &gen_init_cpio,
        &format!("{base}file /init {} 0755 0 0\n", peer_init.display()),
        &tmp.join("initramfs-peer.cpio"),
    )?;

    let mut manifest = format!(
        "# kho-rs Linux peer cache entry (cargo xtask linux)\npackage {PACKAGE} {version}\nrelease {release}\narch {}\nbuild-seconds {build_secs:.0}\n",
        recipe.name
    );
    for f in ENTRY_FILES {
        let _ = writeln!(manifest, "file {} {}", sha256_file(&tmp.join(f))?, f);
    }
    fs::write(tmp.join(MANIFEST), manifest)?;
    Ok(())
}

/// Build a newc cpio archive from a gen_init_cpio list.
pub(crate) fn write_cpio(sh: &Shell, gen_init_cpio: &Path, list: &str, out: &Path) -> Result<()> {
    let list_file = out.with_extension("list");
    fs::write(&list_file, list)?;
    let bytes = cmd!(sh, "{gen_init_cpio} {list_file}")
        .quiet()
        .output()
        .context("running gen_init_cpio")?;
    ensure!(
        bytes.status.success(),
        "gen_init_cpio failed: {}",
        String::from_utf8_lossy(&bytes.stderr)
    );
    fs::write(out, bytes.stdout)?;
    fs::remove_file(&list_file)?;
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Check a finished entry against its manifest.
fn verify_entry(dir: &Path) -> Result<Peer> {
    let manifest = fs::read_to_string(dir.join(MANIFEST))
        .with_context(|| format!("{} has no {MANIFEST}", dir.display()))?;
    let (mut package_version, mut release) = (None, None);
    let mut files: Vec<&str> = Vec::new();
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("package"), Some(_), Some(v)) => package_version = Some(v.to_owned()),
            (Some("release"), Some(r), None) => release = Some(r.to_owned()),
            (Some("file"), Some(hash), Some(name)) => {
                ensure!(
                    ENTRY_FILES.contains(&name) && !files.contains(&name),
                    "the manifest names `{name}` again or names no file of an entry"
                );
                let got = sha256_file(&dir.join(name))?;
                ensure!(
                    got == hash,
                    "{name} does not match its hash in the manifest"
                );
                files.push(name);
            }
            _ => {}
        }
    }
    ensure!(
        files.len() == ENTRY_FILES.len(),
        "the manifest lists {} files, not {}",
        files.len(),
        ENTRY_FILES.len()
    );
    Ok(Peer {
        package_version: package_version.context("the manifest has no package line")?,
        release: release.context("the manifest has no release line")?,
        dir: dir.to_owned(),
        kernel: dir.join("kernel"),
        selftest_initramfs: dir.join("initramfs-selftest.cpio"),
        peer_initramfs: dir.join("initramfs-peer.cpio"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_package_names() {
        let v = deb_version(Path::new("/c/linux-source-7.2_7.2.13-1_all.deb")).unwrap();
        assert_eq!(v, "7.2.13-1");
        assert_eq!(upstream_version(&v), "7.2.13");
        assert!(deb_version(Path::new("/c/linux-source-7.2_7.2;rm_all.deb")).is_err());
        assert!(deb_version(Path::new("/c/other_1_all.deb")).is_err());
    }

    #[test]
    fn fragments_keep_upstreams_lines() {
        for arch in PEER_ARCHES {
            let lines = arch.fragment_lines();
            for want in [
                "CONFIG_KEXEC_HANDOVER=y",
                "CONFIG_TEST_KEXEC_HANDOVER=y",
                "CONFIG_BLK_DEV_INITRD=y",
                "CONFIG_DEBUG_VM=y",
            ] {
                assert!(lines.contains(&want), "{}: {want}", arch.name);
            }
            assert!(
                lines.iter().any(|l| l.contains("CONSOLE=y")),
                "{}",
                arch.name
            );
        }
    }

    #[test]
    fn the_key_follows_every_input() {
        let x86 = &PEER_ARCHES[0];
        let arm = &PEER_ARCHES[1];
        let k = entry_key("7.2.13-1", x86, "gcc 12");
        assert_eq!(k.len(), 16);
        assert_eq!(k, entry_key("7.2.13-1", x86, "gcc 12"));
        assert_ne!(k, entry_key("7.2.13-2", x86, "gcc 12"));
        assert_ne!(k, entry_key("7.2.13-1", arm, "gcc 12"));
        assert_ne!(k, entry_key("7.2.13-1", x86, "gcc 13"));
    }

    #[test]
    fn a_tampered_entry_is_refused() {
        let dir = std::env::temp_dir().join(format!("kho-linux-entry-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut manifest = String::from("package linux-source-7.2 7.2.13-1\nrelease 7.2.13\n");
        for n in ENTRY_FILES {
            fs::write(dir.join(n), n).unwrap();
            manifest.push_str(&format!(
                "file {} {n}\n",
                sha256_file(&dir.join(n)).unwrap()
            ));
        }
        fs::write(dir.join(MANIFEST), &manifest).unwrap();
        let peer = verify_entry(&dir).unwrap();
        assert_eq!(peer.release, "7.2.13");
        fs::write(dir.join("kernel"), "changed").unwrap();
        let e = verify_entry(&dir).unwrap_err().to_string();
        assert!(e.contains("kernel does not match"), "{e}");
        fs::remove_file(dir.join(MANIFEST)).unwrap();
        assert!(verify_entry(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
