# The accelerator probe's x86 guest: a two-sector disk. SeaBIOS loads sector
# 1; it prints "R" on COM1, reads sector 2 through int 13h (the BIOS disk
# path GRUB's "GRUB loading" uses), enters 32-bit protected mode ("P"), then
# 64-bit long mode with a 2 MiB identity page, and prints the marker there.
# An accelerator that boots this runs real, protected and long mode code.
# Rebuild x86_64.bin with ./build.sh (GNU as + ld).
	.code16
	.globl _start
_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $0x7c00, %sp
	push %dx
	mov $0x3f8, %dx
	mov $'R', %al
	out %al, %dx
	pop %dx
	mov $0x0201, %ax        # read 1 sector
	mov $0x7e00, %bx        # to 0x7e00
	mov $0x0002, %cx        # cylinder 0, sector 2
	xor %dh, %dh            # head 0, dl = boot drive from the BIOS
	sti
	int $0x13
	cli
	jc fail
	lgdt gdtr
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmp $0x08, $pm32
fail:
	mov $0x3f8, %dx
	mov $'F', %al
	out %al, %dx
1:	hlt
	jmp 1b

	.p2align 3
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff   # 0x08: 32-bit code
	.quad 0x00cf92000000ffff   # 0x10: data
	.quad 0x00af9a000000ffff   # 0x18: 64-bit code
gdtr:
	.word gdtr - gdt - 1
	.long gdt

	.org 510
	.word 0xaa55

	.code32
pm32:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $0x3f8, %dx
	mov $'P', %al
	out %al, %dx
	mov $0x1000, %edi       # page tables at 0x1000 (PML4), 0x2000, 0x3000
	xor %eax, %eax
	mov $0xc00, %ecx
	rep stosl
	movl $0x2003, 0x1000
	movl $0x3003, 0x2000
	movl $0x83, 0x3000      # 2 MiB page at 0, present, writable
	mov $0x1000, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x20, %eax          # PAE
	mov %eax, %cr4
	mov $0xc0000080, %ecx   # EFER.LME
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000000, %eax    # paging
	mov %eax, %cr0
	ljmp $0x18, $lm64

	.code64
lm64:
	mov $msg, %esi
	mov $0x3f8, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	hlt
	jmp 2b
msg:
	.asciz "\nOSIMAGE-ACCEL-OK\n"
	.org 1024
