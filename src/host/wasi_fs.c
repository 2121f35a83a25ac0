/* WASI files for Wasm sandboxes: host directories preopened under a guest
 * name (mote_wasm_preopen_flags), read-only unless the embedder made them
 * writable, opened, read and written through internal host functions that
 * the runtime guest's path_open, fd_read, fd_write, fd_seek, fd_readdir,
 * fd_filestat_get, path_filestat_get, path_readlink, path_create_directory,
 * path_unlink_file, path_rename, ... call.
 *
 * The guest is untrusted: every path is resolved by the kernel beneath its
 * preopened directory (openat2 RESOLVE_BENEATH: no "..", absolute path or
 * symlink leads out), files are opened O_RDONLY unless the preopen is
 * writable, and a handle carries a serial number so that one left over
 * from a snapshot or an earlier module never names a file opened since. A symbolic link itself
 * (lstat, readlink) is reached through the directory that holds it, resolved the same way, and a
 * last component that can only name an entry of it; so are mkdir, unlink, rmdir, rename, link and
 * symlink (mkdirat, unlinkat, renameat, linkat, symlinkat on that directory and that name).
 *
 * Writes count against the sandbox's limits (mote_wasm_set_write_limits):
 * bytes passed to pwrite plus the growth of truncate and allocate, and
 * the files, directories and links created. The counters never go down
 * and stay with the sandbox (module loads, unloads, restores).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/wasm_abi.h"
#include "host/wasm_int.h"
#include "mote/wasm.h"


#define MAX_DIRS          16
#define MAX_FILES         64
#define MAX_READ          (1u << 20) /* bytes per pread or readdir reply */
#define MAX_PATH          4096       /* PATH_MAX: with its NUL, as Linux counts */
#define MAX_NAME          255        /* NAME_MAX: one component */
#define MAX_WRITE         (1u << 20) /* bytes per pwrite */
#define FILE_MODE         0644       /* what the guest creates (less the umask) */
#define DIR_MODE          0755
#define DEFAULT_MAX_BYTES (64ull << 20)
#define DEFAULT_MAX_FILES 1024u

/* WASI preview 1 errno values the host returns. */
enum {
	WE_SUCCESS = 0,
	WE_EACCES = 2,
	WE_EAGAIN = 6,
	WE_EBADF = 8,
	WE_EBUSY = 10,
	WE_EDQUOT = 19,
	WE_EEXIST = 20,
	WE_EFBIG = 22,
	WE_EINVAL = 28,
	WE_EIO = 29,
	WE_EISDIR = 31,
	WE_ELOOP = 32,
	WE_EMFILE = 33,
	WE_EMLINK = 34,
	WE_ENAMETOOLONG = 37,
	WE_ENOENT = 44,
	WE_ENOMEM = 48,
	WE_ENOSPC = 51,
	WE_ENOTDIR = 54,
	WE_ENOTEMPTY = 55,
	WE_ENOTSUP = 58,
	WE_ENXIO = 60,
	WE_EOVERFLOW = 61,
	WE_EPERM = 63,
	WE_EROFS = 69,
	WE_ETXTBSY = 74,
	WE_EXDEV = 75,
	WE_ENOTCAPABLE = 76,
};

struct wasi_dir {
	char *name;    /* as the guest sees it */
	int fd;        /* O_PATH | O_DIRECTORY */
	bool writable; /* MOTE_WASM_PREOPEN_WRITABLE */
};

struct wasi_file {
	int fd; /* -1: free */
	uint64_t serial;
	uint32_t dir; /* the preopen it was opened beneath */
	bool write;   /* opened for writing */
};

struct mote_wasi_fs {
	struct wasi_dir dirs[MAX_DIRS];
	size_t ndirs;
	struct wasi_file files[MAX_FILES];
	uint64_t next_serial;
	/* mote_wasm_set_write_limits, and what was written so far */
	uint64_t max_bytes, max_files, bytes, files_made;
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
		fs->max_bytes = DEFAULT_MAX_BYTES;
		fs->max_files = DEFAULT_MAX_FILES;
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
	return mote_wasm_preopen_flags(sb, guest_path, host_dir, 0);
}

int mote_wasm_preopen_flags(mote_sandbox *sb, const char *guest_path, const char *host_dir,
                            unsigned flags)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_preopen_flags: no sandbox");
	if (!guest_path || !host_dir)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_wasm_preopen: no %s",
		                         !guest_path ? "guest path" : "host directory");
	if (flags & ~MOTE_WASM_PREOPEN_WRITABLE)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
		                         "mote_wasm_preopen_flags: unknown flags 0x%x (takes "
		                         "MOTE_WASM_PREOPEN_WRITABLE)",
		                         flags & ~MOTE_WASM_PREOPEN_WRITABLE);
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
	fs->dirs[fs->ndirs++] = (struct wasi_dir){name, fd, flags & MOTE_WASM_PREOPEN_WRITABLE};
	return 0;
}

int mote_wasm_set_write_limits(mote_sandbox *sb, uint64_t max_bytes, uint64_t max_files)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_set_write_limits: no sandbox");
	struct mote_wasi_fs *fs = fs_of(sb);
	if (!fs)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	fs->max_bytes = max_bytes;
	fs->max_files = max_files;
	return 0;
}

static uint32_t wasi_errno(int e)
{
	switch (e) {
	case EACCES:
		return WE_EACCES;
	case EAGAIN:
		return WE_EAGAIN;
	case EBUSY:
		return WE_EBUSY;
	case EDQUOT:
		return WE_EDQUOT;
	case EEXIST:
		return WE_EEXIST;
	case EFBIG:
		return WE_EFBIG;
	case EMLINK:
		return WE_EMLINK;
	case ENOSPC:
		return WE_ENOSPC;
	case ENOTEMPTY:
		return WE_ENOTEMPTY;
	case EOPNOTSUPP:
		return WE_ENOTSUP;
	case ENXIO:
		return WE_ENXIO;
	case EOVERFLOW:
		return WE_EOVERFLOW;
	case EROFS:
		return WE_EROFS;
	case ETXTBSY:
		return WE_ETXTBSY;
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
static int open_beneath_mode(struct mote_wasi_fs *fs, uint32_t dir, const char *path, size_t len,
                             uint64_t flags, uint64_t mode, uint32_t *err)
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
	    .mode = flags & O_CREAT ? mode : 0,
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

static int open_beneath(struct mote_wasi_fs *fs, uint32_t dir, const char *path, size_t len,
                        uint64_t flags, uint32_t *err)
{
	return open_beneath_mode(fs, dir, path, len, flags, 0, err);
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

/* __mote_wasi_dirs() -> bytes: u32 count, then u32 length + name each;
 * bit 31 of the length (MOTE_WASI_DIR_WRITABLE) marks a writable one. */
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
		uint32_t word = len | (fs->dirs[i].writable ? MOTE_WASI_DIR_WRITABLE : 0);
		memcpy(p + off, &word, 4);
		memcpy(p + off + 4, fs->dirs[i].name, len);
		off += 4 + len;
	}
	result->v.buf.ptr = p;
	result->v.buf.len = size;
	return 0;
}

/* How __mote_wasi_open opens. */
enum {
	HOW_DIR = 1,      /* a directory is wanted */
	HOW_NOFOLLOW = 2, /* a symbolic link at the end is not followed (ELOOP) */
	HOW_WRITE = 4,    /* for writing (O_WRONLY) */
	HOW_READ = 8,     /* with HOW_WRITE: for reading too (O_RDWR) */
	HOW_CREATE = 16,  /* O_CREAT */
	HOW_EXCL = 32,    /* O_EXCL, with HOW_CREATE */
	HOW_TRUNC = 64,   /* O_TRUNC */
	HOW_ALL = 127,
};

static uint32_t parent_errno(struct mote_wasi_fs *fs, uint32_t dir, const char *path, size_t len);

/* Opens the file of a writing `how` beneath writable preopen `dir`: a
 * file is created (mode FILE_MODE) only while the file limit allows, and
 * counted. */
static int open_to_write(struct mote_wasi_fs *fs, uint32_t dir, const char *path, size_t len,
                         uint32_t how, uint64_t flags, uint32_t *err)
{
	if (!(how & HOW_CREATE))
		return open_beneath(fs, dir, path, len, flags, err);
	if (!(how & HOW_EXCL)) {
		int fd = open_beneath(fs, dir, path, len, flags, err);
		if (fd >= 0 || *err != WE_ENOENT)
			return fd;
	}
	if (fs->files_made >= fs->max_files) {
		/* Where the file would go decides first, then whether it is
		 * there. */
		*err = parent_errno(fs, dir, path, len);
		if (!*err) {
			int fd = open_beneath(fs, dir, path, len, O_PATH | O_NOFOLLOW, err);
			if (fd >= 0)
				close(fd);
			*err = fd >= 0 ? WE_EEXIST : WE_EDQUOT;
		}
		return -1;
	}
	int fd = open_beneath_mode(fs, dir, path, len,
	                           flags | O_CREAT | (how & HOW_EXCL ? O_EXCL : 0), FILE_MODE, err);
	if (fd >= 0)
		fs->files_made++; /* or a race made it exist: counted all the same */
	return fd;
}

/* __mote_wasi_open(u32 dir, string path, u32 how) -> bytes: errno, then
 * the u64 handle. how: HOW_* above. Writing, creating or truncating
 * beneath a read-only preopen is EROFS, once the directory the path would
 * go in resolves beneath it (ENOTCAPABLE, ENOENT, ENOTDIR first). */
int mote_wasi_host_open(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                        mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	uint32_t dir = args[0].v.u32, how = args[2].v.u32;
	const char *path = args[1].v.buf.ptr;
	size_t len = args[1].v.buf.len;
	if (!fs || dir >= fs->ndirs)
		return reply(sb, result, WE_EBADF, NULL, 0);
	if (how & ~(uint32_t)HOW_ALL)
		return reply(sb, result, WE_EINVAL, NULL, 0);
	size_t slot = 0;
	while (slot < MAX_FILES && fs->files[slot].fd >= 0)
		slot++;
	if (slot == MAX_FILES)
		return reply(sb, result, WE_EMFILE, NULL, 0);
	uint32_t err = 0;
	bool write = how & (HOW_WRITE | HOW_CREATE | HOW_EXCL | HOW_TRUNC);
	uint64_t flags = (how & HOW_WRITE ? (how & HOW_READ ? O_RDWR : O_WRONLY) : O_RDONLY) |
	                 (how & HOW_DIR ? O_DIRECTORY : 0) | (how & HOW_NOFOLLOW ? O_NOFOLLOW : 0) |
	                 (how & HOW_TRUNC ? O_TRUNC : 0);
	int fd;
	if (write && !fs->dirs[dir].writable) {
		err = parent_errno(fs, dir, path, len);
		return reply(sb, result, err ? err : WE_EROFS, NULL, 0);
	}
	if (write)
		fd = open_to_write(fs, dir, path, len, how, flags, &err);
	else
		fd = open_beneath(fs, dir, path, len, flags, &err);
	if (fd < 0)
		return reply(sb, result, err, NULL, 0);
	struct wasi_file *f = &fs->files[slot];
	f->fd = fd;
	f->serial = fs->next_serial++;
	f->dir = dir;
	f->write = how & HOW_WRITE;
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

/* Trailing slashes off buf (of length *len, a lone "/" kept): whether
 * there were any. */
static bool strip_slashes(char *buf, size_t *len)
{
	bool any = false;
	while (*len > 1 && buf[*len - 1] == '/') {
		buf[--*len] = 0;
		any = true;
	}
	return any;
}

/* The directory that holds buf's last component (trailing slashes
 * stripped), opened beneath `dir` as open_parent does; a path ending in
 * "." or ".." (or "/") is resolved whole, and then -1 with *err 0 if it
 * resolves beneath (there is no name to act on). */
static int open_parent_of(struct mote_wasi_fs *fs, uint32_t dir, char *buf, const char **name,
                          uint32_t *err)
{
	size_t len = strlen(buf);
	strip_slashes(buf, &len);
	int fd = open_parent(fs, dir, buf, name, err);
	if (fd < 0 && !*err) {
		int whole = open_beneath(fs, dir, buf, len, O_PATH, err);
		if (whole >= 0)
			close(whole);
	}
	return fd;
}

/* Where a write to path (len bytes from the guest) beneath `dir` would go
 * resolves beneath it: 0, else why not. */
static uint32_t parent_errno(struct mote_wasi_fs *fs, uint32_t dir, const char *path, size_t len)
{
	char buf[MAX_PATH];
	const char *name = NULL;
	uint32_t err = copy_path(buf, path, len);
	if (err)
		return err;
	int fd = open_parent_of(fs, dir, buf, &name, &err);
	if (fd >= 0)
		close(fd);
	return err;
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
	uint32_t err = path_arg(fs, args, buf);
	result->v.u32 = err ? err : parent_errno(fs, args[0].v.u32, buf, strlen(buf));
	return 0;
}

/* ---- Writing (writable preopens) ---- */

/* Bytes the limit still allows. */
static uint64_t bytes_left(const struct mote_wasi_fs *fs)
{
	return fs->bytes < fs->max_bytes ? fs->max_bytes - fs->bytes : 0;
}

/* Why file f cannot be changed: beneath a read-only preopen EROFS, a
 * directory EISDIR, a file opened without the write right ENOTCAPABLE. */
static uint32_t not_writable(const struct mote_wasi_fs *fs, const struct wasi_file *f)
{
	struct stat st;
	if (!fs->dirs[f->dir].writable)
		return WE_EROFS;
	if (fstat(f->fd, &st) == 0 && S_ISDIR(st.st_mode))
		return WE_EISDIR;
	return WE_ENOTCAPABLE;
}

/* __mote_wasi_pwrite(u64 handle, u64 offset, bytes data) -> bytes: errno,
 * u32 bytes written, u64 the offset after them. Offset UINT64_MAX writes
 * at the end of the file (append). At most MAX_WRITE bytes, and no more
 * than the byte limit leaves: a short write; ENOSPC when it leaves none. */
int mote_wasi_host_pwrite(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                          mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	struct wasi_file *f = file_of(fs, args[0].v.u64);
	if (!f)
		return reply(sb, result, WE_EBADF, NULL, 0);
	if (!f->write)
		return reply(sb, result, not_writable(fs, f), NULL, 0);
	uint64_t off = args[1].v.u64;
	size_t len = args[2].v.buf.len < MAX_WRITE ? args[2].v.buf.len : MAX_WRITE;
	if (off != UINT64_MAX && off > INT64_MAX)
		return reply(sb, result, WE_EINVAL, NULL, 0);
	if (len > bytes_left(fs))
		len = (size_t)bytes_left(fs);
	if (len == 0 && args[2].v.buf.len)
		return reply(sb, result, WE_ENOSPC, NULL, 0);
	if (off == UINT64_MAX) {
		struct stat st;
		if (fstat(f->fd, &st) < 0)
			return reply(sb, result, wasi_errno(errno), NULL, 0);
		off = (uint64_t)st.st_size;
	}
	if (len > (uint64_t)INT64_MAX - off)
		return reply(sb, result, WE_EFBIG, NULL, 0);
	ssize_t n;
	do
		n = pwrite(f->fd, args[2].v.buf.ptr, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return reply(sb, result, wasi_errno(errno), NULL, 0);
	fs->bytes += (uint64_t)n;
	uint8_t out[12];
	uint32_t done = (uint32_t)n;
	uint64_t end = off + (uint64_t)n;
	memcpy(out, &done, 4);
	memcpy(out + 4, &end, 8);
	return reply(sb, result, WE_SUCCESS, out, sizeof(out));
}

/* __mote_wasi_fop(u64 handle, u32 op, u64 a, u64 b) -> u32 errno. op:
 * FOP_SET_SIZE (ftruncate to a), FOP_ALLOCATE (posix_fallocate of b bytes
 * at a), FOP_SYNC (fsync), FOP_DATASYNC (fdatasync). Growth counts
 * against the byte limit, whole or not at all (ENOSPC). */
enum { FOP_SET_SIZE, FOP_ALLOCATE, FOP_SYNC, FOP_DATASYNC };

static uint32_t file_op(struct mote_wasi_fs *fs, struct wasi_file *f, uint32_t op, uint64_t a,
                        uint64_t b)
{
	if (op == FOP_SYNC || op == FOP_DATASYNC)
		return (op == FOP_SYNC ? fsync(f->fd) : fdatasync(f->fd)) < 0 ? wasi_errno(errno)
		                                                              : WE_SUCCESS;
	if (op != FOP_SET_SIZE && op != FOP_ALLOCATE)
		return WE_EINVAL;
	if (!f->write)
		return not_writable(fs, f);
	if (a > INT64_MAX || (op == FOP_ALLOCATE && (b == 0 || b > (uint64_t)INT64_MAX - a)))
		return WE_EINVAL;
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return wasi_errno(errno);
	uint64_t size = (uint64_t)st.st_size, end = op == FOP_SET_SIZE ? a : a + b;
	uint64_t growth = end > size ? end - size : 0;
	if (growth > bytes_left(fs))
		return WE_ENOSPC;
	int rc;
	if (op == FOP_SET_SIZE) {
		do
			rc = ftruncate(f->fd, (off_t)a) < 0 ? errno : 0;
		while (rc == EINTR);
	} else {
		do
			rc = posix_fallocate(f->fd, (off_t)a, (off_t)b);
		while (rc == EINTR);
	}
	if (rc)
		return wasi_errno(rc);
	fs->bytes += growth;
	return WE_SUCCESS;
}

int mote_wasi_host_fop(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                       mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	struct wasi_file *f = file_of(fs, args[0].v.u64);
	result->v.u32 = f ? file_op(fs, f, args[1].v.u32, args[2].v.u64, args[3].v.u64) : WE_EBADF;
	return 0;
}

/* A creation the file limit allows: 0, or EDQUOT. */
static uint32_t may_create(const struct mote_wasi_fs *fs)
{
	return fs->files_made < fs->max_files ? WE_SUCCESS : WE_EDQUOT;
}

/* The operations of __mote_wasi_pathop. */
enum { POP_MKDIR, POP_RMDIR, POP_UNLINK, POP_SYMLINK };

/* What a path that names no entry (ends in ".", ".." or is "/") gets. */
static uint32_t nameless_errno(uint32_t op, const char *buf)
{
	size_t len = strlen(buf);
	bool dotdot = len >= 2 && !strcmp(buf + len - 2, "..");
	switch (op) {
	case POP_RMDIR:
		return dotdot ? WE_ENOTEMPTY : WE_EINVAL;
	case POP_UNLINK:
		return WE_EISDIR;
	default:
		return WE_EEXIST;
	}
}

static uint32_t path_op(struct mote_wasi_fs *fs, uint32_t dir, char *buf, uint32_t op,
                        const char *target)
{
	const char *name = NULL;
	uint32_t err;
	size_t len = strlen(buf);
	bool slash = strip_slashes(buf, &len);
	int pfd = open_parent_of(fs, dir, buf, &name, &err);
	if (pfd < 0 && err)
		return err;
	if (!fs->dirs[dir].writable) {
		if (pfd >= 0)
			close(pfd);
		return WE_EROFS;
	}
	if (pfd < 0)
		return nameless_errno(op, buf);
	int rc = 0;
	struct stat st;
	err = WE_SUCCESS;
	switch (op) {
	case POP_MKDIR:
		err = may_create(fs);
		if (!err && (rc = mkdirat(pfd, name, DIR_MODE)) == 0)
			fs->files_made++;
		break;
	case POP_RMDIR:
		rc = unlinkat(pfd, name, AT_REMOVEDIR);
		break;
	case POP_UNLINK:
		if (slash) /* "x/": a directory, or nothing to unlink */
			err = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? wasi_errno(errno)
			      : S_ISDIR(st.st_mode)                            ? WE_EISDIR
			                                                       : WE_ENOTDIR;
		else
			rc = unlinkat(pfd, name, 0);
		break;
	default: /* POP_SYMLINK */
		err = slash ? WE_ENOENT : may_create(fs);
		if (!err && (rc = symlinkat(target, pfd, name)) == 0)
			fs->files_made++;
		break;
	}
	if (!err && rc < 0)
		err = wasi_errno(errno);
	close(pfd);
	return err;
}

/* __mote_wasi_pathop(u32 dir, string path, u32 op, string text) -> u32
 * errno. op: POP_MKDIR (mode DIR_MODE), POP_RMDIR, POP_UNLINK with text
 * empty; POP_SYMLINK: a link at path whose target is text, stored as
 * given (only text: whatever follows it later does so beneath). The
 * directory that holds path's last component is resolved beneath `dir`;
 * the call acts on that one name. EROFS beneath a read-only preopen. */
int mote_wasi_host_pathop(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                          mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	char buf[MAX_PATH], target[MAX_PATH];
	uint32_t op = args[2].v.u32, err = path_arg(fs, args, buf);
	if (!err && op > POP_SYMLINK)
		err = WE_EINVAL;
	if (!err && op == POP_SYMLINK)
		err = copy_path(target, args[3].v.buf.ptr, args[3].v.buf.len);
	else if (!err && args[3].v.buf.len)
		err = WE_EINVAL;
	result->v.u32 = err ? err : path_op(fs, args[0].v.u32, buf, op, target);
	return 0;
}

/* The operations of __mote_wasi_rename. */
enum { ROP_RENAME, ROP_LINK, ROP_LINK_FOLLOW };

static uint32_t rename_op(struct mote_wasi_fs *fs, uint32_t odir, char *obuf, uint32_t ndir,
                          char *nbuf, uint32_t op)
{
	const char *oname = NULL, *nname = NULL;
	uint32_t err;
	size_t olen = strlen(obuf), nlen = strlen(nbuf);
	bool slash = strip_slashes(obuf, &olen) | strip_slashes(nbuf, &nlen);
	int opfd = open_parent_of(fs, odir, obuf, &oname, &err);
	if (opfd < 0 && err)
		return err;
	int npfd = open_parent_of(fs, ndir, nbuf, &nname, &err);
	if (npfd < 0 && err)
		goto out;
	if (!fs->dirs[odir].writable || !fs->dirs[ndir].writable) {
		err = WE_EROFS;
		goto out;
	}
	if (opfd < 0 || npfd < 0) {
		err = op == ROP_RENAME ? WE_EBUSY : opfd < 0 ? WE_EPERM : WE_EEXIST;
		goto out;
	}
	struct stat st;
	int rc;
	if (op == ROP_RENAME) {
		/* "a/" or "b/": only a directory may be renamed so */
		if (slash) {
			err = fstatat(opfd, oname, &st, AT_SYMLINK_NOFOLLOW) < 0 ? wasi_errno(errno)
			      : S_ISDIR(st.st_mode)                              ? WE_SUCCESS
			                                                         : WE_ENOTDIR;
			if (err)
				goto out;
		}
		rc = renameat(opfd, oname, npfd, nname);
	} else if ((err = may_create(fs)) != 0) {
		goto out;
	} else if (op == ROP_LINK_FOLLOW) {
		/* The link at the end is followed beneath the preopen: link the
		 * file it leads to, through its descriptor. */
		int sfd = open_beneath(fs, odir, obuf, olen, O_PATH, &err);
		if (sfd < 0)
			goto out;
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", sfd);
		rc = linkat(AT_FDCWD, proc, npfd, nname, AT_SYMLINK_FOLLOW);
		int saved = errno;
		close(sfd);
		errno = saved;
	} else {
		rc = linkat(opfd, oname, npfd, nname, 0);
	}
	if (rc < 0) /* EXDEV here: across file systems, not out of the preopen */
		err = errno == EXDEV ? WE_EXDEV : wasi_errno(errno);
	else if (op != ROP_RENAME)
		fs->files_made++;
out:
	if (opfd >= 0)
		close(opfd);
	if (npfd >= 0)
		close(npfd);
	return err;
}

/* __mote_wasi_rename(u32 old_dir, string old_path, u32 new_dir, string
 * new_path, u32 op) -> u32 errno. op: ROP_RENAME (renameat),
 * ROP_LINK (a hard link to old_path's last component itself), or
 * ROP_LINK_FOLLOW (to what a link there leads to, beneath old_dir). Both
 * paths resolve as for __mote_wasi_pathop; EROFS if either preopen is
 * read-only. */
int mote_wasi_host_rename(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                          mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_fs *fs = fs_if_any(sb);
	char obuf[MAX_PATH], nbuf[MAX_PATH];
	uint32_t err = path_arg(fs, args, obuf);
	if (!err)
		err = path_arg(fs, args + 2, nbuf);
	if (!err && args[4].v.u32 > ROP_LINK_FOLLOW)
		err = WE_EINVAL;
	result->v.u32 =
	    err ? err : rename_op(fs, args[0].v.u32, obuf, args[2].v.u32, nbuf, args[4].v.u32);
	return 0;
}
