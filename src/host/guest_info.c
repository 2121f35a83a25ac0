/* mote_guest_info_read: what a guest ELF declares, from the file alone.
 *
 * Nothing here creates a VM or runs guest code, so it works without
 * /dev/kvm and on guests whose init would fail. The function table comes
 * from the ELF (the function table note, src/host/elf.c) rather than from
 * the INIT message a booted guest sends; both describe the same .mote_fns
 * section, so a sandbox lists the same functions in the same order. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/elf.h"
#include "host/internal.h"

/* Map `path` read-only, with the checks and messages of mote_sandbox_new. */
static int map_guest(const char *path, void **elf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return mote_fail(e == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO, "cannot open %s: %s", path,
		                 strerror(e));
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = mote_fail(-MOTE_EIO, "%s is not a regular file", path);
	} else if (st.st_size == 0) {
		rc = mote_fail(-MOTE_EBADELF, "%s: empty file, not an ELF", path);
	} else {
		*len = (size_t)st.st_size;
		*elf = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (*elf == MAP_FAILED) {
			rc = mote_fail(-MOTE_EIO, "cannot map %s: %s", path, strerror(errno));
		}
	}
	close(fd);
	return rc;
}

/* What the info's priv_ holds: one block with the function array, every
 * argument type array and then every name. */
struct guest_info_priv {
	size_t n;
	mote_function_info functions[];
};

static int copy_functions(mote_guest_info *out, const struct mote_elf_function *fns, size_t n)
{
	size_t names = 0;
	for (size_t i = 0; i < n; i++)
		names += strlen(fns[i].name) + 1; /* <= MOTE_MAX_NAME + 1 each */
	size_t head = sizeof(struct guest_info_priv) + n * sizeof(mote_function_info);
	size_t types = n * MOTE_MAX_ARGS * sizeof(mote_type);
	struct guest_info_priv *p = mote_malloc(head + types + names);
	if (!p)
		return -MOTE_ENOMEM;
	mote_type *args = (mote_type *)((char *)p + head);
	char *name = (char *)args + types;
	for (size_t i = 0; i < n; i++, args += MOTE_MAX_ARGS) {
		size_t nlen = strlen(fns[i].name) + 1;
		memcpy(name, fns[i].name, nlen);
		for (unsigned a = 0; a < fns[i].nargs; a++)
			args[a] = (mote_type)fns[i].args[a];
		p->functions[i] =
		    (mote_function_info){name, (mote_type)fns[i].ret, fns[i].nargs, args};
		name += nlen;
	}
	p->n = n;
	out->priv_ = p;
	return 0;
}

static int read_info(const char *path, const void *elf, size_t len, mote_guest_info *out)
{
	char err[480];
	struct mote_elf_image img;
	int rc = mote_elf_parse(elf, len, &img, err, sizeof(err));
	if (rc) {
		if (rc == -MOTE_EABI)
			out->abi_version = img.abi_version;
		return mote_fail(rc, "%s: %s", path, err);
	}
	/* The sizes a default sandbox gets (sandbox_create does the same). */
	struct mote_config cfg;
	struct mote_layout lay;
	mote_config_defaults(&cfg);
	rc = mote_layout_compute(&cfg, img.image_end, &lay, err, sizeof(err));
	if (rc) {
		return mote_fail(rc, "%s: %s", path, err);
	}
	struct mote_elf_function *fns;
	size_t n;
	rc = mote_elf_read_functions(elf, len, &img, &fns, &n, err, sizeof(err));
	if (rc) {
		return mote_fail(rc, "%s: %s", path, err);
	}
	rc = copy_functions(out, fns, n);
	mote_free(fns);
	if (rc) {
		return mote_fail(rc, "out of memory");
	}
	out->abi_version = img.abi_version;
	out->entry = img.entry;
	out->file_size = len;
	out->image_size = img.image_end - MOTE_IMAGE_BASE;
	out->mem_size = lay.mem_size;
	out->heap_size = lay.heap_size;
	out->stack_size = lay.stack_size;
	out->input_size = lay.in_size;
	out->output_size = lay.out_size;
	return 0;
}

int mote_guest_info_read(const char *path, mote_guest_info *out)
{
	if (!path || !out) {
		return mote_fail(-MOTE_EINVAL, "mote_guest_info_read: no %s",
		                 !path ? "path" : "out");
	}
	memset(out, 0, sizeof(*out));
	void *elf = NULL;
	size_t len = 0;
	int rc = map_guest(path, &elf, &len);
	if (rc)
		return rc;
	rc = read_info(path, elf, len, out);
	munmap(elf, len);
	if (rc) {
		uint32_t version = out->abi_version; /* kept for -MOTE_EABI */
		mote_guest_info_free(out);
		out->abi_version = version;
	}
	return rc;
}

void mote_guest_info_free(mote_guest_info *info)
{
	if (!info)
		return;
	mote_free(info->priv_);
	memset(info, 0, sizeof(*info));
}

size_t mote_guest_info_function_count(const mote_guest_info *info)
{
	const struct guest_info_priv *p = info ? info->priv_ : NULL;
	return p ? p->n : 0;
}

int mote_guest_info_function(const mote_guest_info *info, size_t index, mote_function_info *out)
{
	const struct guest_info_priv *p = info ? info->priv_ : NULL;
	if (!p || !out)
		return mote_fail(-MOTE_EINVAL, "mote_guest_info_function: no %s",
		                 !info ? "info"
		                 : !p  ? "info read"
		                       : "out");
	if (index >= p->n)
		return mote_fail(-MOTE_EINVAL,
		                 "mote_guest_info_function: index %zu, the guest has %zu functions",
		                 index, p->n);
	*out = p->functions[index];
	return 0;
}
