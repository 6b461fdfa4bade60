//! The seeds of the `rfc2024_handover` fuzz target (fuzz/seeds/), made
//! here so they stay valid inputs: each is `[ops, flags, ops × 4 bytes]`
//! and no damage, so the target builds, places and accepts a clean
//! handover before mutating. `KHO_WRITE_SEEDS=1 cargo test -p kho-ranges --test fuzz_seeds`
//! rewrites the files; otherwise they must match.

use std::path::PathBuf;

/// Op bytes: node (mod 4, bit 7 unused), page (u16 LE), pages - 1 in
/// bits 0–2 and NOINIT in bit 7.
fn seed(ops: &[(u8, u16, u8)], flags: u8) -> Vec<u8> {
    let mut v = vec![ops.len() as u8, flags];
    for &(node, page, len) in ops {
        v.push(node);
        v.extend_from_slice(&page.to_le_bytes());
        v.push(len);
    }
    v
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", seed(&[], 0)),
        ("one-root", seed(&[(0, 0, 0)], 0)),
        (
            "four-nodes",
            seed(&[(0, 1, 0), (1, 16, 3), (2, 64, 0x87), (3, 200, 7)], 0),
        ),
        (
            "adjacent-and-overlap",
            seed(&[(1, 10, 1), (1, 12, 0), (2, 11, 0), (3, 13, 0x81)], 0),
        ),
        (
            "many-small-buffer",
            seed(
                &(0..80u16)
                    .map(|i| ((i % 4) as u8, i * 3, (i % 2) as u8))
                    .collect::<Vec<_>>(),
                1,
            ),
        ),
    ]
}

#[test]
fn fuzz_seeds_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/rfc2024_handover");
    let write = std::env::var_os("KHO_WRITE_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (KHO_WRITE_SEEDS=1 writes it)", path.display())
            });
            assert_eq!(
                on_disk, bytes,
                "{name} is stale (KHO_WRITE_SEEDS=1 rewrites it)"
            );
        }
    }
}
