//! The architectures the stub boots on, as data: adding one is one [`ARCHES`] entry.

use std::path::PathBuf;

use crate::util::project_root;

/// How to interpret a QEMU exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// The stub finished every generation (`KHO done`).
    Success,
    /// The stub reported a fatal error (`KHO fail`).
    StubFailure,
    /// Anything that is neither (a crash, a QEMU error).
    Other,
}

/// Everything the xtask needs to build and boot the stub on one architecture.
#[derive(Debug)]
pub(crate) struct ArchSpec {
    /// The name used on the command line and in scenario files.
    pub(crate) name: &'static str,
    /// The Rust target triple the stub is built for.
    pub(crate) triple: &'static str,
    /// Directory under `crates/kho-stub/src/arch/` that holds this arch's
    /// boot code; the arch counts as supported once it exists.
    pub(crate) stub_dir: &'static str,
    /// The QEMU system emulator.
    pub(crate) qemu: &'static str,
    /// Debian package that provides [`ArchSpec::qemu`].
    pub(crate) qemu_package: &'static str,
    /// Board and device arguments, the same under every accelerator.
    pub(crate) machine_args: &'static [&'static str],
    /// CPU arguments under TCG.
    pub(crate) tcg_cpu_args: &'static [&'static str],
    /// CPU arguments under KVM.
    pub(crate) kvm_cpu_args: &'static [&'static str],
    /// The host architecture (`std::env::consts::ARCH`) KVM needs.
    pub(crate) kvm_host: &'static str,
    /// The file QEMU boots, relative to the cargo target directory.
    pub(crate) image: &'static str,
    /// QEMU exit statuses and what they mean.
    pub(crate) exit_codes: &'static [(i32, ExitKind, &'static str)],
}

/// Every architecture, in the order `test-vm` runs them.
pub(crate) const ARCHES: &[ArchSpec] = &[
    ArchSpec {
        name: "x86_64",
        triple: "x86_64-unknown-none",
        stub_dir: "x86_64",
        qemu: "qemu-system-x86_64",
        qemu_package: "qemu-system-x86",
        // PVH ELF boot on the default i440fx board; the stub exits through
        // isa-debug-exit, so QEMU's status is (value << 1) | 1.
        machine_args: &[
            "-machine",
            "pc",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ],
        // The default CPU model (qemu64) under both: `-cpu host` and `-cpu max`
        // abort under this machine's nested KVM (MSR 0x10a).
        tcg_cpu_args: &[],
        kvm_cpu_args: &[],
        kvm_host: "x86_64",
        image: "x86_64-unknown-none/release/kho-stub",
        exit_codes: &[
            (
                33,
                ExitKind::Success,
                "the stub wrote 0x10 to isa-debug-exit (success)",
            ),
            (
                35,
                ExitKind::StubFailure,
                "the stub wrote 0x11 to isa-debug-exit (KHO fail)",
            ),
            (
                0,
                ExitKind::Other,
                "triple fault under -no-reboot, or a shutdown: never success",
            ),
            (
                1,
                ExitKind::Other,
                "QEMU itself failed (bad arguments or image)",
            ),
        ],
    },
    // A flat arm64 Image (the stub links with --oformat=binary); the stub
    // exits through semihosting SYS_EXIT with the same codes as x86_64.
    ArchSpec {
        name: "aarch64",
        triple: "aarch64-unknown-none",
        stub_dir: "aarch64",
        qemu: "qemu-system-aarch64",
        qemu_package: "qemu-system-arm",
        machine_args: &[
            "-machine",
            "virt,gic-version=3",
            "-semihosting-config",
            "enable=on,target=native",
        ],
        tcg_cpu_args: &["-cpu", "max"],
        kvm_cpu_args: &["-cpu", "host"],
        kvm_host: "aarch64",
        image: "aarch64-unknown-none/release/kho-stub",
        exit_codes: &[
            (
                33,
                ExitKind::Success,
                "the stub exited through semihosting with 33 (success)",
            ),
            (
                35,
                ExitKind::StubFailure,
                "the stub exited through semihosting with 35 (KHO fail)",
            ),
            (
                0,
                ExitKind::Other,
                "PSCI SYSTEM_OFF or a shutdown: never success",
            ),
            (
                1,
                ExitKind::Other,
                "QEMU itself failed (bad arguments or image)",
            ),
        ],
    },
];

impl ArchSpec {
    /// The arch named `name`.
    pub(crate) fn find(name: &str) -> Option<&'static ArchSpec> {
        ARCHES.iter().find(|a| a.name == name)
    }

    /// The names of every arch, for error messages.
    pub(crate) fn names() -> String {
        ARCHES.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    }

    /// The only QEMU status that means success.
    pub(crate) fn success_code(&self) -> i32 {
        self.exit_codes
            .iter()
            .find(|(_, kind, _)| *kind == ExitKind::Success)
            .map_or(33, |(code, _, _)| *code)
    }

    /// The QEMU status of a stub that reported a fatal error (`KHO fail`).
    pub(crate) fn stub_failure_code(&self) -> i32 {
        self.exit_codes
            .iter()
            .find(|(_, kind, _)| *kind == ExitKind::StubFailure)
            .map_or(35, |(code, _, _)| *code)
    }

    /// What a QEMU exit status means on this arch.
    pub(crate) fn describe_exit(&self, code: i32) -> &'static str {
        self.exit_codes
            .iter()
            .find(|(c, _, _)| *c == code)
            .map_or("not an exit status the stub produces", |(_, _, what)| what)
    }

    /// Whether kho-stub has boot code for this arch yet.
    pub(crate) fn stub_supported(&self) -> bool {
        project_root()
            .join("crates/kho-stub/src/arch")
            .join(self.stub_dir)
            .is_dir()
    }

    /// The built image (whether or not it exists yet).
    pub(crate) fn image_path(&self) -> PathBuf {
        target_dir().join(self.image)
    }

    /// The image another kernel's kexec_file_load takes: the arm64 Image
    /// is the built image itself; on x86_64 it is a bzImage made from the
    /// ELF (vm/bzimage.rs).
    pub(crate) fn kexec_image_path(&self) -> PathBuf {
        match self.name {
            "x86_64" => target_dir().join(format!("{}.bzImage", self.image)),
            _ => self.image_path(),
        }
    }
}

/// clap value parser for `--arch`.
pub(crate) fn parse_arch(name: &str) -> Result<&'static ArchSpec, String> {
    ArchSpec::find(name)
        .ok_or_else(|| format!("unknown arch `{name}` (known: {})", ArchSpec::names()))
}

pub(crate) use crate::util::target_dir;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_one_success_code_and_it_is_never_zero() {
        for arch in ARCHES {
            let successes = arch
                .exit_codes
                .iter()
                .filter(|(_, k, _)| *k == ExitKind::Success)
                .count();
            assert_eq!(successes, 1, "{}", arch.name);
            assert_ne!(arch.success_code(), 0, "{}", arch.name);
            assert!(arch.image.starts_with(arch.triple), "{}", arch.name);
        }
    }

    #[test]
    fn lookup_and_exit_descriptions() {
        let x86 = parse_arch("x86_64").unwrap();
        assert_eq!(x86.success_code(), 33);
        assert!(x86.describe_exit(0).contains("never success"));
        assert!(x86.describe_exit(7).contains("not an exit status"));
        let err = parse_arch("riscv64").unwrap_err();
        assert!(err.contains("x86_64, aarch64"), "{err}");
    }
}
