/* aarch64 entry of the kho-stub: a position-independent arm64 Linux
 * "Image", linked at 0x40200000 and run wherever it was loaded.
 *
 * QEMU, our own kexec and Linux's kexec_file_load enter at offset 0 with the
 * MMU off, x0 = phys of the DTB, as the arm64 boot protocol specifies. Every
 * generation takes the same path; whether it is a KHO boot is in the DTB's
 * /chosen. The first thing it does is apply its own relocations.
 */

    .section .text.head, "ax"
    .global _head
_head:
    b       entry                   /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: QEMU loads at RAM + 2 MiB */
    .quad   __image_size            /* image_size, including .bss */
    .quad   0xa                     /* flags: LE, 4K pages, anywhere (bit 3) */
    .quad   0, 0, 0                 /* res2..res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 */

    .section .text.boot, "ax"
/* restart_entry(dtb): the same path again from a running generation
 * (restart.rs): relocation is idempotent, .bss and the stack start over. */
    .global restart_entry
restart_entry:
entry:
    mov     x19, x0                 /* DTB */
    /* Relocate: every R_AARCH64_RELATIVE slot gets addend + (where the image
     * runs - where it was linked); the addend stays in the table, so a copy
     * of a relocated image relocates again correctly. */
    adrp    x1, __image_start
    ldr     x2, =__image_start_abs
    sub     x1, x1, x2              /* x1 = delta */
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
5:  cmp     x2, x3
    b.hs    7f
    ldr     w4, [x2, #8]            /* ELF64_R_TYPE(r_info) */
    cmp     w4, #1027               /* R_AARCH64_RELATIVE */
    b.ne    6f
    ldr     x4, [x2]                /* r_offset */
    ldr     x5, [x2, #16]           /* r_addend */
    add     x4, x4, x1
    add     x5, x5, x1
    str     x5, [x4]
    add     x2, x2, #24
    b       5b
6:  udf     #0                      /* a relocation kind the stub cannot apply */
7:
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
    .ltorg

/* mmu_off_enter(entry, dtb, clean_start, clean_end): leave the stub's
 * memory setup (mmu.rs) and enter an arm64 Image as booting.rst asks.
 * Using registers only (no stack: it may lie in the range), clean and
 * invalidate [clean_start, clean_end) to the PoC (the caller cleaned every
 * other range the next kernel reads with its MMU off), then turn the MMU
 * and the data cache off, invalidate the instruction cache and the TLB,
 * mask all interrupts, and branch to `entry` with x0 = dtb, x1..x3 = 0.
 * Runs from the identity map, so turning the MMU off changes no address.
 * The next stub generation, Linux, and a restart in place all leave here. */
    .global mmu_off_enter
mmu_off_enter:
    msr     daifset, #0xf
    mov     x9, x0
    mrs     x10, ctr_el0
    ubfx    x10, x10, #16, #4       /* DminLine: log2(words) */
    mov     x11, #4
    lsl     x10, x11, x10           /* smallest D-cache line, bytes */
    sub     x11, x10, #1
    bic     x2, x2, x11
1:  cmp     x2, x3
    b.hs    2f
    dc      civac, x2
    add     x2, x2, x10
    b       1b
2:  dsb     sy
    mrs     x10, sctlr_el1
    bic     x10, x10, #1            /* M: MMU off */
    bic     x10, x10, #(1 << 2)     /* C: data cache off */
    msr     sctlr_el1, x10
    isb
    tlbi    vmalle1
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
