//! `kho=` and `kho_scratch=`: value syntax and finding them in a command line.
//!
//! Everything here mirrors what upstream Linux accepts (spec section 7.2):
//!
//! - `kho_scratch=N%` — the text before `%` is at most 10 characters and is
//!   parsed like `kstrtouint(s, 10)`: an optional leading `+`, base-10
//!   digits, an optional single trailing newline, and the value must fit
//!   `u32`. `0%` is accepted (see [`ScratchSizes`](crate::ScratchSizes) for
//!   what a zero scale means).
//! - `kho_scratch=L,G,P` — exactly three [`memparse`] numbers separated by
//!   single commas, nothing after the third, not all three zero.
//! - `kho=` — kstrtobool: only the first one or two characters count.
//!   `y Y t T e E 1` mean on, `n N f F d D 0` mean off, `o`/`O` followed by
//!   `n`/`N` is on and by `f`/`F` is off; so `yes`, `true`, `on`, `off`,
//!   `enable` and also `yellow` are accepted, `x`, `o` and the empty string
//!   are not. (The `e`/`d` letters for enable/disable are in newer kernels;
//!   older ones reject them.)
//!
//! The one deliberate difference: a size that does not fit 64 bits is
//! [`Error::SizeOverflow`] here, where Linux silently wraps it.

use crate::error::{Error, Param, Result, Token};

/// The default `kho_scratch` scale: 200 % of what the kernel allocated during boot.
pub const DEFAULT_SCALE_PERCENT: u32 = 200;

/// What `kho_scratch=` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScratchSpec {
    /// `N%`: every area is `N` percent of the matching boot usage.
    Scale {
        /// The percentage.
        percent: u32,
    },
    /// `L,G,P`: explicit sizes in bytes (before rounding).
    Explicit {
        /// The low-memory area.
        lowmem: u64,
        /// The global area.
        global: u64,
        /// Each per-node area.
        per_node: u64,
    },
}

impl Default for ScratchSpec {
    /// `Scale { percent: 200 }`, upstream's default.
    fn default() -> ScratchSpec {
        ScratchSpec::Scale {
            percent: DEFAULT_SCALE_PERCENT,
        }
    }
}

/// Parse a `kho_scratch=` value (the text after `=`).
///
/// ```
/// use kho_scratch::{parse_kho_scratch, ScratchSpec};
///
/// assert_eq!(
///     parse_kho_scratch("16M,512M,256M")?,
///     ScratchSpec::Explicit { lowmem: 16 << 20, global: 512 << 20, per_node: 256 << 20 }
/// );
/// assert_eq!(parse_kho_scratch("150%")?, ScratchSpec::Scale { percent: 150 });
/// assert!(parse_kho_scratch("16M,512M").is_err());
/// # Ok::<(), kho_scratch::Error>(())
/// ```
pub fn parse_kho_scratch(value: &str) -> Result<ScratchSpec> {
    parse_kho_scratch_bytes(value.as_bytes())
}

/// [`parse_kho_scratch`] on raw bytes (a command line read from memory).
pub fn parse_kho_scratch_bytes(value: &[u8]) -> Result<ScratchSpec> {
    let Some((&last, number)) = value.split_last() else {
        return Err(Error::EmptyValue {
            param: Param::KhoScratch,
        });
    };
    if last == b'%' {
        // Upstream copies the text before '%' into an 11-byte buffer.
        if number.len() > 10 {
            return Err(Error::ScaleTooLong {
                token: Token::new(value),
            });
        }
        return parse_scale(number).map(|percent| ScratchSpec::Scale { percent });
    }

    let mut sizes = [0u64; 3];
    let mut rest = value;
    for (field, size) in sizes.iter_mut().enumerate() {
        if field > 0 {
            match rest.split_first() {
                Some((b',', tail)) => rest = tail,
                _ => {
                    return Err(Error::MissingComma {
                        field: field as u8,
                        token: Token::new(rest),
                    });
                }
            }
        }
        let (bytes, used) = memparse(rest)?;
        if used == 0 {
            return Err(Error::EmptyNumber {
                field: field as u8,
                token: Token::new(rest),
            });
        }
        *size = bytes;
        rest = &rest[used..];
    }
    // Same order as upstream: the all-zero check comes before the
    // trailing-characters check.
    if sizes == [0; 3] {
        return Err(Error::AllZero {
            token: Token::new(value),
        });
    }
    if !rest.is_empty() {
        return Err(Error::TrailingCharacters {
            token: Token::new(rest),
        });
    }
    Ok(ScratchSpec::Explicit {
        lowmem: sizes[0],
        global: sizes[1],
        per_node: sizes[2],
    })
}

/// `kstrtouint(s, 10)`: optional `+`, digits, optional `\n`, fits `u32`.
fn parse_scale(s: &[u8]) -> Result<u32> {
    let token = || Token::new(s);
    let digits = s.strip_prefix(b"+").unwrap_or(s);
    let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if count == 0 {
        return Err(Error::ScaleInvalid { token: token() });
    }
    let tail = &digits[count..];
    if !(tail.is_empty() || tail == b"\n") {
        return Err(Error::ScaleInvalid { token: token() });
    }
    let mut value: u32 = 0;
    for &d in &digits[..count] {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(d - b'0')))
            .ok_or(Error::ScaleOutOfRange { token: token() })?;
    }
    Ok(value)
}

/// Linux's `memparse`: a number with an optional size suffix.
///
/// Returns the value and how many bytes were consumed (0 when nothing was
/// recognised). The number is read like `simple_strtoull(s, &end, 0)`: `0x`
/// or `0X` followed by a hex digit means hexadecimal, another leading `0`
/// means octal, anything else decimal; digits are consumed while they are
/// valid for the base (so `0x1e` is thirty, not one exabyte, and `09` reads
/// as `0` followed by `9`). No sign, no whitespace. One suffix letter may
/// follow, case-insensitive: `K`, `M`, `G`, `T`, `P`, `E` (×2^10 … ×2^60).
///
/// Like upstream, a suffix with no digits before it (`"K"`) is consumed and
/// reads as zero. Unlike upstream, a value that does not fit 64 bits is
/// [`Error::SizeOverflow`] instead of wrapping.
///
/// ```
/// use kho_scratch::memparse;
///
/// assert_eq!(memparse(b"16M,")?, (16 << 20, 3));
/// assert_eq!(memparse(b"0x1000")?, (0x1000, 6));
/// assert_eq!(memparse(b"010k")?, (8 << 10, 4));
/// assert_eq!(memparse(b"x")?, (0, 0));
/// # Ok::<(), kho_scratch::Error>(())
/// ```
pub fn memparse(s: &[u8]) -> Result<(u64, usize)> {
    let (base, prefix) = match s {
        [b'0', x, h, ..] if (*x | 0x20) == b'x' && h.is_ascii_hexdigit() => (16u32, 2usize),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    };
    let mut value: u64 = 0;
    let mut overflow = false;
    let mut end = prefix;
    while let Some(digit) = s.get(end).and_then(|&b| char::from(b).to_digit(base)) {
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(digit)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        end += 1;
    }
    let shift = match s.get(end).map(u8::to_ascii_uppercase) {
        Some(b'K') => 10,
        Some(b'M') => 20,
        Some(b'G') => 30,
        Some(b'T') => 40,
        Some(b'P') => 50,
        Some(b'E') => 60,
        _ => 0,
    };
    if shift != 0 {
        end += 1;
        if value > u64::MAX >> shift {
            overflow = true;
        }
        value <<= shift;
    }
    if overflow {
        return Err(Error::SizeOverflow {
            token: Token::new(&s[..end]),
        });
    }
    Ok((value, end))
}

/// Parse a `kho=` value with kstrtobool's rules (see the module docs).
///
/// ```
/// use kho_scratch::parse_kho;
///
/// assert_eq!(parse_kho("on")?, true);
/// assert_eq!(parse_kho("off")?, false);
/// assert_eq!(parse_kho("Yes")?, true);
/// assert!(parse_kho("maybe").is_err());
/// # Ok::<(), kho_scratch::Error>(())
/// ```
pub fn parse_kho(value: &str) -> Result<bool> {
    parse_kho_bytes(value.as_bytes())
}

/// [`parse_kho`] on raw bytes.
pub fn parse_kho_bytes(value: &[u8]) -> Result<bool> {
    match value {
        [] => Err(Error::EmptyValue { param: Param::Kho }),
        [b'y' | b'Y' | b't' | b'T' | b'e' | b'E' | b'1', ..] => Ok(true),
        [b'n' | b'N' | b'f' | b'F' | b'd' | b'D' | b'0', ..] => Ok(false),
        [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
        [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
        _ => Err(Error::InvalidBool {
            token: Token::new(value),
        }),
    }
}

/// What a whole command line says about KHO.
///
/// Linux calls the `early_param` handler once per occurrence; a malformed
/// occurrence is reported ("Malformed early option") and leaves the setting
/// as it was. This mirrors that: each field holds the value of the **last
/// valid** occurrence (`None` if there was none), and [`KhoCmdline::error`]
/// holds the error of the **first** malformed occurrence, for the caller to
/// print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KhoCmdline {
    /// `kho=`: whether KHO is enabled; `None` means the build's default.
    pub enable: Option<bool>,
    /// `kho_scratch=`; `None` means [`ScratchSpec::default`]. Only a cold
    /// boot uses it: on a KHO boot the incoming areas are reused as they are.
    pub scratch: Option<ScratchSpec>,
    /// The first malformed `kho=` or `kho_scratch=` occurrence.
    pub error: Option<Error>,
}

impl KhoCmdline {
    /// The scratch spec to use on a cold boot (`kho_scratch=` or the default).
    pub fn scratch_or_default(&self) -> ScratchSpec {
        self.scratch.unwrap_or_default()
    }
}

/// Find `kho=` and `kho_scratch=` in a whole kernel command line.
///
/// Arguments are split as the kernel's `next_arg` splits them: on ASCII
/// whitespace outside double quotes; a value may be quoted
/// (`kho_scratch="16M,512M,256M"`, the quotes are removed) and so may a
/// whole argument (`"kho=on"`). Parameter names compare with `-` and `_`
/// equal (`kho-scratch=` works, as `parameq` allows). Parsing stops at a
/// bare `--` (what follows belongs to init). Other arguments are ignored.
///
/// ```
/// use kho_scratch::{parse_cmdline, ScratchSpec};
///
/// let c = parse_cmdline("console=ttyS0 kho=on kho_scratch=50% kho_scratch=bad -- kho=off");
/// assert_eq!(c.enable, Some(true));
/// assert_eq!(c.scratch, Some(ScratchSpec::Scale { percent: 50 }));
/// assert!(c.error.is_some()); // "bad"
/// ```
pub fn parse_cmdline(cmdline: &str) -> KhoCmdline {
    parse_cmdline_bytes(cmdline.as_bytes())
}

/// [`parse_cmdline`] on raw bytes.
pub fn parse_cmdline_bytes(cmdline: &[u8]) -> KhoCmdline {
    let mut out = KhoCmdline::default();
    let mut rest = skip_spaces(cmdline);
    while !rest.is_empty() {
        let (param, value, tail) = next_arg(rest);
        rest = skip_spaces(tail);
        if value.is_none() && param == b"--" {
            break;
        }
        let result = if param_eq(param, b"kho") {
            match value {
                None => Err(Error::MissingValue { param: Param::Kho }),
                Some(v) => parse_kho_bytes(v).map(|on| out.enable = Some(on)),
            }
        } else if param_eq(param, b"kho_scratch") {
            match value {
                None => Err(Error::MissingValue {
                    param: Param::KhoScratch,
                }),
                Some(v) => parse_kho_scratch_bytes(v).map(|spec| out.scratch = Some(spec)),
            }
        } else {
            Ok(())
        };
        if let Err(e) = result {
            out.error.get_or_insert(e);
        }
    }
    out
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

/// `parameq`: equal, with `-` and `_` interchangeable.
fn param_eq(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| norm(x) == norm(y))
}

/// One argument: `(param, value, rest)`, with the kernel's quote handling.
fn next_arg(args: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let (args, quoted) = match args.strip_prefix(b"\"") {
        Some(inner) => (inner, true),
        None => (args, false),
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut i = 0;
    while i < args.len() {
        let c = args[i];
        if c.is_ascii_whitespace() && !in_quote {
            break;
        }
        // As upstream: an '=' at index 0 does not split the argument.
        if equals.is_none() && c == b'=' && i > 0 {
            equals = Some(i);
        }
        if c == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let closing_quote = i > 0 && args[i - 1] == b'"';
    let rest = &args[i..];
    match equals {
        None => {
            let end = if quoted && closing_quote { i - 1 } else { i };
            (&args[..end], None, rest)
        }
        Some(eq) => {
            let mut start = eq + 1;
            let mut end = i;
            if args.get(start) == Some(&b'"') {
                start += 1;
                if closing_quote {
                    end = i - 1;
                }
            }
            if quoted && closing_quote {
                end = end.min(i - 1);
            }
            let end = end.max(start);
            (&args[..eq], Some(&args[start..end]), rest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    fn explicit(lowmem: u64, global: u64, per_node: u64) -> ScratchSpec {
        ScratchSpec::Explicit {
            lowmem,
            global,
            per_node,
        }
    }

    #[test]
    fn kho_scratch_valid() {
        let table: &[(&str, ScratchSpec)] = &[
            ("16M,512M,256M", explicit(16 * M, 512 * M, 256 * M)),
            ("16m,512m,256m", explicit(16 * M, 512 * M, 256 * M)),
            ("0,1,0", explicit(0, 1, 0)),
            ("1K,2k,3", explicit(1 << 10, 2 << 10, 3)),
            ("1G,1T,1P", explicit(1 << 30, 1 << 40, 1 << 50)),
            ("1E,0,0", explicit(1 << 60, 0, 0)),
            ("0x200000,0X10M,0", explicit(0x20_0000, 16 * M, 0)),
            ("0x1e,0,0", explicit(0x1e, 0, 0)), // 'e' is a hex digit here
            ("010,0,0", explicit(8, 0, 0)),     // octal
            ("010K,0,0", explicit(8 << 10, 0, 0)),
            ("K,1,0", explicit(0, 1, 0)), // a bare suffix reads as 0, as upstream
            ("18446744073709551615,0,0", explicit(u64::MAX, 0, 0)),
            ("0%", ScratchSpec::Scale { percent: 0 }),
            ("200%", ScratchSpec::Scale { percent: 200 }),
            ("+50%", ScratchSpec::Scale { percent: 50 }),
            ("7\n%", ScratchSpec::Scale { percent: 7 }),
            ("0000000001%", ScratchSpec::Scale { percent: 1 }),
            ("4294967295%", ScratchSpec::Scale { percent: u32::MAX }),
        ];
        for (input, want) in table {
            assert_eq!(parse_kho_scratch(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn kho_scratch_invalid() {
        let t = Token::new;
        let table: &[(&str, Error)] = &[
            (
                "",
                Error::EmptyValue {
                    param: Param::KhoScratch,
                },
            ),
            ("%", Error::ScaleInvalid { token: t(b"") }),
            ("12a%", Error::ScaleInvalid { token: t(b"12a") }),
            ("-5%", Error::ScaleInvalid { token: t(b"-5") }),
            ("0x10%", Error::ScaleInvalid { token: t(b"0x10") }),
            (" 5%", Error::ScaleInvalid { token: t(b" 5") }),
            (
                "16M,512M,5%",
                Error::ScaleInvalid {
                    token: t(b"16M,512M,5"),
                },
            ),
            (
                "4294967296%",
                Error::ScaleOutOfRange {
                    token: t(b"4294967296"),
                },
            ),
            (
                "99999999999%",
                Error::ScaleTooLong {
                    token: t(b"99999999999%"),
                },
            ),
            (
                "+4294967295%",
                Error::ScaleTooLong {
                    token: t(b"+4294967295%"),
                },
            ),
            (
                "16M",
                Error::MissingComma {
                    field: 1,
                    token: t(b""),
                },
            ),
            (
                "16M,512M",
                Error::MissingComma {
                    field: 2,
                    token: t(b""),
                },
            ),
            (
                "16M;512M;256M",
                Error::MissingComma {
                    field: 1,
                    token: t(b";512M;256M"),
                },
            ),
            (
                "16X,1,1",
                Error::MissingComma {
                    field: 1,
                    token: t(b"X,1,1"),
                },
            ),
            (
                "09,1,1",
                Error::MissingComma {
                    field: 1,
                    token: t(b"9,1,1"),
                },
            ),
            (
                "0x,1,1",
                Error::MissingComma {
                    field: 1,
                    token: t(b"x,1,1"),
                },
            ),
            (
                ",1,1",
                Error::EmptyNumber {
                    field: 0,
                    token: t(b",1,1"),
                },
            ),
            (
                "1,,1",
                Error::EmptyNumber {
                    field: 1,
                    token: t(b",1"),
                },
            ),
            (
                "1,1,",
                Error::EmptyNumber {
                    field: 2,
                    token: t(b""),
                },
            ),
            (
                "1, 1,1",
                Error::EmptyNumber {
                    field: 1,
                    token: t(b" 1,1"),
                },
            ),
            (
                "-1,1,1",
                Error::EmptyNumber {
                    field: 0,
                    token: t(b"-1,1,1"),
                },
            ),
            ("1,1,1,", Error::TrailingCharacters { token: t(b",") }),
            ("1M,1M,1Mb", Error::TrailingCharacters { token: t(b"b") }),
            ("1,1,1 ", Error::TrailingCharacters { token: t(b" ") }),
            ("0,0,0", Error::AllZero { token: t(b"0,0,0") }),
            (
                "0,0,0x",
                Error::AllZero {
                    token: t(b"0,0,0x"),
                },
            ),
            ("16E,0,0", Error::SizeOverflow { token: t(b"16E") }),
            (
                "18446744073709551616,0,0",
                Error::SizeOverflow {
                    token: t(b"18446744073709551616"),
                },
            ),
        ];
        for (input, want) in table {
            assert_eq!(parse_kho_scratch(input), Err(*want), "input {input:?}");
        }
    }

    #[test]
    fn kho_bool() {
        let on = [
            "on", "ON", "oN", "y", "Y", "yes", "1", "t", "true", "e", "enable", "yellow",
        ];
        let off = [
            "off", "OFF", "of", "n", "no", "N", "0", "f", "false", "d", "disable",
        ];
        for v in on {
            assert_eq!(parse_kho(v), Ok(true), "{v}");
        }
        for v in off {
            assert_eq!(parse_kho(v), Ok(false), "{v}");
        }
        for v in ["o", "ox", "x", "2", " on", "\"on\""] {
            assert_eq!(
                parse_kho(v),
                Err(Error::InvalidBool {
                    token: Token::new(v.as_bytes())
                }),
                "{v}"
            );
        }
        assert_eq!(parse_kho(""), Err(Error::EmptyValue { param: Param::Kho }));
    }

    #[test]
    fn memparse_edges() {
        assert_eq!(memparse(b""), Ok((0, 0)));
        assert_eq!(memparse(b"0"), Ok((0, 1)));
        assert_eq!(memparse(b"0x"), Ok((0, 1)));
        assert_eq!(memparse(b"0xg"), Ok((0, 1)));
        assert_eq!(memparse(b"0xfG"), Ok((15 << 30, 4)));
        assert_eq!(memparse(b"kM"), Ok((0, 1)));
        assert_eq!(memparse(b"123abc"), Ok((123, 3)));
        assert_eq!(memparse(b"3e"), Ok((3 << 60, 2)));
        assert_eq!(
            memparse(b"0x10000000000000000"),
            Err(Error::SizeOverflow {
                token: Token::new(b"0x10000000000000000")
            })
        );
    }

    #[test]
    fn cmdline_last_valid_wins_and_first_error_is_kept() {
        let c = parse_cmdline(
            "root=/dev/vda kho_scratch=1,2,3 kho=off kho_scratch=x kho=on kho_scratch=10%",
        );
        assert_eq!(c.enable, Some(true));
        assert_eq!(c.scratch, Some(ScratchSpec::Scale { percent: 10 }));
        assert_eq!(
            c.error,
            Some(Error::EmptyNumber {
                field: 0,
                token: Token::new(b"x")
            })
        );
    }

    #[test]
    fn cmdline_splitting() {
        type Row = (
            &'static str,
            Option<bool>,
            Option<ScratchSpec>,
            Option<Error>,
        );
        let table: &[Row] = &[
            ("", None, None, None),
            ("   ", None, None, None),
            ("kho=on", Some(true), None, None),
            ("\tkho=1\n", Some(true), None, None),
            ("kho-scratch=1,2,3", None, Some(explicit(1, 2, 3)), None),
            ("kho_scratch=\"1,2,3\"", None, Some(explicit(1, 2, 3)), None),
            ("\"kho_scratch=1,2,3\"", None, Some(explicit(1, 2, 3)), None),
            ("\"kho=on\" x", Some(true), None, None),
            ("foo=\"a b kho=off\" kho=on", Some(true), None, None),
            (
                "kho=on -- kho=off kho_scratch=1,1,1",
                Some(true),
                None,
                None,
            ),
            ("kho=on --x kho=off", Some(false), None, None),
            ("kho_scratchy=1,2,3 xkho=on kho_=on", None, None, None),
            ("=kho=on", None, None, None),
            (
                "kho",
                None,
                None,
                Some(Error::MissingValue { param: Param::Kho }),
            ),
            (
                "kho_scratch",
                None,
                None,
                Some(Error::MissingValue {
                    param: Param::KhoScratch,
                }),
            ),
            (
                "kho_scratch= kho=",
                None,
                None,
                Some(Error::EmptyValue {
                    param: Param::KhoScratch,
                }),
            ),
            (
                "kho=maybe kho=on",
                Some(true),
                None,
                Some(Error::InvalidBool {
                    token: Token::new(b"maybe"),
                }),
            ),
        ];
        for (line, enable, scratch, error) in table {
            let c = parse_cmdline(line);
            assert_eq!(
                (c.enable, c.scratch, c.error),
                (*enable, *scratch, *error),
                "cmdline {line:?}"
            );
        }
    }

    #[test]
    fn error_messages_quote_the_token() {
        extern crate std;
        use std::string::ToString;
        let e = parse_kho_scratch("1M,2M,3Mx").unwrap_err();
        assert_eq!(
            e.to_string(),
            "kho_scratch: unexpected trailing characters \"x\""
        );
        let long = parse_kho_scratch("1,1,1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").unwrap_err();
        let Error::TrailingCharacters { token } = long else {
            panic!("wrong error {long:?}");
        };
        assert!(token.is_truncated());
        assert!(token.to_string().ends_with("...\""));
        assert_eq!(
            parse_kho("\x01").unwrap_err().to_string(),
            "kho: \"\\x01\" is not a boolean (on/off, y/n, 1/0, ...)"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::format;
        use std::string::String;

        fn suffixed(v: u64) -> impl Strategy<Value = (String, u64)> {
            prop_oneof![
                Just((format!("{v}"), v)),
                Just((format!("{v:#x}"), v)),
                Just((format!("0{v:o}"), v)),
                (0usize..6, any::<bool>()).prop_filter_map("fits", move |(i, upper)| {
                    let (c, shift) = [
                        ('k', 10),
                        ('m', 20),
                        ('g', 30),
                        ('t', 40),
                        ('p', 50),
                        ('e', 60),
                    ][i];
                    let c = if upper { c.to_ascii_uppercase() } else { c };
                    let value = v.checked_mul(1 << shift)?;
                    (v <= u64::MAX >> shift).then(|| (format!("{v}{c}"), value))
                }),
            ]
        }

        proptest! {
            #[test]
            fn explicit_sizes_round_trip(
                (l, lv) in (0u64..1 << 20).prop_flat_map(suffixed),
                (g, gv) in (0u64..1 << 20).prop_flat_map(suffixed),
                (p, pv) in (1u64..1 << 20).prop_flat_map(suffixed),
            ) {
                let value = format!("{l},{g},{p}");
                prop_assert_eq!(
                    parse_kho_scratch(&value),
                    Ok(ScratchSpec::Explicit { lowmem: lv, global: gv, per_node: pv })
                );
                let line = format!("a=b kho_scratch={value} c");
                prop_assert_eq!(parse_cmdline(&line).scratch, Some(ScratchSpec::Explicit {
                    lowmem: lv, global: gv, per_node: pv,
                }));
            }

            #[test]
            fn scale_round_trip(v in any::<u32>()) {
                prop_assert_eq!(
                    parse_kho_scratch(&format!("{v}%")),
                    Ok(ScratchSpec::Scale { percent: v })
                );
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
                let _ = parse_cmdline_bytes(&bytes);
                let _ = parse_kho_scratch_bytes(&bytes);
                let _ = parse_kho_bytes(&bytes);
                let _ = memparse(&bytes);
            }

            #[test]
            fn arbitrary_cmdline_like_text_never_panics(
                s in "[ \t\"=,%kho_scratchKMG0-9x-]{0,64}"
            ) {
                let c = parse_cmdline(&s);
                if let Some(Error::TrailingCharacters { token }) = c.error {
                    prop_assert!(!token.as_bytes().is_empty());
                }
            }
        }
    }
}
