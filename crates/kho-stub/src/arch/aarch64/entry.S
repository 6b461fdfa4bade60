/* aarch64 entry of the kho-stub: an arm64 Linux "Image" linked at 0x40200000.
 *
 * QEMU (and our own kexec) enter at offset 0 with the MMU off, x0 = phys of
 * the DTB, as the arm64 boot protocol specifies. Every generation takes the
 * same path; whether it is a KHO boot is in the DTB's /chosen.
 */

    .section .text.head, "ax"
    .global _head
_head:
    b       entry                   /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: QEMU loads at RAM + 2 MiB */
    .quad   __image_size            /* image_size, including .bss */
    .quad   0xa                     /* flags: LE, 4K pages, anywhere */
    .quad   0, 0, 0                 /* res2..res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 */

    .section .text.boot, "ax"
entry:
    mov     x19, x0                 /* DTB */
    mov     x1, #(3 << 20)          /* CPACR_EL1.FPEN: no FP/SIMD traps */
    msr     cpacr_el1, x1
    isb
    adrp    x1, vectors
    add     x1, x1, :lo12:vectors
    msr     vbar_el1, x1
    isb
    adrp    x1, __bss_start         /* zero .bss: every generation starts clean */
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mov     x0, x19
    bl      rust_entry
3:  wfe
    b       3b

/* kexec_trampoline(src, dst, len, entry, dtb): runs from the staged copy in
 * scratch; copies it over the running image (16 bytes at a time: both ends
 * are page-aligned and len is a page multiple), makes the new code visible
 * to instruction fetch and enters it as Linux is entered (x0 = DTB,
 * x1..x3 = 0). Position-independent. */
    .global kexec_trampoline
kexec_trampoline:
    mov     x9, x3
1:  cbz     x2, 2f
    ldp     x5, x6, [x0], #16
    stp     x5, x6, [x1], #16
    sub     x2, x2, #16
    b       1b
2:  dsb     sy
    ic      iallu
    dsb     sy
    isb
    mov     x0, x4
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x9

/* linux_enter(entry, dtb): enter an arm64 Linux Image as booting.rst asks,
 * after the caller cleaned the kernel, DTB and initrd to the PoC: all
 * interrupts masked, no stale instruction cache entries, MMU off (it never
 * was on), x0 = DTB, x1..x3 = 0. */
    .global linux_enter
linux_enter:
    msr     daifset, #0xf
    mov     x9, x0
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    mov     x0, x1
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x9

/* Exception vectors: any exception reports itself and exits with failure
 * (rust_exception never returns), instead of looping silently. */
    .balign 2048
vectors:
    .set    idx, 0
    .rept   16
    .balign 128
    mov     x0, #idx
    b       exception_common
    .set    idx, idx + 1
    .endr

exception_common:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      rust_exception
4:  wfe
    b       4b
