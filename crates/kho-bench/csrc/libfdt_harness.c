//! The libfdt side of the FDT benchmarks: the same root KHO FDT written with
//! libfdt's sequential-write API and read back by walking the root's
//! children, each a single call so the Rust side measures libfdt, not FFI.
//!
//! KHO values are native-endian u64s, written and read with memcpy, as
//! Linux does (fdt_property/fdt_getprop with sizeof(u64)), never as
//! big-endian cells.

#include <stdint.h>
#include <string.h>

#include <libfdt.h>

/*
 * Write the root KHO FDT into buf (bufsize bytes) as Linux's
 * kho_add_subtree leaves it, one child per name: root `compatible` and
 * `preserved-memory-map`, then per child `preserved-data` and, when
 * sizes is not NULL, `blob-size`. Returns the FDT's totalsize, or a
 * negative libfdt error.
 */
int kho_libfdt_build(void *buf, int bufsize, const char *compatible, uint64_t map,
		     int n, const char *const *names, const uint64_t *data,
		     const uint64_t *sizes)
{
	int err = fdt_create(buf, bufsize);

	err = err ? err : fdt_finish_reservemap(buf);
	err = err ? err : fdt_begin_node(buf, "");
	err = err ? err : fdt_property_string(buf, "compatible", compatible);
	err = err ? err : fdt_property(buf, "preserved-memory-map", &map, sizeof(map));
	for (int i = 0; !err && i < n; i++) {
		err = fdt_begin_node(buf, names[i]);
		err = err ? err : fdt_property(buf, "preserved-data", &data[i], sizeof(data[i]));
		if (!err && sizes)
			err = fdt_property(buf, "blob-size", &sizes[i], sizeof(sizes[i]));
		err = err ? err : fdt_end_node(buf);
	}
	err = err ? err : fdt_end_node(buf);
	err = err ? err : fdt_finish(buf);
	return err ? err : (int)fdt_totalsize(buf);
}

static int read_u64(const void *fdt, int node, const char *name, uint64_t *out)
{
	int len;
	const void *p = fdt_getprop(fdt, node, name, &len);

	if (!p)
		return len;
	if (len != sizeof(*out))
		return -FDT_ERR_BADVALUE;
	memcpy(out, p, sizeof(*out));
	return 0;
}

/*
 * Read a root KHO FDT as Linux's kho_populate and kho_retrieve_subtree do:
 * fdt_check_header, the root's compatible, `preserved-memory-map` (8
 * bytes, non-zero), then every child of the root: its name, its
 * `preserved-data` (8 bytes, non-zero) and, when present, its `blob-size`
 * (8 bytes). *sum receives the sum of every value and name length read, so
 * nothing can be optimised away. Returns the number of children, or a
 * negative libfdt error.
 */
int kho_libfdt_parse(const void *fdt, const char *compatible, uint64_t *sum)
{
	uint64_t acc = 0, v = 0;
	int child, count = 0, err, len;

	err = fdt_check_header(fdt);
	if (err)
		return err;
	if (fdt_node_check_compatible(fdt, 0, compatible))
		return -FDT_ERR_BADMAGIC;
	err = read_u64(fdt, 0, "preserved-memory-map", &v);
	if (err)
		return err;
	if (!v)
		return -FDT_ERR_BADVALUE;
	acc += v;
	fdt_for_each_subnode(child, fdt, 0) {
		if (!fdt_get_name(fdt, child, &len))
			return len;
		acc += (uint64_t)len;
		err = read_u64(fdt, child, "preserved-data", &v);
		if (err)
			return err;
		if (!v)
			return -FDT_ERR_BADVALUE;
		acc += v;
		err = read_u64(fdt, child, "blob-size", &v);
		if (err == 0)
			acc += v;
		else if (err != -FDT_ERR_NOTFOUND)
			return err;
		count++;
	}
	if (child != -FDT_ERR_NOTFOUND)
		return child;
	*sum = acc;
	return count;
}
