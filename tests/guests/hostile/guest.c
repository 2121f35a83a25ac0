/* The hostile test guest: every function misbehaves in exactly one way
 * (faults, exits the host does not expect, forged messages, oversized
 * results...). tests/test_hostile.c calls one function per test and checks
 * the exact error the host reports. Functions that report addresses exist so
 * the test can match the address in the host's error detail. */
#include <mote/guest.h>

#include "common/abi.h"

extern const struct mote_boot_info *mote__boot;

/* ---- Faulting instructions at known addresses ----
 * Each routine has a global label on the instruction that faults, so the
 * test can compare the reported rip with the label's address. */
void hostile_div0(void);
void hostile_ud2(void);
void hostile_int3(void);
void hostile_hlt(void);
void hostile_mov_cr3(void);
void hostile_wrmsr(void);
extern const char hostile_div0_at[], hostile_ud2_at[], hostile_int3_at[], hostile_hlt_at[],
    hostile_mov_cr3_at[], hostile_wrmsr_at[];

__asm__(".text\n"
        ".globl hostile_div0, hostile_div0_at\n"
        "hostile_div0:\n"
        "	mov $1, %eax\n"
        "	xor %edx, %edx\n"
        "	xor %ecx, %ecx\n"
        "hostile_div0_at:\n"
        "	div %ecx\n"
        "	ret\n"
        ".globl hostile_ud2, hostile_ud2_at\n"
        "hostile_ud2:\n"
        "hostile_ud2_at:\n"
        "	ud2\n"
        "	ret\n"
        ".globl hostile_int3, hostile_int3_at\n"
        "hostile_int3:\n"
        "hostile_int3_at:\n"
        "	int3\n"
        "	ret\n"
        ".globl hostile_hlt, hostile_hlt_at\n"
        "hostile_hlt:\n"
        "hostile_hlt_at:\n"
        "	hlt\n"
        "	ret\n"
        ".globl hostile_mov_cr3, hostile_mov_cr3_at\n"
        "hostile_mov_cr3:\n"
        "	xor %eax, %eax\n"
        "hostile_mov_cr3_at:\n"
        "	mov %rax, %cr3\n"
        "	ret\n"
        ".globl hostile_wrmsr, hostile_wrmsr_at\n"
        "hostile_wrmsr:\n"
        "	mov $0xc0000080, %ecx\n" /* EFER */
        "	xor %eax, %eax\n"
        "	xor %edx, %edx\n"
        "hostile_wrmsr_at:\n"
        "	wrmsr\n"
        "	ret\n");

/* ---- Liveness ---- */
MOTE_FN2(i32, add, i32, a, i32, b)
{
	return a + b;
}

MOTE_FN1(u64, echo_len, bytes, b)
{
	return b.len;
}

/* ---- Never returns ---- */
static volatile uint64_t spin_count;
MOTE_FN0(void, spin)
{
	for (;;)
		spin_count++;
}

/* ---- Memory ---- */
MOTE_FN1(void, write_addr, u64, addr)
{
	*(volatile uint8_t *)(uintptr_t)addr = 0x5a;
}

MOTE_FN1(u64, read_addr, u64, addr)
{
	return *(volatile const uint8_t *)(uintptr_t)addr;
}

MOTE_FN1(void, exec_addr, u64, addr)
{
	void (*fn)(void) = (void (*)(void))(uintptr_t)addr;
	fn();
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep the frame */
}

/* The function whose code write_code overwrites. */
static __attribute__((noinline)) int code_target(int x)
{
	return x * 3 + 1;
}

MOTE_FN0(u64, code_addr)
{
	return (uint64_t)(uintptr_t)&code_target;
}

MOTE_FN0(void, write_code)
{
	volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)&code_target;
	p[0] = 0xc3; /* ret */
}

static const char rodata_text[] = "constant text";
MOTE_FN0(u64, rodata_addr)
{
	return (uint64_t)(uintptr_t)rodata_text;
}

MOTE_FN0(void, write_rodata)
{
	volatile char *p = (volatile char *)(uintptr_t)rodata_text;
	p[0] = 'X';
}

/* A `ret` in writable data: executing it must fault (NX). */
static uint8_t data_code[16] = {0xc3};
MOTE_FN0(u64, data_addr)
{
	return (uint64_t)(uintptr_t)data_code;
}

MOTE_FN0(u64, input_addr)
{
	return mote__boot->in_buf;
}

/* Reading the input buffer is allowed: the CALL message is there. */
MOTE_FN0(u32, read_input)
{
	const volatile struct mote_msg *m = (const volatile struct mote_msg *)mote__boot->in_buf;
	return m->magic;
}

MOTE_FN0(void, write_input)
{
	volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)mote__boot->in_buf;
	p[0] = 0xdeadbeef;
}

/* ---- Stack overflow: no tail call, a 1 KiB frame (under one page, so the
 * guard page is always touched, never skipped). ---- */
static volatile uint64_t recursion_limit = ~0ull;
static __attribute__((noinline)) uint64_t recurse(uint64_t depth)
{
	volatile uint8_t buf[1024];
	buf[0] = (uint8_t)depth;
	buf[sizeof(buf) - 1] = (uint8_t)depth;
	if (depth >= recursion_limit)
		return buf[0];
	return recurse(depth + 1) + buf[0] + buf[sizeof(buf) - 1];
}

MOTE_FN0(u64, stack_overflow)
{
	return recurse(0);
}

/* ---- CPU exceptions ---- */
MOTE_FN0(void, div_zero)
{
	hostile_div0();
}

MOTE_FN0(void, do_ud2)
{
	hostile_ud2();
}

MOTE_FN0(void, do_int3)
{
	hostile_int3();
}

MOTE_FN0(void, do_hlt)
{
	hostile_hlt();
}

MOTE_FN0(void, do_mov_cr3)
{
	hostile_mov_cr3();
}

MOTE_FN0(void, do_wrmsr)
{
	hostile_wrmsr();
}

/* Address of the faulting instruction of routine `which`. */
MOTE_FN1(u64, insn_addr, str, which)
{
	static const struct {
		const char *name;
		const char *at;
	} t[] = {
	    {"div0", hostile_div0_at}, {"ud2", hostile_ud2_at},         {"int3", hostile_int3_at},
	    {"hlt", hostile_hlt_at},   {"mov_cr3", hostile_mov_cr3_at}, {"wrmsr", hostile_wrmsr_at},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].name, which.ptr) == 0)
			return (uint64_t)(uintptr_t)t[i].at;
	return 0;
}

/* ---- Exits the host does not expect ---- */
MOTE_FN0(void, out_port42)
{
	__asm__ volatile("outb %%al, %w0" : : "Nd"((uint16_t)0x42), "a"(0) : "memory");
}

MOTE_FN0(u32, in_port42)
{
	uint8_t v;
	__asm__ volatile("inb %w1, %0" : "=a"(v) : "Nd"((uint16_t)0x42) : "memory");
	return v;
}

/* Pretend to be the #UD exception stub. */
MOTE_FN0(void, fake_exception)
{
	__asm__ volatile("outb %%al, %w0"
	                 :
	                 : "Nd"((uint16_t)(MOTE_PORT_EXC_BASE + 6)), "a"(0)
	                 : "memory");
}

/* ---- Host calls gone wrong ---- */
static int last_host_rc = 12345;

MOTE_FN0(i32, call_unknown_host)
{
	mote_value r;
	last_host_rc = mote_host_call("no_such_host_fn", MOTE_I32, &r, 0, 0);
	return last_host_rc;
}

/* The test registers host_add(i32, i32) -> i32; call it with an f64. */
MOTE_FN0(i32, call_host_wrong_types)
{
	mote_value args[1] = {mote_val_f64(1.5)};
	mote_value r;
	last_host_rc = mote_host_call("host_add", MOTE_I32, &r, args, 1);
	return last_host_rc;
}

MOTE_FN2(i32, call_host_add, i32, a, i32, b)
{
	mote_value args[2] = {mote_val_i32(a), mote_val_i32(b)};
	mote_value r;
	last_host_rc = mote_host_call("host_add", MOTE_I32, &r, args, 2);
	return last_host_rc ? last_host_rc : r.v.i32;
}

MOTE_FN0(i32, last_rc)
{
	return last_host_rc;
}

/* ---- Oversized result: 1 MiB (bss, costs nothing until touched) ---- */
static uint8_t big[1u << 20];
MOTE_FN0(bytes, big_result)
{
	return (mote_buf){big, sizeof(big)};
}

/* ---- Forged messages, then an exit ---- */
static void exit_to(uint16_t port)
{
	__asm__ volatile("outb %%al, %w0" : : "Nd"(port), "a"(0) : "memory");
}

MOTE_FN1(void, forge, u32, mode)
{
	uint8_t *out = (uint8_t *)(uintptr_t)mote__boot->out_buf;
	struct mote_msg *m = (struct mote_msg *)out;
	struct mote_wire_value *w = (struct mote_wire_value *)(m + 1);
	switch (mode) {
	case 0: /* garbage, then DONE */
		for (uint32_t i = 0; i < 4096; i++)
			out[i] = (uint8_t)(i * 151 + 7);
		exit_to(MOTE_PORT_DONE);
		break;
	case 1: /* a RESULT bigger than the output buffer */
		m->magic = MOTE_MSG_MAGIC;
		m->kind = MOTE_MSG_RESULT;
		m->size = 0xfffffff0u;
		m->nvals = 0;
		m->status = 0;
		m->name_off = m->name_len = 0;
		exit_to(MOTE_PORT_DONE);
		break;
	case 2: /* a RESULT whose bytes lie outside the message */
		m->magic = MOTE_MSG_MAGIC;
		m->kind = MOTE_MSG_RESULT;
		m->size = sizeof(*m) + sizeof(*w);
		m->nvals = 1;
		m->status = 0;
		m->name_off = m->name_len = 0;
		w->type = MOTE_BYTES;
		w->len = 0x100000;
		w->bits = sizeof(*m);
		exit_to(MOTE_PORT_DONE);
		break;
	case 3: /* a HOSTCALL whose name lies outside the message */
		m->magic = MOTE_MSG_MAGIC;
		m->kind = MOTE_MSG_HOSTCALL;
		m->size = sizeof(*m);
		m->nvals = 0;
		m->status = 0;
		m->index = MOTE_VOID;
		m->name_off = 0x7ffffff0u;
		m->name_len = 16;
		exit_to(MOTE_PORT_HOSTCALL);
		break;
	case 4: /* an ABORT exit with a garbage message */
		for (uint32_t i = 0; i < 64; i++)
			out[i] = 0xff;
		exit_to(MOTE_PORT_ABORT);
		break;
	case 5: /* a RESULT with a status the protocol does not allow */
		m->magic = MOTE_MSG_MAGIC;
		m->kind = MOTE_MSG_RESULT;
		m->size = sizeof(*m);
		m->nvals = 0;
		m->status = 12345;
		m->name_off = m->name_len = 0;
		exit_to(MOTE_PORT_DONE);
		break;
	}
	/* The host never resumes a guest that broke the protocol. */
	for (;;)
		exit_to(MOTE_PORT_DONE);
}

MOTE_FN0(void, abort_oom)
{
	mote_abort(3, "out of memory");
}

/* Forge the log header: a huge `used` and a torn record. The host caps and
 * skips what does not parse; the call itself succeeds. */
MOTE_FN0(i32, corrupt_log)
{
	struct mote_log_hdr *h = (struct mote_log_hdr *)(uintptr_t)mote__boot->log_buf;
	uint8_t *recs = (uint8_t *)(h + 1);
	struct mote_log_rec rec = {MOTE_LOG_INFO, 0, 5};
	memcpy(recs, &rec, sizeof(rec));
	memcpy(recs + sizeof(rec), "hello", 5);
	rec.len = 0xffff; /* longer than the buffer */
	memcpy(recs + sizeof(rec) + 5, &rec, sizeof(rec));
	h->used = 0xffffffffu;
	h->dropped = 7;
	exit_to(MOTE_PORT_LOG);
	/* The host reset the header: normal logging works again. */
	mote_log(MOTE_LOG_INFO, "after");
	return 42;
}

/* ---- Escape attempts that matter to the process backend ----
 * A guest there shares its process with the stub: these try what the
 * stub can do (system calls), reach its code and data, and lie to the host
 * through the mailbox. Under KVM none of that memory exists. */
void hostile_syscall(void);
void hostile_int80(void);
void hostile_sysenter(void);
extern const char hostile_syscall_at[], hostile_int80_at[], hostile_sysenter_at[];
__asm__(".text\n"
        ".globl hostile_syscall, hostile_syscall_at\n"
        "hostile_syscall:\n"
        "	mov $39, %eax\n" /* getpid */
        "hostile_syscall_at:\n"
        "	syscall\n"
        "	ret\n"
        ".globl hostile_int80, hostile_int80_at\n"
        "hostile_int80:\n"
        "	mov $20, %eax\n" /* getpid, i386 */
        "hostile_int80_at:\n"
        "	int $0x80\n"
        "	ret\n"
        ".globl hostile_sysenter, hostile_sysenter_at\n"
        "hostile_sysenter:\n"
        "hostile_sysenter_at:\n"
        "	sysenter\n"
        "	ret\n");

MOTE_FN0(void, do_syscall)
{
	hostile_syscall();
}
MOTE_FN0(u64, syscall_at)
{
	return (uint64_t)(uintptr_t)hostile_syscall_at;
}
MOTE_FN0(void, do_int80)
{
	hostile_int80();
}
MOTE_FN0(u64, int80_at)
{
	return (uint64_t)(uintptr_t)hostile_int80_at;
}
MOTE_FN0(void, do_sysenter)
{
	hostile_sysenter();
}

/* The process backend's stub lives at 0x7e0000000000 (src/host/process/
 * stub.h), its mailbox at 0x7e0000400000. Its first page, the setup code,
 * is unmapped before guest code runs (stub.ld checks it is one page). */
#define STUB_TEXT 0x7e0000001000ull
#define STUB_MAILBOX 0x7e0000400000ull

/* Jump to the stub's first `syscall` instruction followed by `tail_len`
 * bytes of `tail` with the registers of a system call: nr, then the first
 * three arguments, and a return address after the jump pushed. */
static uint64_t jump_to_stub_syscall(const uint8_t *tail, size_t tail_len, uint64_t nr, uint64_t a0,
                                     uint64_t a1, uint64_t a2)
{
	const uint8_t *p = (const uint8_t *)(uintptr_t)STUB_TEXT;
	size_t i = 0;
	for (; i < 65536; i++) {
		if (p[i] != 0x0f || p[i + 1] != 0x05)
			continue;
		size_t k = 0;
		while (k < tail_len && p[i + 2 + k] == tail[k])
			k++;
		if (k == tail_len)
			break;
	}
	register uint64_t r10 __asm__("r10") = 0;
	register uint64_t r8 __asm__("r8") = 0;
	register uint64_t r9 __asm__("r9") = 0;
	uint64_t ret;
	__asm__ volatile("lea 1f(%%rip), %%r11\n\t"
			 "push %%r11\n\t"
			 "jmp *%[gadget]\n"
			 "1:"
			 : "=a"(ret)
			 : [gadget] "r"(p + i), "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10),
			   "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

/* A system call the stub's filter must refuse from anyone, through the
 * first `syscall` of the stub's code. */
MOTE_FN4(u64, stub_gadget, u64, nr, u64, a0, u64, a1, u64, a2)
{
	return jump_to_stub_syscall(NULL, 0, nr, a0, a1, a2);
}

/* The same through a `syscall; ret` of the stub's, which comes back here
 * with the system call's result when the filter lets it through. */
MOTE_FN4(u64, stub_gadget_ret, u64, nr, u64, a0, u64, a1, u64, a2)
{
	static const uint8_t ret = 0xc3;
	return jump_to_stub_syscall(&ret, 1, nr, a0, a1, a2);
}

/* Write a byte at an address of the stub's (code, data, mailbox). */
MOTE_FN2(void, poke, u64, addr, u32, value)
{
	*(volatile uint8_t *)(uintptr_t)addr = (uint8_t)value;
}

/* Write `value` over [addr, addr + len): the stub's stack and data. */
MOTE_FN3(void, fill, u64, addr, u64, len, u32, value)
{
	for (uint64_t i = 0; i < len; i++)
		((volatile uint8_t *)(uintptr_t)addr)[i] = (uint8_t)value;
}

/* Forge the stub's report "call done" in the mailbox and wake the host,
 * then keep running instead of waiting: the host must not believe it. */
MOTE_FN0(void, forge_report)
{
	volatile uint32_t *mb = (volatile uint32_t *)(uintptr_t)STUB_MAILBOX;
	/* to_stub, to_host, stub_sleeping, host_sleeping, cmd, report */
	mb[5] = 3; /* MOTE_STUB_EXIT */
	__atomic_add_fetch((uint32_t *)&mb[1], 1, __ATOMIC_SEQ_CST);
	for (;;)
		__asm__ volatile("pause");
}
