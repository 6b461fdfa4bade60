//! `cargo xtask inspect` and `cargo xtask fdt-dump` are `kho inspect` and
//! `kho fdt-dump` (crates/kho-cli) in a checkout: the same flags, output
//! and exit status, run by kho-cli's library. The VM harness (`vm::dump`)
//! decodes its dumps through the same entry points.

pub(crate) use kho_cli::inspect::{find_file, inspect_file};
pub(crate) use kho_inspect::{Report, Start, find, report};
