//! The `kho` command line as a library: what `kho inspect` and `kho
//! fdt-dump` do, for the binary and for tools that embed the same commands
//! (kho-rs's `cargo xtask inspect` and `cargo xtask fdt-dump` delegate
//! here).
//!
//! - [`inspect`]: a guest memory dump (QEMU ELF core, vmcore, raw file) as
//!   a [`kho_inspect::Image`] over positioned reads of the file, the flags,
//!   the report printed as text or JSON, the exit status;
//! - [`fdt_dump`]: a KHO FDT blob read with bounds and printed as kho-rs's
//!   canonical review rendering or, with `--dts`, as source dtc compiles
//!   back to the same blob;
//! - [`key`]: a radix key decoded into its block and its place in the tree,
//!   or a block encoded into its key.
//!
//! The decoding is [`kho_inspect`]'s; this crate opens files, parses flags
//! and prints. Every input is untrusted: files are read with bounds, errors
//! are one line naming the file, and nothing in an input makes it panic.
//! A reader that closes the pipe early (`kho inspect … | head`) ends the
//! output quietly.

pub mod fdt_dump;
pub mod inspect;
pub mod key;

use std::fmt;
use std::io::{ErrorKind, Write as _};
use std::process::ExitCode;

/// A one-line error about an input: the file named first, then what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Print `message` as the one `error:` line on stderr; exit status 1.
fn fail(message: impl fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Write `text` to stdout. A reader that stopped early (`| head`: EPIPE)
/// is not an error; any other write error is (`> /dev/full`).
fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(format!("writing the output: {e}"))),
    }
}
