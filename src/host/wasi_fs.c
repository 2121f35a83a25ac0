/* Read-only WASI files for Wasm sandboxes: host directories preopened
 * under a guest name (mote_wasm_preopen), opened and read through internal
 * host functions that the runtime guest's path_open, fd_read, fd_seek,
 * fd_filestat_get and path_filestat_get call.
 *
 * The guest is untrusted: every path is resolved by the kernel beneath its
 * preopened directory (openat2 RESOLVE_BENEATH: no "..", absolute path or
 * symlink leads out), files are opened O_RDONLY, and a handle carries a
 * serial number so that one left over from a snapshot or an earlier
 * module never names a file opened since.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host/wasm_int.h"
#include "mote/wasm.h"

#define MAX_DIRS  16
#define MAX_FILES 64
#define MAX_READ  (1u << 20) /* bytes per pread or readdir reply */

/* WASI preview 1 errno values the host returns. */
enum {
	WE_SUCCESS = 0,
	WE_EACCES = 2,
	WE_EBADF = 8,
	WE_EINVAL = 28,
	WE_EIO = 29,
	WE_EISDIR = 31,
	WE_ELOOP = 32,
	WE_EMFILE = 33,
	WE_ENAMETOOLONG = 37,
	WE_ENOENT = 44,
	WE_ENOMEM = 48,
	WE_ENOTDIR = 54,
	WE_EPERM = 63,
	WE_ENOTCAPABLE = 76,
};

struct wasi_dir {
	char *name; /* as the guest sees it */
	int fd;     /* O_PATH | O_DIRECTORY */
};

struct wasi_file {
	int fd; /* -1: free */
	uint64_t serial;
};

struct mote_wasi_fs {
	struct wasi_dir dirs[MAX_DIRS];
	size_t ndirs;
	struct wasi_file files[MAX_FILES];
	uint64_t next_serial;
};

/* The sandbox's WASI files, made at first use (NULL: out of memory). */
static struct mote_wasi_fs *fs_of(mote_sandbox *sb)
{
	struct mote_wasi_fs **slot = mote_wasm_fs_slot(sb, true);
	if (!slot)
		return NULL;
	if (!*slot) {
		struct mote_wasi_fs *fs = mote_calloc(1, sizeof(*fs));
		if (!fs)
			return NULL;
		for (size_t i = 0; i < MAX_FILES; i++)
			fs->files[i].fd = -1;
		fs->next_serial = 1;
		*slot = fs;
	}
	return *slot;
}

/* The sandbox's WASI files if it has any. */
static struct mote_wasi_fs *fs_if_any(mote_sandbox *sb)
{
	struct mote_wasi_fs **slot = mote_wasm_fs_slot(sb, false);
	return slot ? *slot : NULL;
}

void mote_wasi_fs_close_files(struct mote_wasi_fs *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < MAX_FILES; i++)
		if (fs->files[i].fd >= 0) {
			close(fs->files[i].fd);
			fs->files[i].fd = -1;
		}
}

void mote_wasi_fs_free(struct mote_wasi_fs *fs)
{
	if (!fs)
		return;
	mote_wasi_fs_close_files(fs);
	for (size_t i = 0; i < fs->ndirs; i++) {
		close(fs->dirs[i].fd);
		mote_free(fs->dirs[i].name);
	}
	mote_free(fs);
}

int mote_wasm_preopen(mote_sandbox *sb, const char *guest_path, const char *host_dir)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_preopen: no sandbox");
	if (!guest_path || !host_dir)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_wasm_preopen: no %s",
		                         !guest_path ? "guest path" : "host directory");
	size_t len = strlen(guest_path);
	if (len == 0 || len > 255)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
		                         "preopen guest path must be 1 to 255 bytes, not %zu", len);
	struct mote_wasi_fs *fs = fs_of(sb);
	if (!fs)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	for (size_t i = 0; i < fs->ndirs; i++)
		if (!strcmp(fs->dirs[i].name, guest_path))
			return mote_sandbox_fail(sb, -MOTE_EEXIST, "'%s' is already preopened",
			                         guest_path);
	if (fs->ndirs == MAX_DIRS)
		return mote_sandbox_fail(sb, -MOTE_ETOOBIG, "at most %d preopened directories",
		                         MAX_DIRS);
	int fd = open(host_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mote_sandbox_fail(sb, errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO,
		                         "cannot open directory %s: %s", host_dir, strerror(errno));
	char *name = mote_malloc(len + 1);
	if (!name) {
		close(fd);
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	}
	memcpy(name, guest_path, len + 1);
	fs->dirs[fs->ndirs++] = (struct wasi_dir){name, fd};
	return 0;
}

static uint32_t wasi_errno(int e)
{
	switch (e) {
	case EACCES:
		return WE_EACCES;
	case EISDIR:
		return WE_EISDIR;
	case ELOOP:
		return WE_ELOOP;
	case EMFILE:
	case ENFILE:
		return WE_EMFILE;
	case ENAMETOOLONG:
		return WE_ENAMETOOLONG;
	case ENOENT:
		return WE_ENOENT;
	case ENOMEM:
		return WE_ENOMEM;
	case ENOTDIR:
		return WE_ENOTDIR;
	case EPERM:
		return WE_EPERM;
	case EXDEV: /* RESOLVE_BENEATH: the path leads out of the directory */
		return WE_ENOTCAPABLE;
	case EINVAL:
		return WE_EINVAL;
	default:
		return WE_EIO;
	}
}

/* Open `path` (`len` bytes from the guest, NUL after them) beneath preopen
 * `dir`; a NUL inside it is EINVAL. */
static int open_beneath(struct mote_wasi_fs *fs, uint32_t dir, const char *path, size_t len,
                        uint64_t flags, uint32_t *err)
{
	if (dir >= fs->ndirs) {
		*err = WE_EBADF;
		return -1;
	}
	if (memchr(path, 0, len)) {
		*err = WE_EINVAL;
		return -1;
	}
	/* openat2 refuses O_PATH with any flag but O_CLOEXEC, O_DIRECTORY and
	 * O_NOFOLLOW. */
	struct open_how how = {
	    .flags = flags | O_CLOEXEC | (flags & O_PATH ? 0 : O_NOCTTY),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd;
	do
		fd = (int)syscall(SYS_openat2, fs->dirs[dir].fd, path, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		*err = wasi_errno(errno);
	return fd;
}

/* The 64-byte WASI filestat of `st`. */
static void put_filestat(uint8_t *out, const struct stat *st)
{
	uint8_t type = S_ISREG(st->st_mode)    ? 4
	               : S_ISDIR(st->st_mode)  ? 3
	               : S_ISLNK(st->st_mode)  ? 7
	               : S_ISCHR(st->st_mode)  ? 2
	               : S_ISBLK(st->st_mode)  ? 1
	               : S_ISSOCK(st->st_mode) ? 6
	                                       : 0;
	uint64_t v[8] = {
	    (uint64_t)st->st_dev,
	    (uint64_t)st->st_ino,
	    type,
	    (uint64_t)st->st_nlink,
	    (uint64_t)st->st_size,
	    (uint64_t)st->st_atim.tv_sec * 1000000000u + (uint64_t)st->st_atim.tv_nsec,
	    (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec,
	    (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec,
	};
	memcpy(out, v, sizeof(v));
}

static struct wasi_file *file_of(struct mote_wasi_fs *fs, uint64_t handle)
{
	uint64_t slot = handle & 0xff;
	if (!fs || slot >= MAX_FILES)
		return NULL;
	struct wasi_file *f = &fs->files[slot];
	return f->fd >= 0 && f->serial == handle >> 8 ? f : NULL;
}

/* Replies are bytes: a u32 WASI errno, then the payload. */
static int reply(mote_sandbox *sb, mote_value *result, uint32_t err, const void *payload,
                 size_t len)
{
	uint8_t *p = mote_hostcall_scratch(sb, 4 + len);
	if (!p)
		return -MOTE_ENOMEM;
	memcpy(p, &err, 4);
	if (len)
		memcpy(p + 4, payload, len);
	result->v.buf.ptr = p;
	result->v.buf.len = 4 + len;
	return 0;
}

/* __mote_wasi_dirs() -> bytes: u32 count, then u32 length + name each. */
int mote_wasi_host_dirs(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                        mote_value *result)
{
	(void)user;
	(void)args;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	size_t n = fs ? fs->ndirs : 0, size = 4;
	for (size_t i = 0; i < n; i++)
		size += 4 + strlen(fs->dirs[i].name);
	uint8_t *p = mote_hostcall_scratch(sb, size);
	if (!p)
		return -MOTE_ENOMEM;
	uint32_t count = (uint32_t)n;
	memcpy(p, &count, 4);
	size_t off = 4;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = (uint32_t)strlen(fs->dirs[i].name);
		memcpy(p + off, &len, 4);
		memcpy(p + off + 4, fs->dirs[i].name, len);
		off += 4 + len;
	}
	result->v.buf.ptr = p;
	result->v.buf.len = size;
	return 0;
}

/* __mote_wasi_open(u32 dir, string path, u32 directory) -> bytes: errno,
 * then the u64 handle. */
int mote_wasi_host_open(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                        mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	if (!fs)
		return reply(sb, result, WE_EBADF, NULL, 0);
	size_t slot = 0;
	while (slot < MAX_FILES && fs->files[slot].fd >= 0)
		slot++;
	if (slot == MAX_FILES)
		return reply(sb, result, WE_EMFILE, NULL, 0);
	uint32_t err = 0;
	uint64_t flags = O_RDONLY | (args[2].v.u32 ? O_DIRECTORY : 0);
	int fd = open_beneath(fs, args[0].v.u32, args[1].v.buf.ptr, args[1].v.buf.len, flags, &err);
	if (fd < 0)
		return reply(sb, result, err, NULL, 0);
	struct wasi_file *f = &fs->files[slot];
	f->fd = fd;
	f->serial = fs->next_serial++;
	uint64_t handle = f->serial << 8 | slot;
	return reply(sb, result, WE_SUCCESS, &handle, 8);
}

/* __mote_wasi_pread(u64 handle, u64 offset, u32 len) -> bytes: errno, data
 * (short at the end of the file). */
int mote_wasi_host_pread(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                         mote_value *result)
{
	(void)user;
	(void)nargs;
	struct wasi_file *f = file_of(fs_if_any(sb), args[0].v.u64);
	if (!f)
		return reply(sb, result, WE_EBADF, NULL, 0);
	uint64_t off = args[1].v.u64;
	if (off > INT64_MAX)
		return reply(sb, result, WE_EINVAL, NULL, 0);
	size_t want = args[2].v.u32 < MAX_READ ? args[2].v.u32 : MAX_READ;
	uint8_t *p = mote_hostcall_scratch(sb, 4 + want);
	if (!p)
		return -MOTE_ENOMEM;
	ssize_t got;
	do
		got = pread(f->fd, p + 4, want, (off_t)off);
	while (got < 0 && errno == EINTR);
	uint32_t err = got < 0 ? wasi_errno(errno) : WE_SUCCESS;
	memcpy(p, &err, 4);
	result->v.buf.ptr = p;
	result->v.buf.len = 4 + (got > 0 ? (size_t)got : 0);
	return 0;
}

/* The reply to a stat request: errno, then the 64-byte filestat of fd. */
static int stat_reply(mote_sandbox *sb, mote_value *result, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return reply(sb, result, wasi_errno(errno), NULL, 0);
	uint8_t fst[64];
	put_filestat(fst, &st);
	return reply(sb, result, WE_SUCCESS, fst, sizeof(fst));
}

/* __mote_wasi_fstat(u64 handle) -> bytes: errno, 64-byte filestat. */
int mote_wasi_host_fstat(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                         mote_value *result)
{
	(void)user;
	(void)nargs;
	struct wasi_file *f = file_of(fs_if_any(sb), args[0].v.u64);
	if (!f)
		return reply(sb, result, WE_EBADF, NULL, 0);
	return stat_reply(sb, result, f->fd);
}

/* __mote_wasi_pathstat(u32 dir, string path) -> bytes: errno, filestat.
 * Symlinks are followed, beneath the directory only. */
int mote_wasi_host_pathstat(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                            mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	if (!fs)
		return reply(sb, result, WE_EBADF, NULL, 0);
	uint32_t err = 0;
	int fd =
	    open_beneath(fs, args[0].v.u32, args[1].v.buf.ptr, args[1].v.buf.len, O_PATH, &err);
	if (fd < 0)
		return reply(sb, result, err, NULL, 0);
	int rc = stat_reply(sb, result, fd);
	close(fd);
	return rc;
}

/* __mote_wasi_readdir(u64 handle, u64 cookie, u32 max) -> bytes: errno,
 * then whole WASI dirents (d_next, d_ino, d_namlen, d_type, name) from the
 * cookie-th entry on, at most `max` bytes (and MAX_READ); none at the end.
 * A cookie is an entry's index: each call reads the directory afresh. */
int mote_wasi_host_readdir(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                           mote_value *result)
{
	(void)user;
	(void)nargs;
	struct wasi_file *f = file_of(fs_if_any(sb), args[0].v.u64);
	if (!f)
		return reply(sb, result, WE_EBADF, NULL, 0);
	int fd = openat(f->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		uint32_t err = wasi_errno(errno);
		if (fd >= 0)
			close(fd);
		return reply(sb, result, err, NULL, 0);
	}
	size_t max = args[2].v.u32 < MAX_READ ? args[2].v.u32 : MAX_READ;
	uint8_t *p = mote_hostcall_scratch(sb, 4 + max);
	if (!p) {
		closedir(d);
		return -MOTE_ENOMEM;
	}
	uint64_t index = 0, cookie = args[1].v.u64;
	size_t used = 4;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (index++ < cookie)
			continue;
		size_t nl = strlen(e->d_name);
		if (used - 4 + 24 + nl > max)
			break;
		uint8_t type = e->d_type == DT_REG    ? 4
		               : e->d_type == DT_DIR  ? 3
		               : e->d_type == DT_LNK  ? 7
		               : e->d_type == DT_CHR  ? 2
		               : e->d_type == DT_BLK  ? 1
		               : e->d_type == DT_SOCK ? 6
		                                      : 0;
		uint64_t next = index, ino = e->d_ino;
		uint32_t namlen = (uint32_t)nl;
		memset(p + used, 0, 24);
		memcpy(p + used, &next, 8);
		memcpy(p + used + 8, &ino, 8);
		memcpy(p + used + 16, &namlen, 4);
		p[used + 20] = type;
		memcpy(p + used + 24, e->d_name, nl);
		used += 24 + nl;
	}
	closedir(d);
	uint32_t ok = WE_SUCCESS;
	memcpy(p, &ok, 4);
	result->v.buf.ptr = p;
	result->v.buf.len = used;
	return 0;
}

/* __mote_wasi_close(u64 handle) -> u32 errno. */
int mote_wasi_host_close(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                         mote_value *result)
{
	(void)user;
	(void)nargs;
	struct wasi_file *f = file_of(fs_if_any(sb), args[0].v.u64);
	if (!f) {
		result->v.u32 = WE_EBADF;
		return 0;
	}
	close(f->fd);
	f->fd = -1;
	result->v.u32 = WE_SUCCESS;
	return 0;
}
