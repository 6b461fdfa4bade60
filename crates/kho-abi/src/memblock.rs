//! memblock `reserve_mem` preservation: the names of the `memblock` sub-blob.
//!
//! The sub-blob is a one-page FDT registered under the root child
//! [`SUBTREE_NAME`]:
//!
//! ```text
//! / {
//!     compatible = "memblock-v1";
//!     <region-name> {                  // the reserve_mem= name
//!         compatible = "reserve-mem-v1";
//!         start = <native u64>;
//!         size = <native u64>;
//!     };
//! };
//! ```

/// Root child name under which the memblock sub-blob is registered.
pub const SUBTREE_NAME: &str = "memblock";
/// `compatible` of the sub-blob's root.
pub const COMPATIBLE: &str = "memblock-v1";
/// `compatible` of each region node.
pub const REGION_COMPATIBLE: &str = "reserve-mem-v1";
/// Region property: native u64 start address.
pub const PROP_START: &str = "start";
/// Region property: native u64 size in bytes.
pub const PROP_SIZE: &str = "size";
/// Kernel command-line parameter declaring a region (`size:align:name`).
pub const CMDLINE_PARAM: &str = "reserve_mem";
