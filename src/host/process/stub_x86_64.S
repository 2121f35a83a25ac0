/* The stub's entry points (see stub.c): process entry, the guest's exit
 * entry, entering the guest, and the signal restorer. */
#include "host/process/stub.h"

#define CPU(off) (mote_mailbox + MOTE_MB_CPU + (off))(%rip)
#define GPR(i) CPU(8 * (i))

	.section .text.mote_stub_start, "ax"
	.globl _start
_start:
	xor %ebp, %ebp
	mov %rsp, %rdi
	and $-16, %rsp
	call mote_stub_main
	ud2

	.text
/* The exit entry. The guest called it (after stepping over its red zone)
 * with the port in %edi; [rsp] is its return address. Save everything as
 * the state "after the call returned", report, then load the state the
 * host left, which may be another one entirely (a restore). */
	.globl mote_stub_exit
	.type mote_stub_exit, @function
mote_stub_exit:
	mov %rax, GPR(0)
	mov %rcx, GPR(1)
	mov %rdx, GPR(2)
	mov %rbx, GPR(3)
	mov %rbp, GPR(5)
	mov %rsi, GPR(6)
	mov %rdi, GPR(7)
	mov %r8, GPR(8)
	mov %r9, GPR(9)
	mov %r10, GPR(10)
	mov %r11, GPR(11)
	mov %r12, GPR(12)
	mov %r13, GPR(13)
	mov %r14, GPR(14)
	mov %r15, GPR(15)
	pushfq
	pop %rax
	mov %rax, CPU(MOTE_CPU_RFLAGS)
	mov (%rsp), %rax
	mov %rax, CPU(MOTE_CPU_RIP)
	lea 8(%rsp), %rax
	mov %rax, GPR(4)
	fxsave64 CPU(MOTE_CPU_FXSAVE)
	cmpl $0, mote_stub_have_fsgsbase(%rip)
	je 1f
	rdfsbase %rax
	mov %rax, CPU(MOTE_CPU_FS_BASE)
	rdgsbase %rax
	mov %rax, CPU(MOTE_CPU_GS_BASE)
1:	lea stub_stack_top(%rip), %rsp
	cld
	/* %edi still holds the port. */
	call mote_stub_direct_exit
	jmp mote_stub_enter_guest
	.size mote_stub_exit, . - mote_stub_exit

/* Load the mailbox's CPU state and jump to it: popfq, then rsp, then an
 * indirect jump. iretq would set rip, rflags and rsp at once, but QEMU's
 * emulator (TCG) reads its frame with supervisor accesses, which SMAP
 * refuses, and the kernel under it oopses; so iretq is kept for a guest
 * with the trap flag set, whose trap must come after its own instruction. */
/* Every general register but rsp from the mailbox; no flag changes. */
	.macro load_gprs
	mov GPR(0), %rax
	mov GPR(1), %rcx
	mov GPR(2), %rdx
	mov GPR(3), %rbx
	mov GPR(5), %rbp
	mov GPR(6), %rsi
	mov GPR(7), %rdi
	mov GPR(8), %r8
	mov GPR(9), %r9
	mov GPR(10), %r10
	mov GPR(11), %r11
	mov GPR(12), %r12
	mov GPR(13), %r13
	mov GPR(14), %r14
	mov GPR(15), %r15
	.endm

	.globl mote_stub_enter_guest
	.type mote_stub_enter_guest, @function
mote_stub_enter_guest:
	lea stub_stack_top(%rip), %rsp
	fxrstor64 CPU(MOTE_CPU_FXSAVE)
	cmpl $0, mote_stub_have_fsgsbase(%rip)
	je 1f
	mov CPU(MOTE_CPU_FS_BASE), %rax
	wrfsbase %rax
	mov CPU(MOTE_CPU_GS_BASE), %rax
	wrgsbase %rax
1:	mov CPU(MOTE_CPU_RFLAGS), %rax
	and $0x240dd5, %rax       /* MOTE_RFLAGS_GUEST */
	or $0x202, %rax           /* IF and the reserved bit, as the kernel keeps them */
	test $0x100, %eax         /* TF */
	jnz 2f
	push %rax
	load_gprs
	popfq                     /* mov and jmp change no flag */
	mov GPR(4), %rsp
	jmp *CPU(MOTE_CPU_RIP)
2:	mov %ss, %ecx
	push %rcx                 /* ss */
	push GPR(4)               /* rsp */
	push %rax                 /* rflags */
	mov %cs, %eax
	push %rax                 /* cs */
	push CPU(MOTE_CPU_RIP)    /* rip */
	load_gprs
	iretq
	.size mote_stub_enter_guest, . - mote_stub_enter_guest

	.globl mote_stub_restorer
	.type mote_stub_restorer, @function
mote_stub_restorer:
	mov $15, %eax /* __NR_rt_sigreturn */
	syscall
	ud2
	.size mote_stub_restorer, . - mote_stub_restorer

/* long mote_stub_drop_setup(addr, len): unmap the setup code's pages. The
 * last 16 bytes of those pages (stub.ld), `syscall` their last two, so the
 * call returns into the first byte of the code that stays: a `ret`. */
	.section .text.mote_stub_setup_tail, "ax"
	.globl mote_stub_drop_setup
	.type mote_stub_drop_setup, @function
mote_stub_drop_setup:
	.fill 9, 1, 0x90
	mov $11, %eax /* __NR_munmap */
	syscall
	.size mote_stub_drop_setup, . - mote_stub_drop_setup
	.if . - mote_stub_drop_setup - 16
	.error "mote_stub_drop_setup must be 16 bytes (stub.ld)"
	.endif

	.section .text.mote_stub_setup_return, "ax"
	ret

	.bss
	.balign 16
	.skip 65536
stub_stack_top:

	.section .note.GNU-stack, "", @progbits
