//! arm64 / device-tree handoff: the `/chosen` properties naming the KHO state.
//!
//! Each property is one (address, size) pair of **big-endian** cells, sized by
//! the root node's `#address-cells` and `#size-cells` (normally 2 + 2, so 16
//! bytes). Unlike the KHO FDT itself, these live in the ordinary boot DTB and
//! follow normal device-tree encoding.

/// Node that carries the handoff properties.
pub const CHOSEN_PATH: &str = "/chosen";
/// (phys, size) of the root KHO FDT; size is one page.
pub const PROP_KHO_FDT: &str = "linux,kho-fdt";
/// (phys, byte length) of the scratch descriptor array.
pub const PROP_KHO_SCRATCH: &str = "linux,kho-scratch";
/// Root property giving the number of 32-bit cells in an address.
pub const PROP_ADDRESS_CELLS: &str = "#address-cells";
/// Root property giving the number of 32-bit cells in a size.
pub const PROP_SIZE_CELLS: &str = "#size-cells";
/// Device-tree default for `#address-cells` when the root omits it.
pub const DEFAULT_ADDRESS_CELLS: u32 = 2;
/// Device-tree default for `#size-cells` when the root omits it.
pub const DEFAULT_SIZE_CELLS: u32 = 1;
