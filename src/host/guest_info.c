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
		mote_set_last_error("cannot open %s: %s", path, strerror(e));
		return e == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mote_set_last_error("%s is not a regular file", path);
		rc = -MOTE_EIO;
	} else if (st.st_size == 0) {
		mote_set_last_error("%s: empty file, not an ELF", path);
		rc = -MOTE_EBADELF;
	} else {
		*len = (size_t)st.st_size;
		*elf = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (*elf == MAP_FAILED) {
			mote_set_last_error("cannot map %s: %s", path, strerror(errno));
			rc = -MOTE_EIO;
		}
	}
	close(fd);
	return rc;
}

/* Copy the table out of the file's bytes: one block holds every argument
 * type array and then every name, and becomes out->priv_. */
static int copy_functions(mote_guest_info *out, const struct mote_elf_function *fns, size_t n)
{
	size_t names = 0;
	for (size_t i = 0; i < n; i++)
		names += strlen(fns[i].name) + 1; /* <= MOTE_MAX_NAME + 1 each */
	size_t types = n * MOTE_MAX_ARGS * sizeof(mote_type);
	out->functions = mote_calloc(n + 1, sizeof(*out->functions));
	out->priv_ = mote_malloc(types + names);
	if (!out->functions || !out->priv_)
		return -MOTE_ENOMEM;
	mote_type *args = out->priv_;
	char *name = (char *)out->priv_ + types;
	for (size_t i = 0; i < n; i++, args += MOTE_MAX_ARGS) {
		size_t nlen = strlen(fns[i].name) + 1;
		memcpy(name, fns[i].name, nlen);
		for (unsigned a = 0; a < fns[i].nargs; a++)
			args[a] = (mote_type)fns[i].args[a];
		out->functions[i] =
		    (mote_function_info){name, (mote_type)fns[i].ret, fns[i].nargs, args};
		name += nlen;
	}
	out->nfunctions = n;
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
		mote_set_last_error("%s: %s", path, err);
		return rc;
	}
	/* The sizes a default sandbox gets (sandbox_create does the same). */
	struct mote_config cfg;
	struct mote_layout lay;
	mote_config_defaults(&cfg);
	rc = mote_layout_compute(&cfg, img.image_end, &lay, err, sizeof(err));
	if (rc) {
		mote_set_last_error("%s: %s", path, err);
		return rc;
	}
	struct mote_elf_function *fns;
	size_t n;
	rc = mote_elf_read_functions(elf, len, &img, &fns, &n, err, sizeof(err));
	if (rc) {
		mote_set_last_error("%s: %s", path, err);
		return rc;
	}
	rc = copy_functions(out, fns, n);
	mote_free(fns);
	if (rc) {
		mote_set_last_error("out of memory");
		return rc;
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
	void *elf;
	size_t len;
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
	mote_free(info->functions);
	mote_free(info->priv_);
	memset(info, 0, sizeof(*info));
}
