//! Shared by the integration tests: the crate's own test support (feature
//! `test-util`, enabled for the tests by the self dev-dependency), so the
//! ELF-core writer and the fixtures exist once.

#![allow(unused_imports)]

pub use kho_inspect::test_util::{
    BOMB_FDT, BOMB_ROOT, Load, RAM_BASE, RAM_SIZE, bomb, elf_core, handover, sparse_core,
};
