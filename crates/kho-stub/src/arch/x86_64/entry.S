/* x86_64 entry points of the kho-stub (AT&T syntax, linked at 1 MiB).
 *
 * _start32: PVH entry (generation 0, booted by QEMU): 32-bit protected mode,
 *           paging off, %ebx = phys of hvm_start_info.
 * _start64: Linux 64-bit boot protocol entry (generation N > 0, entered by
 *           our own kexec): long mode, identity-mapped, %rsi = boot_params.
 * Both end in rust_entry(ptr, kind) with kind 0 = PVH, 1 = boot_params.
 */

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz */
    .long 8                 /* descsz: QEMU reads a 64-bit value for ELF64 */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad _start32
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl %ebx, %edi                 /* start_info, kept across the switch */
    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax             /* CR4.PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx          /* EFER */
    rdmsr
    orl $(1 << 8), %eax             /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax           /* CR0.PG | CR0.PE */
    movl %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $start64_pvh

    .code64
start64_pvh:
    movl %edi, %edi                 /* zero-extend start_info */
    xorl %esi, %esi                 /* kind 0: PVH start_info */
    jmp common64

    .global _start64
_start64:
    cli
    cld
    lgdt gdt_ptr(%rip)
    movq $pml4, %rax
    movq %rax, %cr3
    pushq $0x08                     /* reload CS from our GDT */
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:
    movq %rsi, %rdi                 /* boot_params */
    movl $1, %esi                   /* kind 1: Linux boot_params */

common64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq %rdi, %r12
    movq %rsi, %r13
    movq $__bss_start, %rdi         /* zero .bss: every generation starts clean */
    movq $__bss_end, %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    movq $__stack_top, %rsp
    xorl %ebp, %ebp
    movq %r12, %rdi
    movq %r13, %rsi
    call rust_entry
2:  hlt
    jmp 2b

/* kexec_trampoline(src, dst, len, entry, boot_params): runs from a copy of
 * this image in scratch; copies the next image over its final address and
 * enters it as Linux is entered (%rsi = boot_params). Position-independent. */
    .global kexec_trampoline
kexec_trampoline:
    cli
    movq %rcx, %r9                  /* entry */
    movq %rdx, %rcx                 /* len */
    xchgq %rdi, %rsi                /* rdi = dst, rsi = src */
    cld
    rep movsb
    movq %r8, %rsi                  /* boot_params */
    xorl %edi, %edi
    jmp *%r9

/* linux_enter64(entry, boot_params): enter a Linux bzImage through the
 * 64-bit boot protocol (Documentation/arch/x86/boot.rst): interrupts off, a
 * GDT with flat __BOOT_CS (0x10, 64-bit code) and __BOOT_DS (0x18, data),
 * CS = __BOOT_CS, DS = ES = SS = __BOOT_DS, %rsi = boot_params, paging on
 * with this image's identity map. Runs from this image, which nothing
 * overwrites: the kernel was placed in scratch. */
    .global linux_enter64
linux_enter64:
    cli
    cld
    lgdt linux_gdt_ptr(%rip)
    pushq $0x10
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:
    movl $0x18, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    xorl %ebx, %ebx                 /* boot CPU */
    xorl %ebp, %ebp
    jmp *%rdi                       /* %rsi = boot_params already */

    .section .data.boot, "aw"
    .balign 4096
/* Identity map of the first 4 GiB with 2 MiB pages (TCG's default CPU has no
 * 1 GiB pages). Static data, never mutated by software, so a copy of the
 * running image carries the same tables. */
pml4:
    .quad pdpt + 0x3
    .fill 511, 8, 0
pdpt:
    .quad pd + 0x0000 + 0x3
    .quad pd + 0x1000 + 0x3
    .quad pd + 0x2000 + 0x3
    .quad pd + 0x3000 + 0x3
    .fill 508, 8, 0
pd:
    .set addr, 0
    .rept 2048
    .quad addr + 0x83               /* present | writable | 2 MiB page */
    .set addr, addr + 0x200000
    .endr

    .balign 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

/* The GDT Linux's 64-bit boot protocol asks for: __BOOT_CS = 0x10,
 * __BOOT_DS = 0x18, both flat. */
    .balign 16
linux_gdt:
    .quad 0
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x10: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x18: data */
linux_gdt_end:
linux_gdt_ptr:
    .word linux_gdt_end - linux_gdt - 1
    .quad linux_gdt
