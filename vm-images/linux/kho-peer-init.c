// SPDX-License-Identifier: MIT OR Apache-2.0
//
// kho-peer-init: the /init of the Linux peer's initramfs in kho-rs's VM
// scenarios. Written for kho-rs (not taken from Linux); built by
// `cargo xtask linux` with the Linux source's own nolibc, so it needs no C
// library: gcc -static -nostdlib -I <uapi headers> -I tools/include/nolibc.
//
// It reports, on the console, what the running kernel received through KHO
// (debugfs kho/in: the root FDT and every sub-blob with its size), then
// either kexecs the kernel named by /next/kernel (with /next/cmdline and,
// if present, /next/initrd; if /next/pause exists it first says
// "KHO-PEER pause" and waits for a byte on the console, so that the harness
// can dump guest memory with the next kernel loaded) or reboots, which ends QEMU under -no-reboot
// (a power-off needs ACPI, which the peer's small x86 config cannot load). Every line it prints
// starts with "KHO-PEER " so the harness can tell them from the kernel's.

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <linux/kexec.h>

#define IN_DIR "/debugfs/kho/in"
#define SUB_DIR IN_DIR "/sub_fdts"
#define CMDLINE_MAX 2048

static void say(const char *a, const char *b, long n)
{
	if (n >= 0)
		printf("KHO-PEER %s%s%ld\n", a, b, n);
	else
		printf("KHO-PEER %s%s\n", a, b);
}

// Size of a debugfs blob: the bytes it reads back (debugfs reports a size
// of 0 for blobs, so seeking to the end tells nothing).
static long file_size(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY, 0);
	long size = 0, n;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		size += n;
	close(fd);
	return n < 0 ? -1 : size;
}

// dst = a + "/" + b, cut to fit; nolibc has no strcat.
static void join(char *dst, unsigned long max, const char *a, const char *b)
{
	unsigned long n = 0;

	while (*a && n + 1 < max)
		dst[n++] = *a++;
	if (n + 1 < max)
		dst[n++] = '/';
	while (*b && n + 1 < max)
		dst[n++] = *b++;
	dst[n] = 0;
}

static void report_incoming(void)
{
	char path[512];
	struct dirent entry, *e;
	DIR *dir;
	long size = file_size(IN_DIR "/fdt");

	if (size < 0) {
		say("in none", "", -1);
		return;
	}
	say("in fdt bytes=", "", size);
	dir = opendir(SUB_DIR);
	if (!dir) {
		say("in error=", "no sub_fdts directory", -1);
		return;
	}
	while (readdir_r(dir, &entry, &e) == 0 && e) {
		if (e->d_name[0] == '.')
			continue;
		join(path, sizeof(path), SUB_DIR, e->d_name);
		printf("KHO-PEER in subtree name=%s bytes=%ld\n", e->d_name,
		       file_size(path));
	}
	closedir(dir);
}

// Read a whole small file into buf (NUL-terminated, trailing newline cut).
static long read_text(const char *path, char *buf, long max)
{
	int fd = open(path, O_RDONLY, 0);
	long n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, max - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	return n;
}

// kexec_file_load the kernel in /next, if there is one. Returns only on
// failure or when there is nothing to load.
static void kexec_next(void)
{
	static char cmdline[CMDLINE_MAX];
	int kernel = open("/next/kernel", O_RDONLY, 0);
	int initrd;
	unsigned long flags = 0;
	long len;

	if (kernel < 0)
		return;
	len = read_text("/next/cmdline", cmdline, sizeof(cmdline));
	if (len < 0) {
		say("kexec error=", "no /next/cmdline", -1);
		return;
	}
	initrd = open("/next/initrd", O_RDONLY, 0);
	if (initrd < 0)
		flags |= KEXEC_FILE_NO_INITRAMFS;
	printf("KHO-PEER kexec cmdline=\"%s\"\n", cmdline);
	if (syscall(__NR_kexec_file_load, kernel, initrd, len + 1, cmdline,
		    flags) < 0) {
		say("kexec error=", "kexec_file_load failed", -1);
		return;
	}
	say("kexec loaded", "", -1);
	if (access("/next/pause", F_OK) == 0) {
		char byte;

		say("pause", "", -1);
		if (read(0, &byte, 1) != 1)
			say("kexec error=", "no byte after pause", -1);
	}
	reboot(RB_KEXEC);
	say("kexec error=", "reboot(RB_KEXEC) returned", -1);
}

int main(void)
{
	if (mount("debugfs", "/debugfs", "debugfs", 0, NULL) < 0)
		say("error=", "cannot mount debugfs", -1);
	if (mount("proc", "/proc", "proc", 0, NULL) < 0)
		say("error=", "cannot mount proc", -1);
	say("start", "", -1);
	report_incoming();
	kexec_next();
	say("done", "", -1);
	reboot(RB_AUTOBOOT);
	return 0;
}
