/* KVM plumbing for the KVM backend (kvm_x86_64.c): the only code in mote
 * that issues KVM ioctls. A VM with one vCPU, guest memory in slots from
 * guest physical 0, exits reduced to struct mote_exit. */
#ifndef MOTE_HOST_KVM_KVM_H
#define MOTE_HOST_KVM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;

/* A KVM memory slot: guest physical [gpa, gpa + size) backed by host `hva`. */
struct mote_vm_slot {
	uint64_t gpa, size;
	void *hva;
	bool used, readonly, dirty_log;
};

#define MOTE_VM_MAX_SLOTS 300

struct mote_vm {
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	struct mote_vm_slot slots[MOTE_VM_MAX_SLOTS];
	uint64_t *dirty_tmp; /* scratch for one slot's bitmap */
	size_t dirty_tmp_words;
};

enum mote_exit_kind {
	MOTE_EXIT_IO,        /* OUT to `port`, one byte in `value` */
	MOTE_EXIT_INTR,      /* KVM_RUN interrupted by a signal or immediate_exit */
	MOTE_EXIT_SHUTDOWN,  /* triple fault */
	MOTE_EXIT_MMIO,      /* access to guest physical memory that does not exist */
	MOTE_EXIT_HLT,
	MOTE_EXIT_OTHER,     /* anything else: `reason` holds KVM's exit reason */
};

struct mote_exit {
	enum mote_exit_kind kind;
	uint32_t reason;
	uint16_t port;
	bool io_in;       /* an IN rather than an OUT */
	uint8_t io_size;
	uint64_t value;   /* OUT data, or MMIO address */
	/* MMIO: the access, to be completed by the host (read data goes in
	 * `mmio_data` before the next run). */
	bool mmio_write;
	uint8_t mmio_len;
	uint8_t *mmio_data;
};

/* Architectural vCPU state mote saves and restores (snapshots). */
struct mote_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct mote_vcpu_state {
	uint64_t gpr[16]; /* rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
	uint64_t rip, rflags;
	struct mote_segment cs, ds, es, fs, gs, ss, tr, ldt;
	uint64_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
	uint8_t xsave[4096]; /* the XSAVE area (legacy x87/SSE region first) */
	uint32_t nmsrs;
	struct {
		uint32_t index;
		uint64_t value;
	} msrs[8];
};

struct mote_cpu_state;
/* The vCPU state of a guest in `cpu`'s state: long mode at CPL 3 on the
 * system area layout.c writes (kvm_x86_64.c). */
void mote_kvm_full_state(const struct mote_cpu_state *cpu, struct mote_vcpu_state *out);

/* Process-wide setup (opens /dev/kvm once). Returns 0 or -MOTE_EKVM. */
int mote_kvm_init(char *err, size_t errlen);

/* Create a VM with one vCPU, with `mem` (page-aligned, mem_size bytes) as
 * guest physical [0, mem_size) in slot 0. `trim_cpuid` gives the guest
 * mote's CPUID set. More memory can be added with mote_vm_map(). */
int mote_vm_create(struct mote_vm *vm, void *mem, uint64_t mem_size, bool trim_cpuid,
		   bool dirty_log, char *err, size_t errlen);
void mote_vm_destroy(struct mote_vm *vm);

/* Add guest physical [gpa, gpa + size) backed by `hva`; returns the slot
 * number (>= 0) or -MOTE_E*. Read-only slots turn guest writes into MMIO
 * exits. */
int mote_vm_map(struct mote_vm *vm, uint64_t gpa, uint64_t size, void *hva, bool readonly,
		bool dirty_log, char *err, size_t errlen);
int mote_vm_unmap(struct mote_vm *vm, int slot);

int mote_vm_get_state(struct mote_vm *vm, struct mote_vcpu_state *state);
int mote_vm_set_state(struct mote_vm *vm, const struct mote_vcpu_state *state);

/* Enter the guest until the next exit. */
int mote_vm_run(struct mote_vm *vm, struct mote_exit *exit);

/* Request that the current or next mote_vm_run on this VM returns
 * MOTE_EXIT_INTR. Async-signal-safe. */
void mote_vm_kick(struct mote_vm *vm);
void mote_vm_clear_kick(struct mote_vm *vm);

/* Fetch and clear the dirty logs of every dirty-logged slot, ORing them into
 * `bitmap` (one bit per 4 KiB page of guest physical memory from 0; slots
 * must start at a multiple of 256 KiB). */
int mote_vm_get_dirty_log(struct mote_vm *vm, uint64_t *bitmap);

/* Registers needed to describe a fault. */
struct mote_fault_regs {
	uint64_t rip, rsp, cr2, rcx;
};
int mote_vm_fault_regs(struct mote_vm *vm, struct mote_fault_regs *out);

#endif
