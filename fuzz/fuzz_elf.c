/* libFuzzer target for the guest ELF validator and the function table
 * reader. ASan/UBSan catch memory and arithmetic errors, LeakSanitizer
 * leaks; this file checks that whatever they accept really satisfies the
 * promises in src/host/elf.h, and traps if not. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/abi.h"
#include "host/elf.h"
#include "host/internal.h"
#include "mote.h"

#define PAGE_MASK_ (MOTE_PAGE_SIZE - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		__builtin_trap();
}

static void check_image(const struct mote_elf_image *im, size_t size)
{
	int entry_ok = 0;

	require(im->nsegments >= 1 && im->nsegments <= MOTE_ELF_MAX_SEGMENTS);
	require(im->abi_version == MOTE_ABI_VERSION);
	for (unsigned i = 0; i < im->nsegments; i++) {
		const struct mote_elf_segment *s = &im->segments[i];

		require(s->memsz > 0 && s->filesz <= s->memsz);
		require(s->vaddr >= MOTE_IMAGE_BASE && s->vaddr < MOTE_IMAGE_LIMIT);
		require(s->memsz <= MOTE_IMAGE_LIMIT - s->vaddr);
		require(s->offset <= size && s->filesz <= size - s->offset);
		require(((s->vaddr ^ s->offset) & PAGE_MASK_) == 0);
		require((s->flags & ~(MOTE_SEG_R | MOTE_SEG_W | MOTE_SEG_X)) == 0);
		if (i > 0) {
			/* Sorted, and not even sharing a page with the previous. */
			const struct mote_elf_segment *p = &im->segments[i - 1];
			uint64_t pend = (p->vaddr + p->memsz + PAGE_MASK_) & ~PAGE_MASK_;
			require(pend <= (s->vaddr & ~PAGE_MASK_));
		}
		if ((s->flags & MOTE_SEG_X) && im->entry >= s->vaddr &&
		    im->entry - s->vaddr < s->memsz)
			entry_ok = 1;
	}
	require(entry_ok);
	const struct mote_elf_segment *last = &im->segments[im->nsegments - 1];
	require(im->image_end == ((last->vaddr + last->memsz + PAGE_MASK_) & ~PAGE_MASK_));
	require(im->image_end <= MOTE_IMAGE_LIMIT);
}

/* The note's range, as mote_elf_parse promises it. */
static void check_fns_range(const struct mote_elf_image *im)
{
	uint64_t start = im->fns_start, end = im->fns_end;
	require(start % 8 == 0 && end >= start);
	require((end - start) % sizeof(struct mote_wire_desc) == 0);
	require((end - start) / sizeof(struct mote_wire_desc) <= MOTE_ELF_MAX_FUNCTIONS);
	if (start == end) {
		require(start >= MOTE_IMAGE_BASE && start <= im->image_end);
		return;
	}
	int inside = 0;
	for (unsigned i = 0; i < im->nsegments; i++) {
		const struct mote_elf_segment *s = &im->segments[i];
		if (start >= s->vaddr && end <= s->vaddr + s->filesz)
			inside = 1;
	}
	require(inside);
}

static void check_functions(const struct mote_elf_function *fns, size_t n, const uint8_t *data,
			    size_t size)
{
	for (size_t i = 0; i < n; i++) {
		const struct mote_elf_function *f = &fns[i];
		const uint8_t *p = (const uint8_t *)f->name;
		require(p >= data && p < data + size);
		const uint8_t *nul = memchr(p, 0, (size_t)(data + size - p));
		require(nul && nul > p && nul - p <= MOTE_MAX_NAME);
		require(f->ret < MOTE_TYPE_COUNT_ && f->nargs <= MOTE_MAX_ARGS);
		for (unsigned a = 0; a < f->nargs; a++)
			require(f->args[a] != MOTE_VOID && f->args[a] < MOTE_TYPE_COUNT_);
		for (size_t j = 0; j < i; j++)
			require(strcmp(fns[j].name, f->name) != 0);
	}
}

/* The table reader on an image mote_elf_parse accepted. */
static void fuzz_table(const uint8_t *data, size_t size, const struct mote_elf_image *im)
{
	struct mote_elf_function *fns, *fns2;
	size_t n, n2;
	char err[256], small[9];

	if (im->has_fns)
		check_fns_range(im);
	memset(err, 'X', sizeof(err));
	int rc = mote_elf_read_functions(data, size, im, &fns, &n, err, sizeof(err));
	require(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc == 0) {
		require(im->has_fns && err[0] == '\0');
		require(n == (im->fns_end - im->fns_start) / sizeof(struct mote_wire_desc));
		check_functions(fns, n, data, size);
	} else {
		require(rc == -MOTE_EBADELF || rc == -MOTE_ENOMEM);
		require(fns == NULL && n == 0 && err[0] != '\0');
		require(im->has_fns || strstr(err, "no function table note"));
	}
	/* Same verdict and table without the reason or with a cut one. */
	require(mote_elf_read_functions(data, size, im, &fns2, &n2, NULL, 0) == rc);
	require(n2 == n);
	for (size_t i = 0; i < n; i++)
		require(fns2[i].name == fns[i].name && fns2[i].nargs == fns[i].nargs);
	mote_free(fns2);
	memset(small, 'X', sizeof(small));
	require(mote_elf_read_functions(data, size, im, &fns2, &n2, small, sizeof(small)) == rc);
	require(memchr(small, '\0', sizeof(small)) != NULL);
	require(strncmp(small, err, sizeof(small) - 1) == 0);
	mote_free(fns2);
	mote_free(fns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mote_elf_image im, im2;
	char err[256], small[9];

	memset(err, 'X', sizeof(err));
	int rc = mote_elf_parse(data, size, &im, err, sizeof(err));
	require(memchr(err, '\0', sizeof(err)) != NULL);

	if (rc == 0) {
		require(err[0] == '\0');
		check_image(&im, size);
	} else if (rc == -MOTE_EABI) {
		require(err[0] != '\0');
		require(im.abi_version != MOTE_ABI_VERSION);
		require(im.nsegments == 0);
	} else {
		require(rc == -MOTE_EBADELF);
		require(err[0] != '\0');
		require(im.nsegments == 0);
	}

	/* The verdict does not depend on how (or whether) the reason is kept. */
	require(mote_elf_parse(data, size, &im2, NULL, 0) == rc);
	memset(small, 'X', sizeof(small));
	require(mote_elf_parse(data, size, &im2, small, sizeof(small)) == rc);
	require(memchr(small, '\0', sizeof(small)) != NULL);
	require(strncmp(small, err, sizeof(small) - 1) == 0);
	require(memcmp(&im, &im2, sizeof(im)) == 0);
	if (rc == 0)
		fuzz_table(data, size, &im);
	return 0;
}
