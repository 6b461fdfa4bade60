//! Parser of the stub's serial line protocol (docs/HANDOVER.md, "Line protocol").
//!
//! A protocol line is `KHO <verb>` followed by `key=value` fields with no
//! spaces in values, and at most one quoted `key="…"` field, which comes
//! last and runs to the closing quote at the end of the line. Any other
//! console output is free-form and not a protocol line.

use std::fmt;

/// The prefix of every protocol line.
pub(crate) const PREFIX: &str = "KHO ";

/// The verbs of the protocol (docs/HANDOVER.md); others parse as [`Verb::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Boot,
    Revival,
    FdtIn,
    Scratch,
    Walk,
    Verify,
    Preserve,
    FdtOut,
    Kexec,
    Done,
    Fail,
    /// A verb this harness does not know (a newer stub, or `panic`).
    Other(String),
}

impl Verb {
    fn from_word(word: &str) -> Verb {
        match word {
            "boot" => Verb::Boot,
            "revival" => Verb::Revival,
            "fdt-in" => Verb::FdtIn,
            "scratch" => Verb::Scratch,
            "walk" => Verb::Walk,
            "verify" => Verb::Verify,
            "preserve" => Verb::Preserve,
            "fdt-out" => Verb::FdtOut,
            "kexec" => Verb::Kexec,
            "done" => Verb::Done,
            "fail" => Verb::Fail,
            other => Verb::Other(other.to_owned()),
        }
    }

    /// The word as it appears on the wire.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Verb::Boot => "boot",
            Verb::Revival => "revival",
            Verb::FdtIn => "fdt-in",
            Verb::Scratch => "scratch",
            Verb::Walk => "walk",
            Verb::Verify => "verify",
            Verb::Preserve => "preserve",
            Verb::FdtOut => "fdt-out",
            Verb::Kexec => "kexec",
            Verb::Done => "done",
            Verb::Fail => "fail",
            Verb::Other(word) => word,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed protocol line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) verb: Verb,
    /// Fields in line order; the quoted one (if any) is last, unquoted.
    pub(crate) fields: Vec<(String, String)>,
}

/// Why a line that starts with `KHO ` is not a valid protocol line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// `KHO` and nothing else.
    MissingVerb,
    /// A field without `=`.
    NotKeyValue(String),
    /// A quoted value whose closing quote is not the end of the line.
    UnterminatedQuote(String),
    /// The same key twice.
    DuplicateKey(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MissingVerb => write!(f, "no verb after `KHO`"),
            ParseError::NotKeyValue(tok) => write!(f, "field `{tok}` is not key=value"),
            ParseError::UnterminatedQuote(key) => {
                write!(
                    f,
                    "quoted field `{key}` does not end with `\"` at the end of the line"
                )
            }
            ParseError::DuplicateKey(key) => write!(f, "field `{key}` appears twice"),
        }
    }
}

/// Strip the PTY's `\r` (and any other trailing line-end bytes).
pub(crate) fn clean(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Parse `line`: `None` if it is not a protocol line (free-form output),
/// `Some(Err)` if it claims to be one but is malformed.
pub(crate) fn parse(line: &str) -> Option<Result<Line, ParseError>> {
    let line = clean(line);
    let rest = line
        .strip_prefix(PREFIX)
        .or_else(|| (line == "KHO").then_some(""))?;
    Some(parse_body(rest))
}

fn parse_body(rest: &str) -> Result<Line, ParseError> {
    let rest = rest.trim_start_matches(' ');
    let (verb, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if verb.is_empty() {
        return Err(ParseError::MissingVerb);
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let (key, after) = match rest.split_once('=') {
            Some((key, after)) if !key.is_empty() && !key.contains(' ') => (key, after),
            _ => {
                let token = rest.split(' ').next().unwrap_or(rest);
                return Err(ParseError::NotKeyValue(token.to_owned()));
            }
        };
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            // The quoted field is the last one: it runs to the final quote.
            value = quoted
                .strip_suffix('"')
                .ok_or_else(|| ParseError::UnterminatedQuote(key.to_owned()))?;
            rest = "";
        } else {
            let (v, r) = after.split_once(' ').unwrap_or((after, ""));
            value = v;
            rest = r;
        }
        if fields.iter().any(|(k, _)| k == key) {
            return Err(ParseError::DuplicateKey(key.to_owned()));
        }
        fields.push((key.to_owned(), value.to_owned()));
    }
    Ok(Line {
        verb: Verb::from_word(verb),
        fields,
    })
}

impl Line {
    /// The value of field `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Field `key` as a number: decimal, or `0x` hex.
    pub(crate) fn num(&self, key: &str) -> Option<u64> {
        parse_num(self.get(key)?)
    }

    /// The `gen=` field.
    pub(crate) fn generation(&self) -> Option<u32> {
        self.num("gen").and_then(|g| u32::try_from(g).ok())
    }
}

/// A protocol number: decimal, or `0x`-prefixed hex.
pub(crate) fn parse_num(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Decode the `hex=` of `fdt-in`/`fdt-out` (lower- or upper-case, even length).
pub(crate) fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    hex::decode(text).map_err(|e| match e {
        hex::FromHexError::OddLength => format!("odd number of hex digits ({})", text.len()),
        hex::FromHexError::InvalidHexCharacter { index, .. } => {
            format!("not a hex digit at offset {index}")
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Line {
        parse(line).unwrap().unwrap()
    }

    #[test]
    fn free_form_lines_are_not_protocol_lines() {
        assert_eq!(parse("kho-stub: hello kind=0"), None);
        assert_eq!(parse("KHOX boot"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("  KHO boot gen=0"), None);
    }

    #[test]
    fn verb_and_fields() {
        let l = ok("KHO walk gen=3 blocks=10 pages=2048 ranges=4 ticks=123456\r");
        assert_eq!(l.verb, Verb::Walk);
        assert_eq!(l.generation(), Some(3));
        assert_eq!(l.num("pages"), Some(2048));
        assert_eq!(l.get("ticks"), Some("123456"));
        assert_eq!(l.get("nope"), None);
        assert_eq!(l.fields.len(), 5);
    }

    #[test]
    fn hex_numbers_and_addr_plus_size() {
        let l = ok("KHO revival gen=1 result=ok fdt=0x7fe000 scratch=0x1000000+0x4000000");
        assert_eq!(l.num("fdt"), Some(0x7f_e000));
        assert_eq!(l.get("scratch"), Some("0x1000000+0x4000000"));
        assert_eq!(l.num("scratch"), None);
    }

    #[test]
    fn trailing_quoted_field_keeps_spaces_equals_and_quotes() {
        let l = ok(
            r#"KHO revival gen=4 result=failed reason="unknown KHO root compatible "kho-v9" (a=b)""#,
        );
        assert_eq!(l.verb, Verb::Revival);
        assert_eq!(l.get("result"), Some("failed"));
        assert_eq!(
            l.get("reason"),
            Some(r#"unknown KHO root compatible "kho-v9" (a=b)"#)
        );
        let b = ok(r#"KHO boot gen=0 arch=x86_64 mode=cold cmdline="kho=on kho_stub.seed=0x5eed""#);
        assert_eq!(b.get("cmdline"), Some("kho=on kho_stub.seed=0x5eed"));
        assert_eq!(b.get("mode"), Some("cold"));
        let empty = ok(r#"KHO fail gen=2 reason="""#);
        assert_eq!(empty.get("reason"), Some(""));
    }

    #[test]
    fn unknown_verbs_parse() {
        let l = ok("KHO panic gen=1 at=src/main.rs:3");
        assert_eq!(l.verb, Verb::Other("panic".into()));
        assert_eq!(l.verb.to_string(), "panic");
        assert_eq!(ok("KHO done").fields, vec![]);
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(parse("KHO"), Some(Err(ParseError::MissingVerb)));
        assert_eq!(parse("KHO "), Some(Err(ParseError::MissingVerb)));
        assert_eq!(
            parse("KHO boot gen=0 oops"),
            Some(Err(ParseError::NotKeyValue("oops".into())))
        );
        assert_eq!(
            parse("KHO boot =3"),
            Some(Err(ParseError::NotKeyValue("=3".into())))
        );
        assert_eq!(
            parse(r#"KHO fail gen=1 reason="no end"#),
            Some(Err(ParseError::UnterminatedQuote("reason".into())))
        );
        assert_eq!(
            parse("KHO boot gen=0 gen=1"),
            Some(Err(ParseError::DuplicateKey("gen".into())))
        );
        let msg = ParseError::UnterminatedQuote("reason".into()).to_string();
        assert!(msg.contains("reason"), "{msg}");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num("42"), Some(42));
        assert_eq!(parse_num("0x2a"), Some(42));
        assert_eq!(parse_num("0x"), None);
        assert_eq!(parse_num("-1"), None);
        assert_eq!(parse_num("4k"), None);
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(
            decode_hex("d00dFEED").unwrap(),
            vec![0xd0, 0x0d, 0xfe, 0xed]
        );
        assert_eq!(decode_hex("").unwrap(), Vec::<u8>::new());
        assert!(decode_hex("abc").unwrap_err().contains("odd"));
        assert!(decode_hex("zz").unwrap_err().contains("offset 0"));
        assert!(decode_hex("00é0").is_err());
    }
}
