/* The KVM backend on x86-64: decodes the VM's exits into events, derives the
 * vCPU's system state (long mode at CPL 3, the GDT/IDT/TSS written by
 * layout.c) from the layout, adds guest memory lazily and reads the dirty
 * log. kvm.c does the ioctls. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "host/internal.h"
#include "host/kvm/kvm.h"

struct kvm_sandbox {
	struct mote_vm vm;
	bool io_pending; /* the last exit was an OUT or MMIO KVM has not completed */
	/* Guest memory past core_end joins the VM in chunks on first access. */
	uint64_t core_end, chunk_size;
	uint8_t *chunk_mapped;
	size_t nchunks;
};

static struct kvm_sandbox *ks(struct mote_sandbox *sb)
{
	return sb->be_data;
}

static struct mote_segment user_data_segment(void)
{
	return (struct mote_segment){.selector = MOTE_SEL_UDATA,
	                             .limit = 0xffffffff,
	                             .type = 3,
	                             .present = 1,
	                             .dpl = 3,
	                             .db = 1,
	                             .s = 1,
	                             .g = 1};
}

/* Long mode, paging on the host-built tables, CPL 3: what every guest runs
 * in, whatever its registers. */
static void system_state(struct mote_vcpu_state *st)
{
	st->cs = (struct mote_segment){.selector = MOTE_SEL_UCODE,
	                               .limit = 0xffffffff,
	                               .type = 11,
	                               .present = 1,
	                               .dpl = 3,
	                               .s = 1,
	                               .l = 1,
	                               .g = 1};
	st->ds = st->es = st->fs = st->gs = st->ss = user_data_segment();
	st->tr = (struct mote_segment){.selector = MOTE_SEL_TSS,
	                               .base = MOTE_GDT_ADDR + MOTE_TSS_OFFSET,
	                               .limit = MOTE_TSS_LIMIT,
	                               .type = 11,
	                               .present = 1};
	st->ldt = (struct mote_segment){.unusable = 1, .type = 2, .present = 1};
	st->gdt_base = MOTE_GDT_ADDR;
	st->gdt_limit = (uint16_t)((MOTE_SEL_TSS >> 3) * 8 + 16 - 1);
	st->idt_base = MOTE_IDT_ADDR;
	st->idt_limit = 32 * 16 - 1;
	st->cr0 = 0x80050033; /* PG WP NE ET MP PE */
	st->cr3 = MOTE_PGTABLE_ADDR;
	st->cr4 = 0x620;  /* OSXMMEXCPT OSFXSR PAE */
	st->efer = 0xd00; /* NXE LMA LME */
	/* SYSCALL, where a KVM flavour takes it despite EFER.SCE: to the
	 * landing stub at CPL 0 with interrupts off (layout.c). */
	const struct {
		uint32_t index;
		uint64_t value;
	} msrs[] = {
	    {0xc0000081, (uint64_t)MOTE_SEL_KCODE << 32}, /* STAR */
	    {0xc0000082, MOTE_SYSCALL_STUB_ADDR},         /* LSTAR */
	    {0xc0000083, MOTE_SYSCALL_STUB_ADDR},         /* CSTAR */
	    {0xc0000084, 0x47700},                        /* FMASK: TF DF IF IOPL NT AC */
	};
	for (unsigned i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
		st->msrs[i].index = msrs[i].index;
		st->msrs[i].value = msrs[i].value;
	}
	st->nmsrs = sizeof(msrs) / sizeof(msrs[0]);
}

void mote_kvm_full_state(const struct mote_cpu_state *cpu, struct mote_vcpu_state *out)
{
	struct mote_vcpu_state *st = out;
	memset(st, 0, sizeof(*st));
	system_state(st);
	memcpy(st->gpr, cpu->gpr, sizeof(st->gpr));
	st->rip = cpu->rip;
	/* IOPL 3: the guest exits with OUT at CPL 3. Bit 1 is always set. */
	st->rflags = (cpu->rflags & MOTE_RFLAGS_GUEST) | 0x3000 | 0x2;
	st->fs.base = cpu->fs_base;
	st->gs.base = cpu->gs_base;
	/* All zero means the reset state, which a new vCPU has (see
	 * mote_vm_set_state); otherwise x87 and SSE come from the area. */
	static const uint8_t zero[512];
	if (memcmp(cpu->fxsave, zero, sizeof(zero)) != 0) {
		memcpy(st->xsave, cpu->fxsave, sizeof(cpu->fxsave));
		uint64_t xstate_bv = 0x3;
		memcpy(st->xsave + 512, &xstate_bv, sizeof(xstate_bv));
	}
}

static int kvm_set_state(struct mote_sandbox *sb, const struct mote_cpu_state *cpu)
{
	struct mote_vcpu_state st;
	mote_kvm_full_state(cpu, &st);
	if (mote_vm_set_state(&ks(sb)->vm, &st))
		return mote_sandbox_fail(sb, -MOTE_EKVM, "cannot set the vCPU state: %s",
		                         strerror(errno));
	return 0;
}

static int kvm_get_state(struct mote_sandbox *sb, struct mote_cpu_state *cpu)
{
	struct mote_vcpu_state st;
	if (mote_vm_get_state(&ks(sb)->vm, &st))
		return mote_sandbox_fail(sb, -MOTE_EKVM, "cannot read the vCPU state: %s",
		                         strerror(errno));
	memset(cpu, 0, sizeof(*cpu));
	memcpy(cpu->gpr, st.gpr, sizeof(cpu->gpr));
	cpu->rip = st.rip;
	cpu->rflags = st.rflags & MOTE_RFLAGS_GUEST;
	cpu->fs_base = st.fs.base;
	cpu->gs_base = st.gs.base;
	memcpy(cpu->fxsave, st.xsave, sizeof(cpu->fxsave));
	return 0;
}

/* ---- Lazily added guest memory ----
 * KVM's per-slot metadata (rmap arrays under shadow paging) costs time in
 * proportion to the slot's size, so one slot for a 1 GiB heap would make
 * such a sandbox start ~0.5 ms slower than a 128 KiB one. The VM therefore
 * starts with [0, core_end) and the rest joins in chunks when the guest
 * first touches it: that access exits as MMIO, the backend adds the chunk's
 * slot and completes the access itself. */
static int kvm_create(struct mote_sandbox *sb, uint64_t core_end)
{
	struct kvm_sandbox *k = mote_calloc(1, sizeof(*k));
	if (!k)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	k->vm.vm_fd = k->vm.vcpu_fd = -1;
	sb->be_data = k;
	core_end = (core_end + MOTE_LARGE_PAGE_SIZE - 1) & ~(MOTE_LARGE_PAGE_SIZE - 1);
	if (core_end > sb->mem_size)
		core_end = sb->mem_size;
	k->core_end = core_end;
	uint64_t lazy = sb->mem_size - core_end;
	uint64_t chunk = 32ull << 20;
	if (lazy / chunk > 200) /* bound the number of slots */
		chunk = (lazy / 200 + MOTE_LARGE_PAGE_SIZE - 1) & ~(MOTE_LARGE_PAGE_SIZE - 1);
	k->chunk_size = chunk;
	k->nchunks = (size_t)((lazy + chunk - 1) / chunk);
	if (k->nchunks) {
		k->chunk_mapped = mote_calloc(k->nchunks, 1);
		if (!k->chunk_mapped)
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	}
	/* Dirty logging from the start: restore copies back only written pages. */
	return mote_vm_create(&k->vm, sb->mem, core_end, true, true, sb->err, sizeof(sb->err));
}

static void kvm_destroy(struct mote_sandbox *sb)
{
	struct kvm_sandbox *k = ks(sb);
	if (!k)
		return;
	mote_vm_destroy(&k->vm);
	mote_free(k->chunk_mapped);
	mote_free(k);
	sb->be_data = NULL;
}

static int map_chunk(struct mote_sandbox *sb, uint64_t gpa)
{
	struct kvm_sandbox *k = ks(sb);
	size_t i = (size_t)((gpa - k->core_end) / k->chunk_size);
	if (k->chunk_mapped[i])
		return 0;
	uint64_t start = k->core_end + i * k->chunk_size;
	uint64_t size = sb->mem_size - start < k->chunk_size ? sb->mem_size - start : k->chunk_size;
	char why[256];
	int slot = mote_vm_map(&k->vm, start, size, sb->mem + start, false, true, why, sizeof(why));
	if (slot < 0)
		return mote_sandbox_fail(sb, slot, "cannot add guest memory: %s", why);
	k->chunk_mapped[i] = 1;
	return 0;
}

/* 1: a first touch of lazily added memory, now mapped and completed;
 * 0: not ours (a real fault); < 0: error. */
static int lazy_memory_access(struct mote_sandbox *sb, const struct mote_exit *ex)
{
	struct kvm_sandbox *k = ks(sb);
	uint64_t addr = ex->value, len = ex->mmio_len;
	if (addr < k->core_end || addr >= sb->mem_size || !len || len > sb->mem_size - addr)
		return 0;
	int rc = map_chunk(sb, addr);
	if (!rc && (addr + len - 1) / k->chunk_size != addr / k->chunk_size)
		rc = map_chunk(sb, addr + len - 1);
	if (rc)
		return rc;
	if (ex->mmio_write) {
		memcpy(sb->mem + addr, ex->mmio_data, len);
		mote_sandbox_mark_written(sb, addr, len);
	} else {
		memcpy(ex->mmio_data, sb->mem + addr, len);
	}
	return 1;
}

/* The exception stubs (layout.c) leave the CPU's frame at the top of the
 * IST stack: error code, rip, cs, rflags, rsp, ss. */
static void decode_exception(struct mote_sandbox *sb, unsigned vector, struct mote_event *ev)
{
	const uint64_t *f = mote_guest_ptr(sb, MOTE_KSTACK_TOP - 48, 48);
	struct mote_fault_regs regs;
	ev->kind = MOTE_EVENT_EXCEPTION;
	ev->vector = (uint8_t)vector;
	ev->has_error_code = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
	ev->error_code = f[0];
	ev->rip = f[1];
	ev->rflags = f[3] & MOTE_RFLAGS_GUEST;
	ev->rsp = f[4];
	if (vector == 14 && mote_vm_fault_regs(&ks(sb)->vm, &regs) == 0)
		ev->addr = regs.cr2;
	ev->write = (ev->error_code & 2) != 0;
}

static int kvm_run(struct mote_sandbox *sb, struct mote_event *ev)
{
	struct kvm_sandbox *k = ks(sb);
	memset(ev, 0, sizeof(*ev));
	for (;;) {
		struct mote_exit ex;
		if (mote_vm_run(&k->vm, &ex))
			return mote_sandbox_fail(sb, -MOTE_EKVM, "KVM_RUN failed: %s",
			                         strerror(errno));
		k->io_pending = ex.kind == MOTE_EXIT_IO || ex.kind == MOTE_EXIT_MMIO;
		switch (ex.kind) {
		case MOTE_EXIT_IO:
			if (ex.io_in) {
				ev->kind = MOTE_EVENT_UNEXPECTED;
				snprintf(ev->detail, sizeof(ev->detail), "IN from port 0x%x",
				         ex.port);
			} else if (ex.port >= MOTE_PORT_EXC_BASE &&
			           ex.port < MOTE_PORT_EXC_BASE + 32) {
				decode_exception(sb, ex.port - MOTE_PORT_EXC_BASE, ev);
			} else if (ex.port == MOTE_PORT_SYSCALL) {
				/* `syscall` left its address + 2 in rcx. */
				struct mote_fault_regs regs;
				memset(&regs, 0, sizeof(regs));
				mote_vm_fault_regs(&k->vm, &regs);
				ev->kind = MOTE_EVENT_EXCEPTION;
				ev->vector = 6;
				ev->rip = regs.rcx - 2;
				ev->rsp = regs.rsp;
			} else {
				ev->kind = MOTE_EVENT_EXIT;
				ev->port = ex.port;
			}
			return 0;
		case MOTE_EXIT_INTR:
			ev->kind = MOTE_EVENT_INTERRUPTED;
			return 0;
		case MOTE_EXIT_SHUTDOWN:
			ev->kind = MOTE_EVENT_SHUTDOWN;
			return 0;
		case MOTE_EXIT_MMIO: {
			int rc = lazy_memory_access(sb, &ex);
			if (rc < 0)
				return rc;
			if (rc == 1)
				continue;
			struct mote_fault_regs regs;
			ev->kind = MOTE_EVENT_NO_MEMORY;
			ev->addr = ex.value;
			ev->write = ex.mmio_write;
			ev->rip = mote_vm_fault_regs(&k->vm, &regs) == 0 ? regs.rip : 0;
			return 0;
		}
		case MOTE_EXIT_HLT:
			ev->kind = MOTE_EVENT_UNEXPECTED;
			snprintf(ev->detail, sizeof(ev->detail), "HLT");
			return 0;
		default:
			ev->kind = MOTE_EVENT_UNEXPECTED;
			snprintf(ev->detail, sizeof(ev->detail), "KVM exit reason %u", ex.reason);
			return 0;
		}
	}
}

static void kvm_kick(struct mote_sandbox *sb)
{
	struct kvm_sandbox *k = ks(sb);
	if (k && k->vm.run)
		mote_vm_kick(&k->vm);
}

static void kvm_clear_kick(struct mote_sandbox *sb)
{
	mote_vm_clear_kick(&ks(sb)->vm);
}

static int kvm_settle(struct mote_sandbox *sb)
{
	struct kvm_sandbox *k = ks(sb);
	if (!k->io_pending)
		return 0;
	/* KVM finishes a pending OUT or MMIO access on the next KVM_RUN even
	 * with immediate_exit set; a split MMIO access may exit once more per
	 * fragment (its data is discarded: the state is about to be replaced
	 * or the guest is parked between calls). */
	int rc = 0;
	mote_vm_kick(&k->vm);
	for (int i = 0; i < 16; i++) {
		struct mote_exit ex;
		rc = mote_vm_run(&k->vm, &ex);
		if (rc || ex.kind == MOTE_EXIT_INTR)
			break;
		if (ex.kind != MOTE_EXIT_MMIO && ex.kind != MOTE_EXIT_IO) {
			rc = -MOTE_EKVM;
			break;
		}
	}
	mote_vm_clear_kick(&k->vm);
	if (rc)
		return mote_sandbox_fail(sb, -MOTE_EKVM,
		                         "cannot complete the guest's pending exit");
	k->io_pending = false;
	return 0;
}

static int kvm_dirty_pages(struct mote_sandbox *sb, uint64_t *bitmap, bool written_back,
                           uint64_t *summary)
{
	(void)written_back; /* KVM_GET_DIRTY_LOG forgets as it reads */
	uint64_t *log = sb->dirty_log;
	memset(log, 0, sb->bitmap_words * sizeof(uint64_t));
	if (mote_vm_get_dirty_log(&ks(sb)->vm, log))
		return mote_sandbox_fail(sb, -MOTE_EKVM, "KVM_GET_DIRTY_LOG: %s", strerror(errno));
	/* The page tables never change after creation: no guest mapping
	 * reaches [MOTE_PGTABLE_ADDR, MOTE_IMAGE_BASE) and their A/D bits are
	 * preset. Yet under nested paging (AMD NPT; Intel EPT with A/D flags)
	 * the CPU's walk through them counts as a write, so KVM logs them on
	 * every call (docs/architecture.md, "Dirty tracking"). Dropped, so
	 * layers and restores cost only the pages the guest wrote. */
	mote_bitmap_clear_range(log, MOTE_PGTABLE_ADDR / MOTE_PAGE_SIZE,
	                        (MOTE_IMAGE_BASE - MOTE_PGTABLE_ADDR) / MOTE_PAGE_SIZE);
	for (size_t i = 0; i < sb->bitmap_words; i++) {
		if (log[i]) {
			bitmap[i] |= log[i];
			mote_summary_note(summary, i);
		}
	}
	return 0;
}

/* All of guest RAM is sb->mem. */
static int kvm_read(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(v[i].buf, sb->mem + v[i].gpa, v[i].len);
	return 0;
}

/* Guest code is read-only to the guest only: the host's view is writable. */
static int kvm_poke(struct mote_sandbox *sb, uint64_t gpa, const void *buf, size_t len)
{
	memcpy(sb->mem + gpa, buf, len);
	return 0;
}

static int kvm_write(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].buf)
			memcpy(sb->mem + v[i].gpa, v[i].buf, v[i].len);
		else
			memset(sb->mem + v[i].gpa, 0, v[i].len);
	}
	return 0;
}

/* A read-only mapping is a read-only slot (guest writes exit as MMIO and
 * are reported as access violations); a copy-on-write one is writable. */
static int kvm_map(struct mote_sandbox *sb, struct mote_file_map *m, int fd)
{
	(void)fd;
	bool cow = m->flags & MOTE_MAP_COPY_ON_WRITE;
	char why[256];
	int slot = mote_vm_map(&ks(sb)->vm, m->gpa, m->size, m->hva, !cow, false, why, sizeof(why));
	if (slot < 0)
		return mote_sandbox_fail(sb, slot, "cannot map %s into the guest: %s", m->path,
		                         why);
	m->slot = slot;
	return 0;
}

static void kvm_unmap(struct mote_sandbox *sb, struct mote_file_map *m)
{
	if (m->slot >= 0)
		mote_vm_unmap(&ks(sb)->vm, m->slot);
	m->slot = -1;
}

const struct mote_backend_ops mote_kvm_backend = {
    .name = "kvm",
    .file_id = 1,
    .shares_host_memory = true,
    .create = kvm_create,
    .destroy = kvm_destroy,
    .run = kvm_run,
    .kick = kvm_kick,
    .clear_kick = kvm_clear_kick,
    .settle = kvm_settle,
    .get_state = kvm_get_state,
    .set_state = kvm_set_state,
    .dirty_pages = kvm_dirty_pages,
    .read = kvm_read,
    .write = kvm_write,
    .poke = kvm_poke,
    .map = kvm_map,
    .unmap = kvm_unmap,
};
