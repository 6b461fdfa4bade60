//! The report as JSON (feature `json`): serde_json's pretty form, one value
//! per inspection, addresses and sizes as numbers, locations as objects,
//! and a top-level `"schema"` ([`SCHEMA`]) first. Needs `alloc` only.

use alloc::string::String;

use serde::Serialize;

pub use crate::report::SCHEMA;

/// `value` under a top-level `"schema"`.
#[derive(Serialize)]
struct Versioned<'a, T: ?Sized> {
    schema: &'static str,
    #[serde(flatten)]
    value: &'a T,
}

/// `value` ([`Output`](crate::report::Output),
/// [`FindOutput`](crate::report::FindOutput), a [`Report`](crate::Report):
/// anything that serializes as a map) as pretty JSON with a final newline,
/// its first field `"schema": "kho-inspect/1"`: byte for byte what
/// `inspect --json` prints.
pub fn render<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(&Versioned {
        schema: SCHEMA,
        value,
    })?;
    text.push('\n');
    Ok(text)
}
