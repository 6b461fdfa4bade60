//! The `reserve_mem=size:align:name` kernel parameter, parsed as upstream's
//! `reserve_mem()` does, and the region-name rules.

use kho_scratch::memparse;

use crate::error::token;
use crate::{Error, Result};

/// `RESERVE_MEM_NAME_SIZE`: bytes of a region name including its NUL.
pub const RESERVE_MEM_NAME_SIZE: usize = 16;
/// The longest region name, in bytes (`RESERVE_MEM_NAME_SIZE - 1`).
pub const MAX_NAME_LEN: usize = RESERVE_MEM_NAME_SIZE - 1;
/// `RESERVE_MEM_MAX_ENTRIES`: how many `reserve_mem=` regions upstream's
/// table holds. This crate does not keep the table; callers that do can
/// refuse the ninth region with this constant, as upstream does (-EBUSY).
pub const RESERVE_MEM_MAX_ENTRIES: usize = 8;
/// `SMP_CACHE_BYTES` on x86_64 and arm64: the smallest alignment
/// `reserve_mem=` uses (smaller values, zero included, are raised to it).
pub const SMP_CACHE_BYTES: u64 = 64;

/// A parsed `reserve_mem=` value: reserve `size` bytes aligned to `align`
/// and call them `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReserveMem<'a> {
    /// Bytes to reserve (never zero).
    pub size: u64,
    /// Alignment of the start, a power of two, at least [`SMP_CACHE_BYTES`].
    pub align: u64,
    /// The region's name: 1 to [`MAX_NAME_LEN`] bytes, not only whitespace.
    pub name: &'a str,
}

/// Parses the value of a `reserve_mem=` parameter, `size:align:name`, with
/// upstream's rules and a named error for each way it can be wrong.
///
/// - `size` and `align` are read by the kernel's `memparse` (decimal, `0x`
///   hex or leading-`0` octal, then an optional `K`/`M`/`G`/`T`/`P`/`E`
///   suffix); `size` must be present and non-zero, `align` may be empty.
/// - An alignment below [`SMP_CACHE_BYTES`] (zero included) becomes
///   [`SMP_CACHE_BYTES`]; the result must be a power of two (upstream does
///   not check, and misaligns).
/// - `name` is everything after the second `:` (it may contain `:`): 1 to
///   [`MAX_NAME_LEN`] bytes and not only whitespace. Whether it can be
///   written into the sub-blob is checked later, by
///   [`Region::new`](crate::Region::new).
///
/// Upstream's other refusals need the kernel's state and are the caller's:
/// a ninth region ([`RESERVE_MEM_MAX_ENTRIES`]) and a name already used.
///
/// ```
/// use kho_memblock::{parse_reserve_mem, ReserveMem};
///
/// assert_eq!(
///     parse_reserve_mem("12M:4096:oops")?,
///     ReserveMem { size: 12 << 20, align: 4096, name: "oops" },
/// );
/// // An empty or small alignment becomes 64.
/// assert_eq!(parse_reserve_mem("0x2000::trace")?.align, 64);
/// assert_eq!(
///     parse_reserve_mem("1M:4K").unwrap_err().to_string(),
///     "reserve_mem: expected ':' and a name after the alignment in \"4K\"",
/// );
/// # Ok::<(), kho_memblock::Error>(())
/// ```
pub fn parse_reserve_mem(value: &str) -> Result<ReserveMem<'_>> {
    let bytes = value.as_bytes();
    let (size, used) = read_number(bytes)?;
    if used == 0 {
        return Err(Error::MissingSize {
            token: token(value),
        });
    }
    if size == 0 {
        return Err(Error::ZeroSize {
            token: token(&bytes[..used]),
        });
    }
    let rest = &bytes[used..];
    let Some(rest) = rest.strip_prefix(b":") else {
        return Err(Error::ExpectedColonAfterSize { token: token(rest) });
    };
    let (align, used) = read_number(rest)?;
    let Some(name) = rest[used..].strip_prefix(b":") else {
        return Err(Error::ExpectedColonAfterAlign { token: token(rest) });
    };
    let align = align.max(SMP_CACHE_BYTES);
    if !align.is_power_of_two() {
        return Err(Error::AlignNotPowerOfTwo {
            token: token(&rest[..used]),
            align,
        });
    }
    // `name` is a suffix of `value` that starts after an ASCII ':', so the
    // split is on a character boundary.
    let name = value.get(value.len() - name.len()..).unwrap_or_default();
    check_cmdline_name(name)?;
    Ok(ReserveMem { size, align, name })
}

/// `memparse`, with its overflow error renamed for this parameter.
fn read_number(s: &[u8]) -> Result<(u64, usize)> {
    memparse(s).map_err(|e| match e {
        kho_scratch::Error::SizeOverflow { token } => Error::NumberOverflow { token },
        _ => Error::NumberOverflow { token: token(s) },
    })
}

/// The kernel's `isspace` on ASCII (space, `\t`, `\n`, `\v`, `\f`, `\r`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Upstream's name rules: 1 to [`MAX_NAME_LEN`] bytes, not only whitespace.
pub(crate) fn check_cmdline_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::NameTooLong {
            name: token(name),
            len: name.len(),
        });
    }
    if name.bytes().all(is_space) {
        return Err(Error::BlankName { name: token(name) });
    }
    Ok(())
}

/// Upstream's rules plus what the FDT writer accepts as a node name: a
/// letter first, then `A-Z a-z 0-9 , . _ + -` (no `@` unit address, which
/// upstream's name lookup would treat specially).
pub(crate) fn check_node_name(name: &str) -> Result<()> {
    check_cmdline_name(name)?;
    let b = name.as_bytes();
    let ok = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b',' | b'.' | b'_' | b'+' | b'-'));
    if !ok {
        return Err(Error::InvalidName { name: token(name) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> (u64, u64, &str) {
        let r = parse_reserve_mem(v).unwrap();
        (r.size, r.align, r.name)
    }

    #[test]
    fn values_upstream_accepts() {
        assert_eq!(ok("12M:4096:oops"), (12 << 20, 4096, "oops"));
        assert_eq!(ok("1G:2M:kho_log"), (1 << 30, 2 << 20, "kho_log"));
        assert_eq!(ok("0x1000:0x1000:a"), (0x1000, 0x1000, "a"));
        assert_eq!(ok("010k:0:x"), (8 << 10, 64, "x"));
        assert_eq!(ok("4096::x"), (4096, 64, "x"));
        assert_eq!(ok("4096:32:x"), (4096, 64, "x"));
        assert_eq!(ok("4096:64:x"), (4096, 64, "x"));
        // The name is the rest: ':' and spaces are part of it.
        assert_eq!(ok("1M:4K:a:b"), (1 << 20, 4096, "a:b"));
        assert_eq!(ok("1M:4K: x "), (1 << 20, 4096, " x "));
        assert_eq!(
            ok("1M:4K:fifteen_chars_"),
            (1 << 20, 4096, "fifteen_chars_")
        );
        assert_eq!(ok("1e:4K:e"), (1 << 60, 4096, "e"));
    }

    #[test]
    fn each_refusal_is_named() {
        let e = |v: &str| parse_reserve_mem(v).unwrap_err();
        assert_eq!(e(""), Error::MissingSize { token: token("") });
        assert_eq!(
            e(":4K:a"),
            Error::MissingSize {
                token: token(":4K:a")
            }
        );
        assert_eq!(e("0:4K:a"), Error::ZeroSize { token: token("0") });
        assert_eq!(e("K:4K:a"), Error::ZeroSize { token: token("K") });
        assert_eq!(
            e("1M,4K:a"),
            Error::ExpectedColonAfterSize {
                token: token(",4K:a")
            }
        );
        assert_eq!(e("1M"), Error::ExpectedColonAfterSize { token: token("") });
        assert_eq!(
            e("1M:4K"),
            Error::ExpectedColonAfterAlign { token: token("4K") }
        );
        assert_eq!(
            e("1M:4Q:a"),
            Error::ExpectedColonAfterAlign {
                token: token("4Q:a")
            }
        );
        assert_eq!(
            e("1M:100:a"),
            Error::AlignNotPowerOfTwo {
                token: token("100"),
                align: 100
            }
        );
        assert_eq!(
            e("99999999999999999999:4K:a"),
            Error::NumberOverflow {
                token: token("99999999999999999999")
            }
        );
        assert_eq!(
            e("1M:17E:a"),
            Error::NumberOverflow {
                token: token("17E")
            }
        );
        assert_eq!(e("1M:4K:"), Error::EmptyName);
        assert_eq!(
            e("1M:4K:sixteen_chars_xx"),
            Error::NameTooLong {
                name: token("sixteen_chars_xx"),
                len: 16
            }
        );
        assert_eq!(
            e("1M:4K: \t "),
            Error::BlankName {
                name: token(" \t ")
            }
        );
    }

    #[test]
    fn node_names() {
        for good in ["log", "kho_log", "a.b,c+d-e", "Z9"] {
            check_node_name(good).unwrap();
        }
        for bad in ["9log", "_x", "a b", "a@1", "a:b", "a/b", "é"] {
            assert_eq!(
                check_node_name(bad),
                Err(Error::InvalidName { name: token(bad) })
            );
        }
        assert_eq!(check_node_name(""), Err(Error::EmptyName));
    }
}
