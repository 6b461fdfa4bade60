//! `kho fdt-dump FILE`: print a KHO FDT blob, as kho-rs's canonical review
//! rendering (`kho_inspect::fdt_dump`, the one snapshots use) or with
//! `--dts` as source dtc compiles back to the blob ([`dts`]).
//!
//! The input is untrusted and read with bounds: only regular files, at
//! most [`MAX_ROOT`] bytes for a KHO root FDT (one page) or [`MAX_RAW`]
//! with `--raw` (any FDT blob: a client's sub-FDT, a boot DTB; Linux's
//! arm64 `MAX_FDT_SIZE`), checked before anything is read. A FIFO, a device
//! (`/dev/zero`) or a directory is refused with one line instead of being
//! read without end. A reader that closes the pipe early (`| head`) ends
//! the output quietly.

pub mod dts;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use kho_inspect::fdt_dump::{MAX_RAW, MAX_ROOT};

/// `kho fdt-dump`'s flags.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The blob to render (a root KHO FDT, or any FDT with --raw).
    pub file: PathBuf,
    /// Render any valid FDT (e.g. a client sub-blob) without the KHO root checks.
    #[arg(long)]
    pub raw: bool,
    /// Print DTS source that `dtc -I dts -O dtb` compiles back to the blob:
    /// the blob's own node and property order, little-endian values as
    /// bytes with their le64 value in a comment (default: kho-rs's
    /// canonical review rendering, which dtc cannot compile).
    #[arg(long)]
    pub dts: bool,
}

/// Read `file` if it is a regular file of at most `max` bytes.
pub fn read_bounded(file: &Path, max: u64) -> Result<Vec<u8>, String> {
    let f = File::open(file).map_err(|e| e.to_string())?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(String::from(
            "not a regular file (a directory, FIFO or device): fdt-dump reads files only",
        ));
    }
    if meta.len() > max {
        return Err(format!(
            "{} bytes: larger than an FDT it renders can be ({max} bytes{})",
            meta.len(),
            if max == MAX_ROOT {
                "; --raw takes any FDT blob up to 2 MiB"
            } else {
                ""
            }
        ));
    }
    // The file may grow after the check: never read more than `max` + 1.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("grew past {max} bytes while being read"));
    }
    Ok(bytes)
}

/// `kho fdt-dump`: print the rendering of the file; on any error print one
/// line and exit 1.
pub fn run(args: &Args) -> ExitCode {
    let file = args.file.display();
    let bytes = match read_bounded(&args.file, kho_inspect::fdt_dump::max_len(args.raw)) {
        Ok(b) => b,
        Err(e) => return crate::fail(format_args!("{file}: {e}")),
    };
    let text = if args.dts {
        dts::render(&bytes, args.raw)
    } else {
        kho_inspect::fdt_dump::render(&bytes, args.raw)
            .map_err(|e| crate::Error::new(e.to_string()))
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => return crate::fail(format_args!("{file}: {e}")),
    };
    match crate::print(&text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("kho-fdt-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        std::fs::write(&small, [1u8; 100]).unwrap();
        assert_eq!(read_bounded(&small, MAX_ROOT).unwrap().len(), 100);
        let big = dir.join("big");
        std::fs::write(&big, vec![0u8; MAX_ROOT as usize + 1]).unwrap();
        let e = read_bounded(&big, MAX_ROOT).unwrap_err();
        assert!(e.contains("4097 bytes: larger than"), "{e}");
        assert_eq!(
            read_bounded(&big, MAX_RAW).unwrap().len(),
            MAX_ROOT as usize + 1
        );
        // A sparse file that claims 2 GiB is refused from its length alone.
        let sparse = dir.join("sparse");
        File::create(&sparse).unwrap().set_len(2 << 30).unwrap();
        assert!(read_bounded(&sparse, MAX_RAW).is_err());
        // Not regular files: a directory, a device.
        assert!(
            read_bounded(&dir, MAX_RAW)
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(
            read_bounded(Path::new("/dev/zero"), MAX_RAW)
                .unwrap_err()
                .contains("not a regular file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
