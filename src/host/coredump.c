/* Guest core dumps: an ELF core file that stock gdb opens beside the guest
 * ELF ("gdb guest.elf core.mote.PID.N").
 *
 * Layout: the ELF header, then the guest pages that are not zero (page
 * aligned, from offset 4096), then the notes, then the program headers
 * (e_phoff may point anywhere; writing them last lets one pass over guest
 * memory find the segments). Guest memory is identity-mapped, so a guest
 * address is both p_vaddr and p_paddr. Zero runs become PT_LOAD segments
 * with no file bytes, so gdb reads them as zeros instead of failing, and a
 * 1 GiB sandbox with 64 KiB in use gives a file of about 64 KiB.
 *
 * Notes, as Linux writes them for a process: NT_PRSTATUS (registers and
 * signal), NT_PRPSINFO (the name gdb prints), NT_FPREGSET (FXSAVE area),
 * NT_AUXV (AT_ENTRY, when the guest's entry point is known). */
#include "host/coredump.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/procfs.h>
#include <sys/user.h>
#include <unistd.h>

#include "host/internal.h"
#include "host/snapshot.h"

#define CORE_DATA_START 4096u
/* Guest memory is read in batches this large. */
#define CORE_BATCH (1u << 20)
/* A zero run shorter than this between two data runs is stored as data:
 * fewer segments for gdb to search, at most this many zero bytes more. */
#define CORE_MERGE_GAP (16u * MOTE_PAGE_SIZE)

struct core_seg {
	uint64_t addr, size;
	uint64_t file_offset; /* 0: a zero run, no bytes in the file */
};

struct core_writer {
	int fd;
	uint64_t off; /* next file offset for data */
	struct core_seg *segs;
	size_t nsegs, cap;
	char *err;
	size_t errlen;
};

static int put_bytes(struct core_writer *w, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(w->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mote_err(w->err, w->errlen, -MOTE_EIO,
			                "cannot write the core file: %s",
			                n < 0 ? strerror(errno) : "short write");
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int add_seg(struct core_writer *w, uint64_t addr, uint64_t size, bool data)
{
	struct core_seg *last = w->nsegs ? &w->segs[w->nsegs - 1] : NULL;
	if (last && last->addr + last->size == addr && (last->file_offset != 0) == data) {
		last->size += size;
		return 0;
	}
	if (w->nsegs == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct core_seg *s = mote_realloc(w->segs, cap * sizeof(*s));
		if (!s)
			return mote_err(w->err, w->errlen, -MOTE_ENOMEM, "out of memory");
		w->segs = s;
		w->cap = cap;
	}
	w->segs[w->nsegs++] = (struct core_seg){addr, size, data ? w->off : 0};
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (size_t i = 0; i < MOTE_PAGE_SIZE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Store [addr, addr + size) of guest memory, all of it pages that may be
 * non-zero: data runs go to the file, zero pages become zero runs. */
static int store_range(struct mote_sandbox *sb, struct core_writer *w, uint8_t *buf, uint64_t addr,
                       uint64_t size)
{
	uint64_t pending_zero = 0; /* zero bytes after the last data, not yet added */
	while (size) {
		uint64_t len = size < CORE_BATCH ? size : CORE_BATCH;
		struct mote_mem_copy c = {addr, buf, len};
		int rc = sb->be->read(sb, &c, 1);
		if (rc)
			return mote_err(w->err, w->errlen, rc, "cannot read guest memory at 0x%llx",
			                (unsigned long long)addr);
		for (uint64_t o = 0; o < len; o += MOTE_PAGE_SIZE) {
			uint64_t page = addr + o;
			if (page_is_zero(buf + o)) {
				pending_zero += MOTE_PAGE_SIZE;
				continue;
			}
			/* A short zero gap inside data is written as data. */
			bool in_data = w->nsegs && w->segs[w->nsegs - 1].file_offset &&
			               w->segs[w->nsegs - 1].addr + w->segs[w->nsegs - 1].size ==
			                   page - pending_zero;
			if (pending_zero && in_data && pending_zero < CORE_MERGE_GAP) {
				static const uint8_t zero[MOTE_PAGE_SIZE];
				for (uint64_t z = 0; z < pending_zero; z += MOTE_PAGE_SIZE) {
					rc = put_bytes(w, zero, MOTE_PAGE_SIZE, w->off);
					if (rc)
						return rc;
					w->off += MOTE_PAGE_SIZE;
				}
				w->segs[w->nsegs - 1].size += pending_zero;
			} else if (pending_zero) {
				rc = add_seg(w, page - pending_zero, pending_zero, false);
				if (rc)
					return rc;
			}
			pending_zero = 0;
			rc = add_seg(w, page, MOTE_PAGE_SIZE, true);
			if (!rc)
				rc = put_bytes(w, buf + o, MOTE_PAGE_SIZE, w->off);
			if (rc)
				return rc;
			w->off += MOTE_PAGE_SIZE;
		}
		addr += len;
		size -= len;
	}
	return pending_zero ? add_seg(w, addr - pending_zero, pending_zero, false) : 0;
}

/* Every guest page, in address order: pages never touched are zero runs
 * without reading them. */
static int store_memory(struct mote_sandbox *sb, struct core_writer *w)
{
	uint8_t *buf = mote_malloc(CORE_BATCH);
	if (!buf)
		return mote_err(w->err, w->errlen, -MOTE_ENOMEM, "out of memory");
	uint64_t pages = sb->mem_size / MOTE_PAGE_SIZE;
	int rc = 0;
	for (uint64_t p = 0; !rc && p < pages;) {
		bool touched = mote_bitmap_test(sb->touched, p);
		uint64_t q = p + 1;
		while (q < pages && mote_bitmap_test(sb->touched, q) == touched)
			q++;
		uint64_t addr = p * MOTE_PAGE_SIZE, size = (q - p) * MOTE_PAGE_SIZE;
		rc = touched ? store_range(sb, w, buf, addr, size) : add_seg(w, addr, size, false);
		p = q;
	}
	mote_free(buf);
	return rc;
}

/* One note: "CORE" name, descriptor padded to 4 bytes. */
static size_t put_note(uint8_t *dst, uint32_t type, const void *desc, uint32_t size)
{
	Elf64_Nhdr h = {.n_namesz = 5, .n_descsz = size, .n_type = type};
	size_t n = 0;
	memcpy(dst + n, &h, sizeof(h));
	n += sizeof(h);
	memcpy(dst + n, "CORE\0\0\0", 8);
	n += 8;
	memcpy(dst + n, desc, size);
	n += size;
	while (n % 4)
		dst[n++] = 0;
	return n;
}

#define NOTE_SIZE(desc) (sizeof(Elf64_Nhdr) + 8 + (((desc) + 3u) & ~3u))

static void fill_regs(struct user_regs_struct *r, const struct mote_cpu_state *st)
{
	const uint64_t *g = st->gpr; /* rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
	*r = (struct user_regs_struct){.rax = g[0],
	                               .rcx = g[1],
	                               .rdx = g[2],
	                               .rbx = g[3],
	                               .rsp = g[4],
	                               .rbp = g[5],
	                               .rsi = g[6],
	                               .rdi = g[7],
	                               .r8 = g[8],
	                               .r9 = g[9],
	                               .r10 = g[10],
	                               .r11 = g[11],
	                               .r12 = g[12],
	                               .r13 = g[13],
	                               .r14 = g[14],
	                               .r15 = g[15],
	                               .orig_rax = ~0ull,
	                               .rip = st->rip,
	                               .eflags = st->rflags | 0x202, /* reserved bit 1, IF */
	                               .cs = MOTE_SEL_UCODE,
	                               .ss = MOTE_SEL_UDATA,
	                               .ds = MOTE_SEL_UDATA,
	                               .es = MOTE_SEL_UDATA,
	                               .fs_base = st->fs_base,
	                               .gs_base = st->gs_base};
}

static int write_core(struct mote_sandbox *sb, const struct mote_core_state *cs, int fd, char *err,
                      size_t errlen)
{
	struct core_writer w = {.fd = fd, .off = CORE_DATA_START, .err = err, .errlen = errlen};
	bool any;
	/* Fold the backend's record of guest writes into sb->touched (the
	 * dirty set keeps them for the next restore). */
	int rc = mote_sandbox_collect_dirty(sb, &any, false);
	if (rc)
		return mote_err(err, errlen, rc, "%s", sb->err);
	rc = store_memory(sb, &w);
	if (rc)
		goto out;

	struct elf_prstatus prs;
	memset(&prs, 0, sizeof(prs));
	prs.pr_info.si_signo = cs->signo;
	prs.pr_cursig = (short)cs->signo;
	prs.pr_pid = prs.pr_ppid = prs.pr_pgrp = prs.pr_sid = getpid();
	struct user_regs_struct regs;
	fill_regs(&regs, &cs->cpu);
	_Static_assert(sizeof(regs) == sizeof(prs.pr_reg), "NT_PRSTATUS holds user_regs_struct");
	memcpy(&prs.pr_reg, &regs, sizeof(regs));
	prs.pr_fpvalid = 1;

	struct elf_prpsinfo psi;
	memset(&psi, 0, sizeof(psi));
	psi.pr_state = 0;
	psi.pr_sname = 'R';
	psi.pr_pid = prs.pr_pid;
	const char *name = cs->guest_path ? strrchr(cs->guest_path, '/') : NULL;
	name = name ? name + 1 : cs->guest_path ? cs->guest_path : "mote-guest";
	snprintf(psi.pr_fname, sizeof(psi.pr_fname), "%s", name);
	snprintf(psi.pr_psargs, sizeof(psi.pr_psargs), "%s",
	         cs->guest_path ? cs->guest_path : name);

	_Static_assert(sizeof(struct user_fpregs_struct) == sizeof(cs->cpu.fxsave),
	               "NT_FPREGSET is the FXSAVE area");
	uint64_t auxv[4] = {AT_ENTRY, cs->entry, AT_NULL, 0};
	const void *auxv_desc = cs->entry ? (const void *)auxv : (const void *)(auxv + 2);
	uint32_t auxv_size = cs->entry ? sizeof(auxv) : 2 * sizeof(uint64_t);

	uint8_t notes[NOTE_SIZE(sizeof(prs)) + NOTE_SIZE(sizeof(psi)) + NOTE_SIZE(512) +
	              NOTE_SIZE(sizeof(auxv))];
	size_t nlen = 0;
	nlen += put_note(notes + nlen, NT_PRSTATUS, &prs, sizeof(prs));
	nlen += put_note(notes + nlen, NT_PRPSINFO, &psi, sizeof(psi));
	nlen += put_note(notes + nlen, NT_FPREGSET, cs->cpu.fxsave, sizeof(cs->cpu.fxsave));
	nlen += put_note(notes + nlen, NT_AUXV, auxv_desc, auxv_size);
	uint64_t notes_off = w.off;
	rc = put_bytes(&w, notes, nlen, notes_off);
	if (rc)
		goto out;

	size_t phnum = w.nsegs + 1;
	if (phnum >= PN_XNUM) {
		rc = mote_err(err, errlen, -MOTE_ETOOBIG,
		              "guest memory is too fragmented for a core file (%zu segments)",
		              w.nsegs);
		goto out;
	}
	uint64_t phoff = (notes_off + nlen + 7) & ~7ull;
	Elf64_Phdr *ph = mote_calloc(phnum, sizeof(*ph));
	if (!ph) {
		rc = mote_err(err, errlen, -MOTE_ENOMEM, "out of memory");
		goto out;
	}
	ph[0] =
	    (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = nlen, .p_align = 4};
	for (size_t i = 0; i < w.nsegs; i++) {
		const struct core_seg *s = &w.segs[i];
		ph[i + 1] = (Elf64_Phdr){.p_type = PT_LOAD,
		                         .p_flags = PF_R | PF_W | PF_X,
		                         .p_offset = s->file_offset ? s->file_offset : w.off,
		                         .p_vaddr = s->addr,
		                         .p_paddr = s->addr,
		                         .p_filesz = s->file_offset ? s->size : 0,
		                         .p_memsz = s->size,
		                         .p_align = MOTE_PAGE_SIZE};
	}
	rc = put_bytes(&w, ph, phnum * sizeof(*ph), phoff);
	mote_free(ph);
	if (rc)
		goto out;

	Elf64_Ehdr eh = {
	    .e_ident = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT,
	                ELFOSABI_NONE},
	    .e_type = ET_CORE,
	    .e_machine = EM_X86_64,
	    .e_version = EV_CURRENT,
	    .e_phoff = phoff,
	    .e_ehsize = sizeof(Elf64_Ehdr),
	    .e_phentsize = sizeof(Elf64_Phdr),
	    .e_phnum = (uint16_t)phnum,
	};
	rc = put_bytes(&w, &eh, sizeof(eh), 0);
out:
	mote_free(w.segs);
	return rc;
}

int mote_core_dump_fd(struct mote_sandbox *sb, const struct mote_core_state *cs, int fd, char *err,
                      size_t errlen)
{
	if (ftruncate(fd, 0) < 0)
		return mote_err(err, errlen, -MOTE_EIO, "cannot write the core file: %s",
		                strerror(errno));
	return write_core(sb, cs, fd, err, errlen);
}

int mote_core_dump_path(struct mote_sandbox *sb, const struct mote_core_state *cs, const char *path,
                        bool exclusive, char *err, size_t errlen)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC);
	/* 0600: the file holds guest memory, which may be secret. */
	int fd = open(path, flags, 0600);
	if (fd < 0)
		return mote_err(err, errlen, errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO,
		                "cannot create %s: %s", path, strerror(errno));
	int rc = mote_core_dump_fd(sb, cs, fd, err, errlen);
	if (close(fd) < 0 && !rc)
		rc = mote_err(err, errlen, -MOTE_EIO, "cannot write %s: %s", path, strerror(errno));
	if (rc)
		unlink(path);
	return rc;
}

int mote_core_signal(unsigned vector)
{
	switch (vector) {
	case 0:  /* #DE */
	case 16: /* #MF */
	case 19: /* #XM */
		return SIGFPE;
	case 1: /* #DB */
	case 3: /* #BP */
		return SIGTRAP;
	case 6: /* #UD */
		return SIGILL;
	case 17: /* #AC */
		return SIGBUS;
	default:
		return SIGSEGV;
	}
}
