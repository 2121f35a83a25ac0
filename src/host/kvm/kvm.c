/* KVM backend: the only file in mote that talks to /dev/kvm.
 * Failures unwind with goto in reverse order of acquisition, as kvmtool does. */
#include "host/kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "host/internal.h"

static int kvm_fd = -1;
static int kvm_run_size;
static struct kvm_cpuid2 *kvm_cpuid; /* trimmed, shared by all vCPUs */
static char kvm_init_error[256];
static pthread_once_t kvm_once = PTHREAD_ONCE_INIT;

/* The CPUID table KVM gets: mote_cpuid_filter's (cpuid.c). The address
 * sizes matter to KVM itself: the physical address width decides which
 * guest addresses are legal, and the file-mapping window lies above 64 GiB,
 * beyond KVM's 36-bit default. Measured on kvm-pvm: with leaf 1 in the table
 * KVM_SET_CPUID2 costs ~150 us instead of ~19 us, an eighth of a cold start,
 * and the guest saw the host's own leaves 1 and 7 whatever the table said,
 * so masking them bought nothing there. */
static bool cpuid_keep(struct kvm_cpuid_entry2 *e)
{
	uint32_t regs[4] = {e->eax, e->ebx, e->ecx, e->edx};
	if (!mote_cpuid_filter(e->function, regs))
		return false;
	e->eax = regs[0];
	e->ebx = regs[1];
	e->ecx = regs[2];
	e->edx = regs[3];
	return true;
}

static void kvm_init_once(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(kvm_init_error, sizeof(kvm_init_error), "cannot open /dev/kvm: %s",
			 strerror(errno));
		return;
	}
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		snprintf(kvm_init_error, sizeof(kvm_init_error), "KVM API version %d, need %d",
			 version, KVM_API_VERSION);
		goto fail;
	}
	static const struct {
		int cap;
		const char *name;
	} required[] = {
		{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
		{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
		{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
		{KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
	};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0) {
			snprintf(kvm_init_error, sizeof(kvm_init_error),
				 "KVM lacks %s", required[i].name);
			goto fail;
		}
	}
	kvm_run_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm_run_size < (int)sizeof(struct kvm_run)) {
		snprintf(kvm_init_error, sizeof(kvm_init_error), "KVM_GET_VCPU_MMAP_SIZE: %s",
			 strerror(errno));
		goto fail;
	}

	int n = 128;
	struct kvm_cpuid2 *cpuid = NULL;
	for (;;) {
		cpuid = mote_calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
		if (!cpuid) {
			snprintf(kvm_init_error, sizeof(kvm_init_error), "out of memory");
			goto fail;
		}
		cpuid->nent = n;
		if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			break;
		int e = errno;
		mote_free(cpuid);
		if (e != E2BIG || n > 4096) {
			snprintf(kvm_init_error, sizeof(kvm_init_error),
				 "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
			goto fail;
		}
		n *= 2;
	}
	uint32_t kept = 0;
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 e = cpuid->entries[i];
		if (cpuid_keep(&e))
			cpuid->entries[kept++] = e;
	}
	cpuid->nent = kept;
	kvm_cpuid = cpuid;
	kvm_fd = fd;
	return;
fail:
	close(fd);
}

int mote_kvm_init(char *err, size_t errlen)
{
	pthread_once(&kvm_once, kvm_init_once);
	if (kvm_fd < 0) {
		mote_errf(err, errlen, "%s", kvm_init_error);
		return -MOTE_EKVM;
	}
	return 0;
}

static int set_slot(struct mote_vm *vm, int i, uint64_t size)
{
	const struct mote_vm_slot *sl = &vm->slots[i];
	struct kvm_userspace_memory_region region = {
		.slot = (uint32_t)i,
		.flags = (sl->dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0) |
			 (sl->readonly ? KVM_MEM_READONLY : 0),
		.guest_phys_addr = sl->gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)sl->hva,
	};
	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}

int mote_vm_map(struct mote_vm *vm, uint64_t gpa, uint64_t size, void *hva, bool readonly,
		bool dirty_log, char *err, size_t errlen)
{
	int i = 0;
	while (i < MOTE_VM_MAX_SLOTS && vm->slots[i].used)
		i++;
	if (i == MOTE_VM_MAX_SLOTS) {
		mote_errf(err, errlen, "no free memory slot (%d in use)", MOTE_VM_MAX_SLOTS);
		return -MOTE_ENOMEM;
	}
	if (readonly && ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
		mote_errf(err, errlen, "KVM lacks KVM_CAP_READONLY_MEM");
		return -MOTE_ENOTSUP;
	}
	vm->slots[i] = (struct mote_vm_slot){gpa, size, hva, true, readonly, dirty_log};
	if (set_slot(vm, i, size) < 0) {
		int e = errno;
		memset(&vm->slots[i], 0, sizeof(vm->slots[i]));
		mote_errf(err, errlen, "KVM_SET_USER_MEMORY_REGION (0x%llx bytes at 0x%llx): %s",
			  (unsigned long long)size, (unsigned long long)gpa, strerror(e));
		return e == ENOMEM ? -MOTE_ENOMEM : -MOTE_EKVM;
	}
	if (dirty_log) {
		size_t words = (size_t)((size / 4096 + 63) / 64);
		if (words > vm->dirty_tmp_words) {
			uint64_t *t = mote_realloc(vm->dirty_tmp, words * sizeof(uint64_t));
			if (!t) {
				mote_vm_unmap(vm, i);
				return -MOTE_ENOMEM;
			}
			vm->dirty_tmp = t;
			vm->dirty_tmp_words = words;
		}
	}
	return i;
}

int mote_vm_unmap(struct mote_vm *vm, int i)
{
	if (i < 0 || i >= MOTE_VM_MAX_SLOTS || !vm->slots[i].used)
		return -MOTE_EINVAL;
	int rc = set_slot(vm, i, 0) < 0 ? -MOTE_EKVM : 0;
	memset(&vm->slots[i], 0, sizeof(vm->slots[i]));
	return rc;
}

int mote_vm_create(struct mote_vm *vm, void *mem, uint64_t mem_size, bool trim_cpuid,
		   bool dirty_log, char *err, size_t errlen)
{
	int rc = mote_kvm_init(err, errlen);
	if (rc)
		return rc;
	memset(vm, 0, sizeof(*vm));
	vm->vcpu_fd = -1;

	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		mote_errf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EKVM;
	}
	rc = mote_vm_map(vm, 0, mem_size, mem, false, dirty_log, err, errlen);
	if (rc < 0)
		goto fail_vm;
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0) {
		mote_errf(err, errlen, "KVM_CREATE_VCPU: %s", strerror(errno));
		rc = -MOTE_EKVM;
		goto fail_vm;
	}
	vm->run_size = (size_t)kvm_run_size;
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		mote_errf(err, errlen, "mmap of kvm_run: %s", strerror(errno));
		rc = -MOTE_EKVM;
		goto fail_vcpu;
	}
	if (trim_cpuid && ioctl(vm->vcpu_fd, KVM_SET_CPUID2, kvm_cpuid) < 0) {
		mote_errf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
		rc = -MOTE_EKVM;
		goto fail_run;
	}
	return 0;

fail_run:
	munmap(vm->run, vm->run_size);
	vm->run = NULL;
fail_vcpu:
	close(vm->vcpu_fd);
	vm->vcpu_fd = -1;
fail_vm:
	close(vm->vm_fd);
	vm->vm_fd = -1;
	mote_free(vm->dirty_tmp);
	vm->dirty_tmp = NULL;
	return rc;
}

void mote_vm_destroy(struct mote_vm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	mote_free(vm->dirty_tmp);
	vm->dirty_tmp = NULL;
	vm->run = NULL;
	vm->vcpu_fd = vm->vm_fd = -1;
}

static void seg_to_kvm(const struct mote_segment *s, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->base = s->base;
	k->limit = s->limit;
	k->selector = s->selector;
	k->type = s->type;
	k->present = s->present;
	k->dpl = s->dpl;
	k->db = s->db;
	k->s = s->s;
	k->l = s->l;
	k->g = s->g;
	k->avl = s->avl;
	k->unusable = s->unusable;
}

static void seg_from_kvm(const struct kvm_segment *k, struct mote_segment *s)
{
	memset(s, 0, sizeof(*s));
	s->base = k->base;
	s->limit = k->limit;
	s->selector = k->selector;
	s->type = k->type;
	s->present = k->present;
	s->dpl = k->dpl;
	s->db = k->db;
	s->s = k->s;
	s->l = k->l;
	s->g = k->g;
	s->avl = k->avl;
	s->unusable = k->unusable;
}

/* MSRs a snapshot carries. The guest cannot write MSRs (CPL 3), but these
 * shape what it sees and are part of an exact restore. */
static const uint32_t saved_msrs[] = {
	0x00000277, /* IA32_PAT */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000103, /* TSC_AUX */
};
#define NSAVED_MSRS (sizeof(saved_msrs) / sizeof(saved_msrs[0]))

/* struct kvm_msrs ends in a flexible array: give it room for 8 entries. */
union msr_buf {
	struct kvm_msrs hdr;
	uint8_t bytes[sizeof(struct kvm_msrs) + 8 * sizeof(struct kvm_msr_entry)];
};

int mote_vm_get_state(struct mote_vm *vm, struct mote_vcpu_state *st)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	memset(st, 0, sizeof(*st));
	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -MOTE_EKVM;
	const uint64_t gpr[16] = {regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp,
				  regs.rsi, regs.rdi, regs.r8,  regs.r9,  regs.r10, regs.r11,
				  regs.r12, regs.r13, regs.r14, regs.r15};
	memcpy(st->gpr, gpr, sizeof(gpr));
	st->rip = regs.rip;
	st->rflags = regs.rflags;
	seg_from_kvm(&sregs.cs, &st->cs);
	seg_from_kvm(&sregs.ds, &st->ds);
	seg_from_kvm(&sregs.es, &st->es);
	seg_from_kvm(&sregs.fs, &st->fs);
	seg_from_kvm(&sregs.gs, &st->gs);
	seg_from_kvm(&sregs.ss, &st->ss);
	seg_from_kvm(&sregs.tr, &st->tr);
	seg_from_kvm(&sregs.ldt, &st->ldt);
	st->gdt_base = sregs.gdt.base;
	st->gdt_limit = sregs.gdt.limit;
	st->idt_base = sregs.idt.base;
	st->idt_limit = sregs.idt.limit;
	st->cr0 = sregs.cr0;
	st->cr2 = sregs.cr2;
	st->cr3 = sregs.cr3;
	st->cr4 = sregs.cr4;
	st->cr8 = sregs.cr8;
	st->efer = sregs.efer;
	st->apic_base = sregs.apic_base;

	struct kvm_xsave xs;
	if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, &xs) < 0)
		return -MOTE_EKVM;
	_Static_assert(sizeof(xs.region) == sizeof(st->xsave), "xsave area size");
	memcpy(st->xsave, xs.region, sizeof(st->xsave));

	union msr_buf msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = NSAVED_MSRS;
	for (size_t i = 0; i < NSAVED_MSRS; i++)
		msrs.hdr.entries[i].index = saved_msrs[i];
	int got = ioctl(vm->vcpu_fd, KVM_GET_MSRS, &msrs);
	if (got < 0)
		return -MOTE_EKVM;
	for (int i = 0; i < got; i++) {
		st->msrs[i].index = msrs.hdr.entries[i].index;
		st->msrs[i].value = msrs.hdr.entries[i].data;
	}
	st->nmsrs = (uint32_t)got;
	return 0;
}

int mote_vm_set_state(struct mote_vm *vm, const struct mote_vcpu_state *st)
{
	struct kvm_sregs sregs;
	memset(&sregs, 0, sizeof(sregs));
	seg_to_kvm(&st->cs, &sregs.cs);
	seg_to_kvm(&st->ds, &sregs.ds);
	seg_to_kvm(&st->es, &sregs.es);
	seg_to_kvm(&st->fs, &sregs.fs);
	seg_to_kvm(&st->gs, &sregs.gs);
	seg_to_kvm(&st->ss, &sregs.ss);
	seg_to_kvm(&st->tr, &sregs.tr);
	seg_to_kvm(&st->ldt, &sregs.ldt);
	sregs.gdt.base = st->gdt_base;
	sregs.gdt.limit = st->gdt_limit;
	sregs.idt.base = st->idt_base;
	sregs.idt.limit = st->idt_limit;
	sregs.cr0 = st->cr0;
	sregs.cr2 = st->cr2;
	sregs.cr3 = st->cr3;
	sregs.cr4 = st->cr4;
	sregs.cr8 = st->cr8;
	sregs.efer = st->efer;
	/* The architectural reset value: xAPIC enabled, BSP. */
	sregs.apic_base = st->apic_base ? st->apic_base : 0xfee00900;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -MOTE_EKVM;

	struct kvm_regs regs = {
		.rax = st->gpr[0], .rcx = st->gpr[1], .rdx = st->gpr[2],  .rbx = st->gpr[3],
		.rsp = st->gpr[4], .rbp = st->gpr[5], .rsi = st->gpr[6],  .rdi = st->gpr[7],
		.r8 = st->gpr[8],  .r9 = st->gpr[9],  .r10 = st->gpr[10], .r11 = st->gpr[11],
		.r12 = st->gpr[12], .r13 = st->gpr[13], .r14 = st->gpr[14], .r15 = st->gpr[15],
		.rip = st->rip,    .rflags = st->rflags,
	};
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -MOTE_EKVM;

	/* An all-zero area means "the vCPU's reset FPU state" (FCW 0x37f,
	 * MXCSR 0x1f80), which a new vCPU already has: skip the ioctl. */
	uint64_t xstate_bv;
	memcpy(&xstate_bv, st->xsave + 512, sizeof(xstate_bv));
	uint32_t mxcsr;
	memcpy(&mxcsr, st->xsave + 24, sizeof(mxcsr));
	if (xstate_bv || mxcsr) {
		struct kvm_xsave xs;
		memcpy(xs.region, st->xsave, sizeof(xs.region));
		if (ioctl(vm->vcpu_fd, KVM_SET_XSAVE, &xs) < 0)
			return -MOTE_EKVM;
	}

	if (st->nmsrs) {
		union msr_buf msrs;
		memset(&msrs, 0, sizeof(msrs));
		uint32_t n = st->nmsrs > 8 ? 8 : st->nmsrs;
		msrs.hdr.nmsrs = n;
		for (uint32_t i = 0; i < n; i++) {
			msrs.hdr.entries[i].index = st->msrs[i].index;
			msrs.hdr.entries[i].data = st->msrs[i].value;
		}
		if (ioctl(vm->vcpu_fd, KVM_SET_MSRS, &msrs) != (int)n)
			return -MOTE_EKVM;
	}
	return 0;
}

int mote_vm_run(struct mote_vm *vm, struct mote_exit *exit)
{
	struct kvm_run *run = vm->run;
	memset(exit, 0, sizeof(*exit));
	if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			exit->kind = MOTE_EXIT_INTR;
			return 0;
		}
		return -MOTE_EKVM;
	}
	exit->reason = run->exit_reason;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		exit->kind = MOTE_EXIT_IO;
		exit->port = run->io.port;
		exit->io_in = run->io.direction == KVM_EXIT_IO_IN;
		exit->io_size = run->io.size;
		if (!exit->io_in && run->io.size == 1 && run->io.count == 1 &&
		    run->io.data_offset < vm->run_size)
			exit->value = ((const uint8_t *)run)[run->io.data_offset];
		break;
	case KVM_EXIT_INTR:
		exit->kind = MOTE_EXIT_INTR;
		break;
	case KVM_EXIT_SHUTDOWN:
		exit->kind = MOTE_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_MMIO:
		exit->kind = MOTE_EXIT_MMIO;
		exit->value = run->mmio.phys_addr;
		exit->mmio_write = run->mmio.is_write;
		exit->mmio_len = run->mmio.len <= 8 ? (uint8_t)run->mmio.len : 8;
		exit->mmio_data = run->mmio.data;
		break;
	case KVM_EXIT_HLT:
		exit->kind = MOTE_EXIT_HLT;
		break;
	default:
		exit->kind = MOTE_EXIT_OTHER;
		break;
	}
	return 0;
}

void mote_vm_kick(struct mote_vm *vm)
{
	__atomic_store_n(&vm->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

void mote_vm_clear_kick(struct mote_vm *vm)
{
	__atomic_store_n(&vm->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

int mote_vm_get_dirty_log(struct mote_vm *vm, uint64_t *bitmap)
{
	for (int i = 0; i < MOTE_VM_MAX_SLOTS; i++) {
		const struct mote_vm_slot *sl = &vm->slots[i];
		if (!sl->used || !sl->dirty_log)
			continue;
		size_t words = (size_t)((sl->size / 4096 + 63) / 64);
		memset(vm->dirty_tmp, 0, words * sizeof(uint64_t));
		struct kvm_dirty_log log = {.slot = (uint32_t)i, .dirty_bitmap = vm->dirty_tmp};
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return -MOTE_EKVM;
		uint64_t *dst = bitmap + sl->gpa / 4096 / 64;
		for (size_t w = 0; w < words; w++)
			dst[w] |= vm->dirty_tmp[w];
	}
	return 0;
}

int mote_vm_fault_regs(struct mote_vm *vm, struct mote_fault_regs *out)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -MOTE_EKVM;
	out->rip = regs.rip;
	out->rsp = regs.rsp;
	out->cr2 = sregs.cr2;
	out->rcx = regs.rcx;
	return 0;
}
