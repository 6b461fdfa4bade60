/* x86_64 entry points of the kho-stub (AT&T syntax). The image is
 * position-independent: linked at 1 MiB (where QEMU's PVH loader puts it),
 * it runs wherever a loader placed it and applies its own relocations.
 *
 * _start32: PVH entry (generation 0, booted by QEMU at the link address):
 *           32-bit protected mode, paging off, %ebx = phys of hvm_start_info.
 *           It uses the link-time addresses (the *_abs linker symbols).
 * _start64: Linux 64-bit boot protocol entry, at image offset 0x200 as a
 *           bzImage's is (entered by our own kexec or by Linux's
 *           kexec_file_load, anywhere): long mode, identity-mapped,
 *           %rsi = boot_params.
 * Both end in rust_entry(ptr, kind) with kind 0 = PVH, 1 = boot_params.
 * restart64(ptr, kind): the same path again from a running generation
 * (restart.rs): relocation is idempotent, .bss and the stack start over.
 */

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz */
    .long 8                 /* descsz: QEMU reads a 64-bit value for ELF64 */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad __start32_abs
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl %ebx, %edi                 /* start_info, kept across the switch */
    movl $__pml4_abs, %eax
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
    lgdt __gdt_ptr_abs
    ljmp $0x08, $__start64_pvh_abs

    .code64
    .global start64_pvh
start64_pvh:
    movl %edi, %edi                 /* zero-extend start_info */
    xorl %esi, %esi                 /* kind 0: PVH start_info */
    jmp common64

    /* The bzImage 64-bit entry is at offset 0x200 of the loaded image. */
    .org 0x200
    .global _start64
_start64:
    cli
    cld
    movq %rsi, %rdi                 /* boot_params */
    movl $1, %esi                   /* kind 1: Linux boot_params */

    .global restart64
restart64:
common64:
    movq %rdi, %r12
    movq %rsi, %r13
    /* Relocate: every R_X86_64_RELATIVE slot gets addend + (where the image
     * runs - where it was linked). The addend stays in the table, so this
     * is right however often a copy of the image is relocated again. */
    leaq __image_start(%rip), %rbx
    movabsq $__image_start_abs, %rax
    subq %rax, %rbx                 /* rbx = delta */
    leaq __rela_start(%rip), %rcx
    leaq __rela_end(%rip), %rdx
1:  cmpq %rdx, %rcx
    jae 3f
    cmpl $8, 8(%rcx)                /* ELF64_R_TYPE(r_info) == R_X86_64_RELATIVE */
    jne 2f
    movq (%rcx), %rax               /* r_offset */
    addq %rbx, %rax
    movq 16(%rcx), %r8              /* r_addend */
    addq %rbx, %r8
    movq %r8, (%rax)
    addq $24, %rcx
    jmp 1b
2:  ud2                             /* a relocation kind the stub cannot apply */
3:
    lgdt gdt_ptr(%rip)
    leaq pml4(%rip), %rax
    movq %rax, %cr3
    pushq $0x08                     /* reload CS from our GDT */
    leaq 4f(%rip), %rax
    pushq %rax
    lretq
4:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    leaq __bss_start(%rip), %rdi    /* zero .bss: every generation starts clean */
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    shrq $3, %rcx                   /* both ends are page-aligned */
    xorl %eax, %eax
    rep stosq
    leaq __stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movq %r12, %rdi
    movq %r13, %rsi
    call rust_entry
5:  hlt
    jmp 5b

/* kexec_enter(entry, boot_params): enter the next generation, a relocated
 * copy of this image in scratch, at its _start64 as Linux is entered. */
    .global kexec_enter
kexec_enter:
    cli
    jmp *%rdi                       /* %rsi = boot_params already */

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
/* Identity map of the first 16 GiB with 2 MiB pages (TCG's default CPU has
 * no 1 GiB pages): enough for hypervisor-scale guests with RAM above the
 * 32-bit PCI hole. The pointers between the tables are relocated with the
 * rest of the image at each entry; the 2 MiB entries are physical constants. */
    .global pml4
pml4:
    .quad pdpt + 0x3
    .fill 511, 8, 0
pdpt:
    .set table, 0
    .rept 16
    .quad pd + table + 0x3
    .set table, table + 0x1000
    .endr
    .fill 496, 8, 0
/* boot_pd: the 2 MiB entries. memtypes.rs rewrites their memory type
 * (PAT index: write-back for RAM, uncached for the rest) once the memory
 * map is known. */
    .global boot_pd
boot_pd:
pd:
    .set addr, 0
    .rept 8192
    .quad addr + 0x83               /* present | writable | 2 MiB page */
    .set addr, addr + 0x200000
    .endr

    .balign 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
gdt_end:
    .global gdt_ptr
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
