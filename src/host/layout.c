/* Guest memory layout, page tables and the CPL 0 scaffolding (GDT, TSS, IDT,
 * exception stubs). The host builds all of it so the guest never runs the
 * (emulated, slow on PVM) CPL 0 setup code itself. */
#include <string.h>

#include "host/elf.h"
#include "host/internal.h"

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_A 0x20ull
#define PTE_D 0x40ull
#define PTE_PS 0x80ull
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

int mote_layout_compute(const struct mote_config *cfg, uint64_t image_end,
			struct mote_layout *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (image_end < MOTE_IMAGE_BASE || image_end > MOTE_IMAGE_LIMIT) {
		mote_errf(err, errlen, "image end 0x%llx outside the image area",
			  (unsigned long long)image_end);
		return -MOTE_EINVAL;
	}
	uint64_t p = align_up(image_end, MOTE_PAGE_SIZE);
	out->image_end = p;
	p += MOTE_PAGE_SIZE; /* stack guard: never mapped */
	out->stack_base = p;
	out->stack_size = align_up(cfg->stack_size, MOTE_PAGE_SIZE);
	p += out->stack_size;
	out->in_buf = p;
	out->in_size = align_up(cfg->input_size, MOTE_PAGE_SIZE);
	p += out->in_size;
	out->out_buf = p;
	out->out_size = align_up(cfg->output_size, MOTE_PAGE_SIZE);
	p += out->out_size;
	out->log_buf = p;
	out->log_size = align_up(cfg->log_size, MOTE_PAGE_SIZE);
	p += out->log_size;
	out->heap_base = p;
	out->heap_size = align_up(cfg->heap_size, MOTE_PAGE_SIZE);
	p += out->heap_size;
	if (p > MOTE_MEM_LIMIT) {
		mote_errf(err, errlen, "guest memory of %llu bytes exceeds the %llu-byte limit",
			  (unsigned long long)p, (unsigned long long)MOTE_MEM_LIMIT);
		return -MOTE_EINVAL;
	}
	out->mem_size = p;
	return 0;
}

struct pt_builder {
	uint8_t *mem;
	uint64_t next;  /* next free page-table page */
	uint64_t limit; /* end of the page-table area */
};

static uint64_t *pt_entry(uint8_t *mem, uint64_t table, unsigned idx)
{
	return (uint64_t *)(mem + table) + idx;
}

/* Return the table an entry points to, allocating it if absent. */
static int pt_next_level(struct pt_builder *b, uint64_t *entry, uint64_t *table)
{
	if (*entry & PTE_P) {
		*table = *entry & PTE_ADDR;
		return 0;
	}
	if (b->next + MOTE_PAGE_SIZE > b->limit)
		return -MOTE_ENOMEM;
	*table = b->next;
	b->next += MOTE_PAGE_SIZE;
	/* Upper levels grant everything; leaves decide. A is preset so the CPU
	 * never writes page tables (keeps them clean for dirty tracking). */
	*entry = *table | PTE_P | PTE_RW | PTE_US | PTE_A;
	return 0;
}

/* Map [va, va+len) identity with leaf flags; 2 MiB pages where aligned. */
static int pt_map(struct pt_builder *b, uint64_t va, uint64_t len, uint64_t flags)
{
	uint64_t end = va + len;
	flags |= PTE_P | PTE_A;
	if (flags & PTE_RW)
		flags |= PTE_D;
	while (va < end) {
		uint64_t pdpt, pd, pt;
		int rc = pt_next_level(b, pt_entry(b->mem, MOTE_PGTABLE_ADDR, (va >> 39) & 511), &pdpt);
		if (!rc)
			rc = pt_next_level(b, pt_entry(b->mem, pdpt, (va >> 30) & 511), &pd);
		if (rc)
			return rc;
		uint64_t *pde = pt_entry(b->mem, pd, (va >> 21) & 511);
		if ((va & (MOTE_LARGE_PAGE_SIZE - 1)) == 0 && end - va >= MOTE_LARGE_PAGE_SIZE &&
		    !(*pde & PTE_P)) {
			*pde = va | flags | PTE_PS;
			va += MOTE_LARGE_PAGE_SIZE;
			continue;
		}
		rc = pt_next_level(b, pde, &pt);
		if (rc)
			return rc;
		*pt_entry(b->mem, pt, (va >> 12) & 511) = va | flags;
		va += MOTE_PAGE_SIZE;
	}
	return 0;
}

static uint64_t gdt_entry(uint32_t base, uint32_t limit, uint16_t flags)
{
	/* flags: access byte in bits 0-7, flags nibble (G, D/B, L, AVL) in 12-15. */
	return (uint64_t)(limit & 0xffff) | ((uint64_t)(base & 0xffffff) << 16) |
	       ((uint64_t)(flags & 0xff) << 40) | ((uint64_t)((limit >> 16) & 0xf) << 48) |
	       ((uint64_t)((flags >> 12) & 0xf) << 52) | ((uint64_t)(base >> 24) << 56);
}

/* Vectors for which the CPU pushes an error code. */
static bool vector_has_error_code(unsigned v)
{
	return v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17 ||
	       v == 21 || v == 29 || v == 30;
}

static void write_cpl0(uint8_t *mem)
{
	uint64_t *gdt = (uint64_t *)(mem + MOTE_GDT_ADDR);
	/* Accessed bits preset: the CPU never writes the read-only GDT page. */
	gdt[MOTE_SEL_KCODE >> 3] = gdt_entry(0, 0xfffff, 0xa09b);
	gdt[MOTE_SEL_KDATA >> 3] = gdt_entry(0, 0xfffff, 0xc093);
	gdt[MOTE_SEL_UDATA >> 3] = gdt_entry(0, 0xfffff, 0xc0f3);
	gdt[MOTE_SEL_UCODE >> 3] = gdt_entry(0, 0xfffff, 0xa0fb);
	uint64_t tss = MOTE_GDT_ADDR + MOTE_TSS_OFFSET;
	gdt[MOTE_SEL_TSS >> 3] = gdt_entry((uint32_t)tss, MOTE_TSS_LIMIT, 0x008b);
	gdt[(MOTE_SEL_TSS >> 3) + 1] = tss >> 32;

	/* 64-bit TSS: RSP0 and IST1 both point at the exception stack, so every
	 * exception, even one raised at CPL 0, starts on a known good stack. */
	uint8_t *t = mem + tss;
	uint64_t top = MOTE_KSTACK_TOP;
	memcpy(t + 4, &top, 8);    /* rsp0 */
	memcpy(t + 0x24, &top, 8); /* ist1 */
	/* I/O permission bitmap right after the TSS: ports 0-255 open to CPL 3
	 * (zero bits), then the 0xff terminator byte the CPU requires. */
	uint16_t iomap = 0x68;
	memcpy(t + 0x66, &iomap, 2);
	memset(t + 0x68, 0, 32);
	t[0x68 + 32] = 0xff;

	/* Where SYSCALL lands (MSR_LSTAR). With EFER.SCE clear `syscall` is
	 * #UD on hardware, but a KVM flavour that emulates CPL 0 (kvm-pvm)
	 * takes it, and runs the target with user rights, so the page is user
	 * executable; this stub turns it into the same #UD report:
	 * out %al, $SYSCALL ; hlt ; jmp . A guest may run it too: it only
	 * reports a #UD of its own. */
	uint8_t *sc = mem + MOTE_SYSCALL_STUB_ADDR;
	sc[0] = 0xe6;
	sc[1] = (uint8_t)MOTE_PORT_SYSCALL;
	sc[2] = 0xf4;
	sc[3] = 0xeb;
	sc[4] = 0xfe;

	/* Stub for vector v: [push $0] ; out %al, $(EXC_BASE + v) ; hlt ; jmp . */
	uint8_t *stubs = mem + MOTE_STUBS_ADDR;
	uint8_t *idt = mem + MOTE_IDT_ADDR;
	for (unsigned v = 0; v < 32; v++) {
		uint8_t *s = stubs + v * MOTE_STUB_SIZE;
		unsigned i = 0;
		if (!vector_has_error_code(v)) {
			s[i++] = 0x6a;
			s[i++] = 0x00;
		}
		s[i++] = 0xe6;
		s[i++] = (uint8_t)(MOTE_PORT_EXC_BASE + v);
		s[i++] = 0xf4;
		s[i++] = 0xeb;
		s[i++] = 0xfe;
		uint64_t handler = MOTE_STUBS_ADDR + v * MOTE_STUB_SIZE;
		uint8_t *g = idt + v * 16;
		uint16_t lo = handler & 0xffff, mid = (handler >> 16) & 0xffff;
		uint32_t hi = (uint32_t)(handler >> 32);
		uint16_t sel = MOTE_SEL_KCODE;
		memcpy(g, &lo, 2);
		memcpy(g + 2, &sel, 2);
		g[4] = 1;    /* IST1 */
		/* Present 64-bit interrupt gate, DPL 0; DPL 3 for #BP so that int3
		 * at CPL 3 reports #BP rather than #GP(0x1a) (as Linux does). */
		g[5] = v == 3 ? 0xee : 0x8e;
		memcpy(g + 6, &mid, 2);
		memcpy(g + 8, &hi, 4);
	}
}

struct page_map {
	uint64_t va, len, flags;
};

int mote_layout_write_system(uint8_t *mem, const struct mote_layout *lay,
			     const struct mote_elf_image *img, uint64_t *system_end, char *err,
			     size_t errlen)
{
	write_cpl0(mem);

	struct mote_boot_info *bi = (struct mote_boot_info *)(mem + MOTE_BOOTINFO_ADDR);
	bi->magic = MOTE_BOOT_MAGIC;
	bi->abi_version = MOTE_ABI_VERSION;
	bi->mem_size = lay->mem_size;
	bi->image_end = lay->image_end;
	bi->stack_base = lay->stack_base;
	bi->stack_size = lay->stack_size;
	bi->in_buf = lay->in_buf;
	bi->in_size = lay->in_size;
	bi->out_buf = lay->out_buf;
	bi->out_size = lay->out_size;
	bi->log_buf = lay->log_buf;
	bi->log_size = lay->log_size;
	bi->heap_base = lay->heap_base;
	bi->heap_size = lay->heap_size;

	struct pt_builder b = {mem, MOTE_PGTABLE_ADDR + MOTE_PAGE_SIZE, MOTE_IMAGE_BASE};
	struct page_map maps[10 + MOTE_ELF_MAX_SEGMENTS];
	unsigned n = 0;
	maps[n++] = (struct page_map){MOTE_GDT_ADDR, MOTE_PAGE_SIZE, PTE_NX};
	maps[n++] = (struct page_map){MOTE_IDT_ADDR, MOTE_PAGE_SIZE, PTE_NX};
	maps[n++] = (struct page_map){MOTE_STUBS_ADDR, MOTE_PAGE_SIZE, 0};
	maps[n++] = (struct page_map){MOTE_KSTACK_ADDR, MOTE_KSTACK_TOP - MOTE_KSTACK_ADDR,
				      PTE_RW | PTE_NX};
	maps[n++] = (struct page_map){MOTE_BOOTINFO_ADDR, MOTE_PAGE_SIZE, PTE_US | PTE_NX};
	maps[n++] = (struct page_map){MOTE_SYSCALL_ADDR, MOTE_PAGE_SIZE, PTE_US};
	for (unsigned i = 0; i < img->nsegments; i++) {
		const struct mote_elf_segment *s = &img->segments[i];
		uint64_t start = s->vaddr & ~(MOTE_PAGE_SIZE - 1);
		uint64_t end = align_up(s->vaddr + s->memsz, MOTE_PAGE_SIZE);
		uint64_t flags = PTE_US;
		if (s->flags & MOTE_SEG_W)
			flags |= PTE_RW;
		if (!(s->flags & MOTE_SEG_X))
			flags |= PTE_NX;
		maps[n++] = (struct page_map){start, end - start, flags};
	}
	/* Stack, call buffers and heap: everything from the stack to the end,
	 * except the input buffer, which the guest may only read. */
	maps[n++] = (struct page_map){lay->stack_base, lay->in_buf - lay->stack_base,
				      PTE_US | PTE_RW | PTE_NX};
	maps[n++] = (struct page_map){lay->in_buf, lay->in_size, PTE_US | PTE_NX};
	maps[n++] = (struct page_map){lay->out_buf, lay->mem_size - lay->out_buf,
				      PTE_US | PTE_RW | PTE_NX};
	/* The file-mapping window: 2 MiB pages, present from the start; which
	 * parts are backed (and whether writable) is decided by KVM memory
	 * slots added with mote_sandbox_map_file(). (1 GiB pages would need
	 * fewer entries, but kvm-pvm does not offer them.) */
	maps[n++] = (struct page_map){MOTE_MAP_BASE, MOTE_MAP_LIMIT - MOTE_MAP_BASE,
				      PTE_US | PTE_RW | PTE_NX};
	for (unsigned i = 0; i < n; i++) {
		if (pt_map(&b, maps[i].va, maps[i].len, maps[i].flags)) {
			mote_errf(err, errlen, "page tables for %llu bytes do not fit",
				  (unsigned long long)lay->mem_size);
			return -MOTE_ENOMEM;
		}
	}
	*system_end = b.next;
	return 0;
}

void mote_layout_initial_state(const struct mote_layout *lay, uint64_t entry,
			       struct mote_cpu_state *st)
{
	memset(st, 0, sizeof(*st));
	st->rip = entry;
	st->gpr[4] = lay->stack_base + lay->stack_size; /* rsp */
	st->gpr[7] = MOTE_BOOTINFO_ADDR;                /* rdi: first argument */
	/* fxsave left zero: the CPU's reset state. */
}

/* The entry that maps `va` (a leaf, or the non-present entry where the walk
 * stops; 0 past the tables), with the table and level it sits at. */
static uint64_t walk_to_leaf(const uint8_t *mem, uint64_t mem_size, uint64_t va, uint64_t *table,
                             int *level)
{
	uint64_t t = MOTE_PGTABLE_ADDR;
	for (int l = 3; l >= 0; l--) {
		uint64_t at = t + (((va >> (12 + 9 * (unsigned)l)) & 511) * 8ull), e = 0;
		if (at + 8 <= mem_size)
			memcpy(&e, mem + at, 8);
		if (!(e & PTE_P) || l == 0 || (l <= 2 && (e & PTE_PS))) { /* 4 KiB, 2 MiB, 1 GiB */
			*table = t;
			*level = l;
			return e;
		}
		t = e & PTE_ADDR;
	}
	*table = t; /* not reached: level 0 is always a leaf */
	*level = 0;
	return 0;
}

uint64_t mote_layout_leaf_run(const uint8_t *mem, uint64_t mem_size, uint64_t va, uint64_t *span)
{
	const uint64_t alike = PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_NX;
	uint64_t table;
	int level;
	uint64_t e = walk_to_leaf(mem, mem_size, va, &table, &level);
	unsigned shift = 12 + 9 * (unsigned)level, idx = (unsigned)(va >> shift) & 511;
	/* This entry, then those after it in the table that are alike. */
	unsigned end = idx + 1;
	for (; end < 512; end++) {
		uint64_t next = 0, next_at = table + end * 8ull;
		if (next_at + 8 <= mem_size)
			memcpy(&next, mem + next_at, 8);
		if ((next & alike) != (e & alike))
			break;
	}
	*span = (((va >> shift) - idx + end) << shift) - va;
	return e & PTE_P ? e : 0;
}

uint64_t mote_layout_leaf_pte(const uint8_t *mem, uint64_t mem_size, uint64_t va)
{
	uint64_t table;
	int level;
	uint64_t e = walk_to_leaf(mem, mem_size, va, &table, &level);
	return e & PTE_P ? e : 0;
}
