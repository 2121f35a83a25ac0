/* libFuzzer target for the guest ELF validator. ASan/UBSan catch memory and
 * arithmetic errors; this file checks that whatever the parser accepts really
 * satisfies the promises in src/host/elf.h, and traps if not. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/abi.h"
#include "host/elf.h"
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
	return 0;
}
