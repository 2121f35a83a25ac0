/* Read-only WASI files for Wasm sandboxes: host directories preopened
 * under a guest name (mote_wasm_preopen), opened and read through internal
 * host functions that the runtime guest's path_open, fd_read, fd_seek,
 * fd_readdir, fd_filestat_get, path_filestat_get and path_readlink call
 * (and its path_create_directory, path_unlink_file, ..., to tell a path
 * that leads out from one that is merely read-only).
 *
 * The guest is untrusted: every path is resolved by the kernel beneath its
 * preopened directory (openat2 RESOLVE_BENEATH: no "..", absolute path or
 * symlink leads out), files are opened O_RDONLY, and a handle carries a
 * serial number so that one left over from a snapshot or an earlier
 * module never names a file opened since. A symbolic link itself (lstat,
 * readlink) is reached through the directory that holds it, resolved the
 * same way, and a last component that can only name an entry of it.
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
#define MAX_PATH  4096       /* PATH_MAX: with its NUL, as Linux counts */
#define MAX_NAME  255        /* NAME_MAX: one component */

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

/* __mote_wasi_open(u32 dir, string path, u32 how) -> bytes: errno, then
 * the u64 handle. how: bit 0 a directory is wanted, bit 1 a symbolic link
 * at the end is not followed (ELOOP). */
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
	uint32_t how = args[2].v.u32;
	uint64_t flags = O_RDONLY | (how & 1 ? O_DIRECTORY : 0) | (how & 2 ? O_NOFOLLOW : 0);
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

/* `path` (`len` bytes from the guest) into buf with a NUL after it: 0, or
 * a WASI errno (empty, a NUL inside, too long). */
static uint32_t copy_path(char buf[MAX_PATH], const char *path, size_t len)
{
	if (len == 0)
		return WE_ENOENT;
	if (memchr(path, 0, len))
		return WE_EINVAL;
	if (len >= MAX_PATH)
		return WE_ENAMETOOLONG;
	memcpy(buf, path, len);
	buf[len] = 0;
	return WE_SUCCESS;
}

/* The directory holding buf's last component, opened (O_PATH) beneath
 * preopen `dir`, with *name the component: never empty, "." or ".." and
 * without a "/", so that it can only name an entry of that directory,
 * and an operation on (fd, *name) that does not follow it stays beneath.
 * The way to the directory is the kernel's to check, as for any path
 * (RESOLVE_BENEATH, links in it included): "/x" fails there, for "/".
 * -1 with *err set on failure; -1 with *err 0 for a path that ends in
 * "/", "." or "..", which names no entry: the caller resolves the whole
 * path then (a trailing "/" follows a link, as a middle component does). */
static int open_parent(struct mote_wasi_fs *fs, uint32_t dir, char *buf, const char **name,
                       uint32_t *err)
{
	char *slash = strrchr(buf, '/');
	const char *last = slash ? slash + 1 : buf;
	*err = WE_SUCCESS;
	if (!strcmp(last, "") || !strcmp(last, ".") || !strcmp(last, ".."))
		return -1;
	if (strlen(last) > MAX_NAME) {
		*err = WE_ENAMETOOLONG;
		return -1;
	}
	*name = last;
	if (!slash)
		return open_beneath(fs, dir, ".", 1, O_PATH | O_DIRECTORY, err);
	if (slash == buf)
		return open_beneath(fs, dir, "/", 1, O_PATH | O_DIRECTORY, err);
	*slash = 0;
	int fd = open_beneath(fs, dir, buf, (size_t)(slash - buf), O_PATH | O_DIRECTORY, err);
	*slash = '/';
	return fd;
}

/* Checks common to the calls below: a preopen `dir` and a usable path,
 * copied to buf. */
static uint32_t path_arg(struct mote_wasi_fs *fs, const mote_value *args, char buf[MAX_PATH])
{
	if (!fs || args[0].v.u32 >= fs->ndirs)
		return WE_EBADF;
	return copy_path(buf, args[1].v.buf.ptr, args[1].v.buf.len);
}

/* __mote_wasi_lstat(u32 dir, string path) -> bytes: errno, filestat of
 * the path's last component itself: a symbolic link is not followed. */
int mote_wasi_host_lstat(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                         mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	char buf[MAX_PATH];
	const char *name = NULL;
	uint32_t err = path_arg(fs, args, buf);
	if (err)
		return reply(sb, result, err, NULL, 0);
	uint32_t dir = args[0].v.u32;
	int pfd = open_parent(fs, dir, buf, &name, &err);
	if (pfd < 0 && !err) { /* ".", "..", "x/": a directory, never a link */
		int fd = open_beneath(fs, dir, buf, strlen(buf), O_PATH, &err);
		if (fd < 0)
			return reply(sb, result, err, NULL, 0);
		int rc = stat_reply(sb, result, fd);
		close(fd);
		return rc;
	}
	if (pfd < 0)
		return reply(sb, result, err, NULL, 0);
	struct stat st;
	int rc = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW);
	err = rc < 0 ? wasi_errno(errno) : WE_SUCCESS;
	close(pfd);
	if (err)
		return reply(sb, result, err, NULL, 0);
	uint8_t fst[64];
	put_filestat(fst, &st);
	return reply(sb, result, WE_SUCCESS, fst, sizeof(fst));
}

/* __mote_wasi_readlink(u32 dir, string path) -> bytes: errno, then the
 * whole target of the symbolic link (the guest cuts it to its buffer);
 * EINVAL for anything else. The target is text: nothing follows it. */
int mote_wasi_host_readlink(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                            mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	char buf[MAX_PATH], target[MAX_PATH];
	const char *name = NULL;
	uint32_t err = path_arg(fs, args, buf);
	if (err)
		return reply(sb, result, err, NULL, 0);
	uint32_t dir = args[0].v.u32;
	int pfd = open_parent(fs, dir, buf, &name, &err);
	if (pfd < 0 && !err) { /* no link: EINVAL if it exists beneath */
		int fd = open_beneath(fs, dir, buf, strlen(buf), O_PATH, &err);
		if (fd >= 0) {
			close(fd);
			err = WE_EINVAL;
		}
	}
	if (pfd < 0)
		return reply(sb, result, err, NULL, 0);
	ssize_t n = readlinkat(pfd, name, target, sizeof(target));
	err = n < 0 ? wasi_errno(errno) : WE_SUCCESS;
	close(pfd);
	if (!err && (size_t)n == sizeof(target))
		err = WE_ENAMETOOLONG; /* cannot happen: a target is shorter */
	return reply(sb, result, err, target, err ? 0 : (size_t)n);
}

/* __mote_wasi_parent(u32 dir, string path) -> u32 errno: 0 if the
 * directory that holds the path's last component (trailing slashes aside)
 * resolves beneath `dir`, that is where a write to the path would go;
 * else why not (ENOTCAPABLE for a path that leads out, ENOENT or ENOTDIR
 * for a missing directory). A path ending in "." or ".." is resolved
 * whole. */
int mote_wasi_host_parent(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                          mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	char buf[MAX_PATH];
	const char *name = NULL;
	uint32_t err = path_arg(fs, args, buf);
	if (err) {
		result->v.u32 = err;
		return 0;
	}
	uint32_t dir = args[0].v.u32;
	size_t len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = 0;
	int fd = open_parent(fs, dir, buf, &name, &err);
	if (fd < 0 && !err)
		fd = open_beneath(fs, dir, buf, len, O_PATH, &err);
	if (fd >= 0)
		close(fd);
	result->v.u32 = err;
	return 0;
}
