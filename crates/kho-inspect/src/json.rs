//! The report as JSON (feature `json`): serde_json's pretty form, one value
//! per inspection, addresses and sizes as numbers. Needs `alloc` only.

use alloc::string::String;

use serde::Serialize;

/// `value` ([`Output`](crate::report::Output),
/// [`FindOutput`](crate::report::FindOutput), a [`Report`](crate::Report))
/// as pretty JSON with a final newline: byte for byte what `inspect
/// --json` prints.
pub fn render<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}
