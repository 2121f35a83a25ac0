/* WASI preview 1 inside the Wasm runtime guest: the functions a module may
 * import from "wasi_snapshot_preview1" (every fd_* and path_* one, in
 * wasi_table below, and poll_oneoff; the others it lacks, proc_raise and
 * the sock_* ones, fail with ENOSYS). Arguments and environment come with the
 * command's run; the clock, randomness, standard input and files under
 * preopened directories come from the host through host calls named
 * in src/common/wasm_abi.h (the host side: src/host/wasm_sandbox.c and
 * wasi_fs.c).
 *
 * Descriptors that exist answer with the errno of what they are: EBADF is
 * only ever "no such descriptor" (and fd_prestat_get's "not a preopen",
 * which is how wasi-libc finds the end of the preopens). Preopens are
 * read-only unless the embedder made them writable: the host decides, and
 * answers a write beneath a read-only one with EROFS once its path is known
 * to stay beneath (ENOTCAPABLE if it leads out). */
#include "guest-wasm/wasi.h"

#include "common/wasm_abi.h"
#include "mote/guest.h"

#define HOST_WASI_CLOCK    MOTE_WASI_HOST_CLOCK
#define HOST_WASI_RANDOM   MOTE_WASI_HOST_RANDOM
#define HOST_WASI_STDIN    MOTE_WASI_HOST_STDIN
#define HOST_WASI_STDIO    MOTE_WASI_HOST_STDIO
#define HOST_WASI_SLEEP    MOTE_WASI_HOST_SLEEP
#define HOST_WASI_DIRS     MOTE_WASI_HOST_DIRS
#define HOST_WASI_OPEN     MOTE_WASI_HOST_OPEN
#define HOST_WASI_PREAD    MOTE_WASI_HOST_PREAD
#define HOST_WASI_FSTAT    MOTE_WASI_HOST_FSTAT
#define HOST_WASI_PATHSTAT MOTE_WASI_HOST_PATHSTAT
#define HOST_WASI_CLOSE    MOTE_WASI_HOST_CLOSE
#define HOST_WASI_READDIR  MOTE_WASI_HOST_READDIR
#define HOST_WASI_LSTAT    MOTE_WASI_HOST_LSTAT
#define HOST_WASI_READLINK MOTE_WASI_HOST_READLINK
#define HOST_WASI_PARENT   MOTE_WASI_HOST_PARENT
#define HOST_WASI_PWRITE   MOTE_WASI_HOST_PWRITE
#define HOST_WASI_FOP      MOTE_WASI_HOST_FOP
#define HOST_WASI_PATHOP   MOTE_WASI_HOST_PATHOP
#define HOST_WASI_RENAME   MOTE_WASI_HOST_RENAME

bool wasi_exited;
int32_t wasi_exit_code;

/* argv / environ: NUL-terminated strings back to back. */
static char *g_argbuf, *g_envbuf;
static uint32_t g_argc, g_envc, g_arglen, g_envlen;

enum {
	WASI_ESUCCESS = 0,
	WASI_EBADF = 8,
	WASI_EFAULT = 21,
	WASI_EINVAL = 28,
	WASI_EIO = 29,
	WASI_EISDIR = 31,
	WASI_EMFILE = 33,
	WASI_ENAMETOOLONG = 37,
	WASI_ENOSYS = 52,
	WASI_ENOTDIR = 54,
	WASI_ENOTSUP = 58,
	WASI_EROFS = 69,
	WASI_ESPIPE = 70,
	WASI_ENOTCAPABLE = 76,
};

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static mw_trap wasi_ret(mw_val *results, int32_t err)
{
	results[0].u64 = 0;
	results[0].i32 = err;
	return MW_TRAP_NONE;
}

/* args_sizes_get / environ_sizes_get */
static mw_trap sizes_get(mw_instance *caller, const mw_val *args, mw_val *results, uint32_t count,
                         uint32_t bytes)
{
	uint8_t *a = mem_at(caller, args[0].u32, 4), *b = mem_at(caller, args[1].u32, 4);
	if (!a || !b)
		return wasi_ret(results, WASI_EFAULT);
	put32(a, count);
	put32(b, bytes);
	return wasi_ret(results, WASI_ESUCCESS);
}

/* args_get / environ_get: pointers at args[0], the strings at args[1]. */
static mw_trap strings_get(mw_instance *caller, const mw_val *args, mw_val *results,
                           const char *buf, uint32_t count, uint32_t bytes)
{
	uint32_t ptrs = args[0].u32, data = args[1].u32;
	uint8_t *pv = mem_at(caller, ptrs, (uint64_t)count * 4), *dv = mem_at(caller, data, bytes);
	if (!pv || !dv)
		return wasi_ret(results, WASI_EFAULT);
	if (bytes)
		memcpy(dv, buf, bytes);
	uint32_t off = 0;
	for (uint32_t i = 0; i < count; i++) {
		put32(pv + 4 * i, data + off);
		off += (uint32_t)strnlen(buf + off, bytes - off) + 1;
	}
	return wasi_ret(results, WASI_ESUCCESS);
}

static mw_trap wasi_args_sizes_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return sizes_get(c, a, r, g_argc, g_arglen);
}

static mw_trap wasi_args_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return strings_get(c, a, r, g_argbuf, g_argc, g_arglen);
}

static mw_trap wasi_environ_sizes_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return sizes_get(c, a, r, g_envc, g_envlen);
}

static mw_trap wasi_environ_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return strings_get(c, a, r, g_envbuf, g_envc, g_envlen);
}

/* An open file (below): the host's handle, the position, the fdflags
 * (fd_fdstat_set_flags), whether it was opened for reading and for
 * writing, and whether its preopen is writable. */
struct wasi_file {
	bool used;
	bool read, write, dir_writable;
	uint16_t flags;
	uint64_t handle;
	uint64_t pos;
};
static struct wasi_file *file_at(uint32_t fd);
static bool is_dir_fd(uint32_t fd);
static int32_t write_errno(uint32_t fd);
static int32_t read_errno(uint32_t fd);
static mw_trap file_write(mw_instance *c, struct wasi_file *f, uint32_t iovs, uint32_t niovs,
                          uint64_t *pos, bool append, uint32_t nwritten, mw_val *r);

/* Output to fd 1 and 2 goes to the host's output callback, as standard
 * output (mote_write) and standard error (mote_write_stderr); files are
 * written by file_write. */
static mw_trap wasi_fd_write(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32, iovs = a[1].u32, n = a[2].u32;
	struct wasi_file *f = file_at(fd);
	if (f)
		return file_write(c, f, iovs, n, &f->pos, f->flags & 1u /* append */, a[3].u32, r);
	if (fd != 1 && fd != 2)
		return wasi_ret(r, write_errno(fd));
	const uint8_t *iov = mem_at(c, iovs, (uint64_t)n * 8);
	uint8_t *nw = mem_at(c, a[3].u32, 4);
	if (!iov || !nw)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p, len;
		memcpy(&p, iov + 8 * i, 4);
		memcpy(&len, iov + 8 * i + 4, 4);
		const char *s = (const char *)mem_at(c, p, len);
		if (!s)
			return wasi_ret(r, WASI_EFAULT);
		if (len > UINT32_MAX - total)
			break; /* a short write: *nwritten says how much */
		/* One log record holds at most 4 KiB. */
		for (uint32_t off = 0; off < len; off += 4096) {
			size_t piece = len - off < 4096 ? len - off : 4096;
			if (fd == 1)
				mote_write(s + off, piece);
			else
				mote_write_stderr(s + off, piece);
		}
		total += len;
	}
	put32(nw, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap file_read(mw_instance *c, uint32_t fd, uint32_t iovs, uint32_t niovs, uint64_t *pos,
                         uint32_t nread, mw_val *r);

/* Standard input comes from the host (mote_wasm_set_stdin), piece by piece;
 * an empty reply is the end of input. Files are read by file_read. */
static mw_trap wasi_fd_read(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (a[0].u32 != 0) {
		struct wasi_file *f = file_at(a[0].u32);
		if (!f)
			return wasi_ret(r, read_errno(a[0].u32));
		if (!f->read)
			return wasi_ret(r, WASI_ENOTCAPABLE);
		return file_read(c, a[0].u32, a[1].u32, a[2].u32, &f->pos, a[3].u32, r);
	}
	uint32_t iovs = a[1].u32, niovs = a[2].u32;
	uint8_t *nr = mem_at(c, a[3].u32, 4);
	const uint8_t *iov = niovs <= 1024 ? mem_at(c, iovs, niovs * 8u) : 0;
	if (!nr || !iov)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < niovs; i++) {
		uint32_t ptr = get32(iov + 8 * i), len = get32(iov + 8 * i + 4);
		uint8_t *dst = mem_at(c, ptr, len);
		if (!dst)
			return wasi_ret(r, WASI_EFAULT);
		uint32_t want = len < 65536 ? len : 65536;
		if (!want)
			continue;
		mote_value n = mote_val_u32(want), got;
		if (mote_host_call(HOST_WASI_STDIN, MOTE_BYTES, &got, &n, 1))
			return wasi_ret(r, WASI_EBADF);
		size_t k = got.v.buf.len < want ? got.v.buf.len : want;
		memcpy(dst, got.v.buf.ptr, k);
		total += (uint32_t)k;
		if (k < len) /* a short read: do not block for more */
			break;
	}
	put32(nr, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* ---- Read-only files under preopened directories ----
 * fd 3 .. 3+ndirs-1 are the preopened directories (wasi-libc scans from 3
 * until EBADF), files opened from them get fd FIRST_FILE_FD + slot. The
 * host keeps the real descriptors; the guest keeps a handle and the
 * position. */
#define MAX_DIRS        16
#define MAX_FILES       64
#define FIRST_DIR_FD    3u
#define FIRST_FILE_FD   (FIRST_DIR_FD + MAX_DIRS)
#define OFLAG_CREAT     1u
#define OFLAG_DIRECTORY 2u
#define OFLAG_EXCL      4u
#define OFLAG_TRUNC     8u
#define FDFLAG_APPEND   1u
#define FDFLAG_DSYNC    2u
#define FDFLAG_NONBLOCK 4u
#define FDFLAG_RSYNC    8u
#define FDFLAG_SYNC     16u
#define LOOKUP_FOLLOW   1u         /* lookupflags: symlink_follow */
#define FILE_READ_MAX   (1u << 20) /* bytes per host call; see MAX_READ in wasi_fs.c */
#define FILE_WRITE_MAX  (1u << 19) /* bytes per host call: they travel in the output buffer */
#define PATH_MAX_LEN    4096u      /* with the NUL, as Linux counts (ENAMETOOLONG) */

/* Rights (fd_fdstat_get): what works on each kind of descriptor. */
#define RIGHT_FD_DATASYNC         (1ull << 0)
#define RIGHT_FD_READ             (1ull << 1)
#define RIGHT_FD_SEEK             (1ull << 2)
#define RIGHT_FD_FDSTAT_SET_FLAGS (1ull << 3)
#define RIGHT_FD_SYNC             (1ull << 4)
#define RIGHT_FD_TELL             (1ull << 5)
#define RIGHT_FD_WRITE            (1ull << 6)
#define RIGHT_FD_ADVISE           (1ull << 7)
#define RIGHT_FD_ALLOCATE         (1ull << 8)
#define RIGHT_PATH_CREATE_DIR     (1ull << 9)
#define RIGHT_PATH_CREATE_FILE    (1ull << 10)
#define RIGHT_PATH_LINK_SOURCE    (1ull << 11)
#define RIGHT_PATH_LINK_TARGET    (1ull << 12)
#define RIGHT_PATH_OPEN           (1ull << 13)
#define RIGHT_FD_READDIR          (1ull << 14)
#define RIGHT_PATH_READLINK       (1ull << 15)
#define RIGHT_PATH_RENAME_SOURCE  (1ull << 16)
#define RIGHT_PATH_RENAME_TARGET  (1ull << 17)
#define RIGHT_PATH_FILESTAT_GET   (1ull << 18)
#define RIGHT_FD_FILESTAT_GET     (1ull << 21)
#define RIGHT_FD_SET_SIZE         (1ull << 22)
#define RIGHT_PATH_SYMLINK        (1ull << 24)
#define RIGHT_PATH_REMOVE_DIR     (1ull << 25)
#define RIGHT_PATH_UNLINK_FILE    (1ull << 26)
#define RIGHTS_ALL                ((1ull << 29) - 1)
/* every descriptor: fd_sync, fd_datasync, fd_fdstat_set_flags */
#define RIGHTS_ANY (RIGHT_FD_DATASYNC | RIGHT_FD_SYNC | RIGHT_FD_FDSTAT_SET_FLAGS)
#define RIGHTS_FILE                                                                                \
	(RIGHTS_ANY | RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_TELL | RIGHT_FD_ADVISE |            \
	 RIGHT_FD_FILESTAT_GET)
#define RIGHTS_DIR (RIGHTS_ANY | RIGHT_FD_ADVISE | RIGHT_FD_READDIR | RIGHT_FD_FILESTAT_GET)
#define RIGHTS_PREOPEN                                                                             \
	(RIGHTS_DIR | RIGHT_PATH_OPEN | RIGHT_PATH_READLINK | RIGHT_PATH_FILESTAT_GET)
/* a file opened for writing, and a writable preopen, also have these */
#define RIGHTS_FILE_WRITE (RIGHT_FD_WRITE | RIGHT_FD_ALLOCATE | RIGHT_FD_SET_SIZE)
#define RIGHTS_PREOPEN_WRITE                                                                       \
	(RIGHT_PATH_CREATE_DIR | RIGHT_PATH_CREATE_FILE | RIGHT_PATH_LINK_SOURCE |                 \
	 RIGHT_PATH_LINK_TARGET | RIGHT_PATH_RENAME_SOURCE | RIGHT_PATH_RENAME_TARGET |            \
	 RIGHT_PATH_SYMLINK | RIGHT_PATH_REMOVE_DIR | RIGHT_PATH_UNLINK_FILE)

static struct {
	char *name;
	uint32_t len;
	uint16_t flags;
	bool writable;
} g_dirs[MAX_DIRS];
static uint32_t g_ndirs;
static bool g_dirs_known;
static struct wasi_file g_files[MAX_FILES];
static uint16_t g_stdio_flags[3];

/* The preopened names, asked of the host once per module. */
static void load_dirs(void)
{
	if (g_dirs_known)
		return;
	g_dirs_known = true;
	mote_value got;
	if (mote_host_call(HOST_WASI_DIRS, MOTE_BYTES, &got, NULL, 0) || got.v.buf.len < 4)
		return;
	const uint8_t *p = got.v.buf.ptr;
	size_t len = got.v.buf.len, off = 4;
	uint32_t n = get32(p);
	for (uint32_t i = 0; i < n && i < MAX_DIRS && len - off >= 4; i++) {
		uint32_t word = get32(p + off), nl = word & ~MOTE_WASI_DIR_WRITABLE;
		if (nl == 0 || nl > len - off - 4)
			break;
		char *name = malloc(nl);
		if (!name)
			break;
		memcpy(name, p + off + 4, nl);
		g_dirs[g_ndirs].name = name;
		g_dirs[g_ndirs].len = nl;
		g_dirs[g_ndirs].writable = word & MOTE_WASI_DIR_WRITABLE;
		g_ndirs++;
		off += 4 + nl;
	}
}

/* The host's preopens may differ from those cached (a sandbox started
 * from a snapshot has its own): ask again at the next use. */
void wasi_forget_dirs(void)
{
	for (uint32_t i = 0; i < g_ndirs; i++)
		free(g_dirs[i].name);
	memset(g_dirs, 0, sizeof(g_dirs));
	g_ndirs = 0;
	g_dirs_known = false;
}

void wasi_forget_files(void)
{
	wasi_forget_dirs();
	memset(g_files, 0, sizeof(g_files));
	memset(g_stdio_flags, 0, sizeof(g_stdio_flags));
}

static bool is_dir_fd(uint32_t fd)
{
	load_dirs();
	return fd >= FIRST_DIR_FD && fd - FIRST_DIR_FD < g_ndirs;
}

static struct wasi_file *file_at(uint32_t fd)
{
	if (fd < FIRST_FILE_FD || fd - FIRST_FILE_FD >= MAX_FILES)
		return NULL;
	struct wasi_file *f = &g_files[fd - FIRST_FILE_FD];
	return f->used ? f : NULL;
}

/* fd names something: standard I/O, a preopen or an open file. */
static bool fd_exists(uint32_t fd)
{
	return fd <= 2 || file_at(fd) || is_dir_fd(fd);
}

/* Why fd, which is no file, cannot be written: standard input has no
 * fd_write right, a preopen is a directory on a read-only file system, or
 * a writable one (EISDIR). */
static int32_t write_errno(uint32_t fd)
{
	if (fd <= 2)
		return WASI_ENOTCAPABLE;
	if (!is_dir_fd(fd))
		return WASI_EBADF;
	return g_dirs[fd - FIRST_DIR_FD].writable ? WASI_EISDIR : WASI_EROFS;
}

/* Why fd cannot be read (when it is no file): standard output and error
 * have no fd_read right, a preopen is a directory. */
static int32_t read_errno(uint32_t fd)
{
	if (fd <= 2)
		return WASI_ENOTCAPABLE;
	return is_dir_fd(fd) ? WASI_EISDIR : WASI_EBADF;
}

/* Why fd has no position (when it is no file): standard I/O are streams;
 * a preopen's position is not supported. */
static int32_t seek_errno(uint32_t fd)
{
	if (fd <= 2)
		return WASI_ESPIPE;
	return is_dir_fd(fd) ? WASI_ENOTSUP : WASI_EBADF;
}

/* fd's fdflags, NULL for no descriptor. */
static uint16_t *flags_of(uint32_t fd)
{
	struct wasi_file *f = file_at(fd);
	if (fd <= 2)
		return &g_stdio_flags[fd];
	if (f)
		return &f->flags;
	return is_dir_fd(fd) ? &g_dirs[fd - FIRST_DIR_FD].flags : NULL;
}

/* A host reply: errno first; *payload and *len what follows. */
static uint32_t host_reply(const mote_value *got, const uint8_t **payload, size_t *len)
{
	if (got->v.buf.len < 4)
		return WASI_EIO;
	*payload = (const uint8_t *)got->v.buf.ptr + 4;
	*len = got->v.buf.len - 4;
	return get32(got->v.buf.ptr);
}

/* Reads into the iovecs from *pos on, advancing it. */
static mw_trap file_read(mw_instance *c, uint32_t fd, uint32_t iovs, uint32_t niovs, uint64_t *pos,
                         uint32_t nread, mw_val *r)
{
	struct wasi_file *f = file_at(fd);
	uint8_t *nr = mem_at(c, nread, 4);
	const uint8_t *iov = niovs <= 1024 ? mem_at(c, iovs, niovs * 8u) : 0;
	if (!nr || !iov)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < niovs; i++) {
		uint32_t ptr = get32(iov + 8 * i), len = get32(iov + 8 * i + 4);
		uint8_t *dst = mem_at(c, ptr, len);
		if (!dst)
			return wasi_ret(r, WASI_EFAULT);
		if (len > UINT32_MAX - total)
			break; /* a short read: *nread says how much */
		for (uint32_t done = 0; done < len;) {
			uint32_t want = len - done < FILE_READ_MAX ? len - done : FILE_READ_MAX;
			mote_value args[3] = {mote_val_u64(f->handle), mote_val_u64(*pos),
			                      mote_val_u32(want)};
			mote_value got;
			const uint8_t *data;
			size_t k;
			if (mote_host_call(HOST_WASI_PREAD, MOTE_BYTES, &got, args, 3))
				return wasi_ret(r, WASI_EIO);
			uint32_t err = host_reply(&got, &data, &k);
			if (err)
				return wasi_ret(r, (int32_t)err);
			if (k > want)
				k = want;
			memcpy(dst + done, data, k);
			done += (uint32_t)k;
			total += (uint32_t)k;
			*pos += k;
			if (k < want) { /* the end of the file */
				put32(nr, total);
				return wasi_ret(r, WASI_ESUCCESS);
			}
		}
	}
	put32(nr, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* Writes the iovecs at *pos (at the end of the file when `append`),
 * advancing it past what was written, in pieces of FILE_WRITE_MAX. An
 * error after some bytes were written is a short write (*nwritten says
 * how much), as POSIX has it; the next write gets the error. */
static mw_trap file_write(mw_instance *c, struct wasi_file *f, uint32_t iovs, uint32_t niovs,
                          uint64_t *pos, bool append, uint32_t nwritten, mw_val *r)
{
	uint8_t *nw = mem_at(c, nwritten, 4);
	const uint8_t *iov = niovs <= 1024 ? mem_at(c, iovs, niovs * 8u) : 0;
	if (!nw || !iov)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < niovs; i++) {
		uint32_t ptr = get32(iov + 8 * i), len = get32(iov + 8 * i + 4);
		const uint8_t *src = mem_at(c, ptr, len);
		if (!src)
			return wasi_ret(r, WASI_EFAULT);
		if (len > UINT32_MAX - total)
			break;
		for (uint32_t done = 0; done < len || (len == 0 && niovs == 1 && !done);) {
			uint32_t want = len - done < FILE_WRITE_MAX ? len - done : FILE_WRITE_MAX;
			mote_value args[3] = {mote_val_u64(f->handle),
			                      mote_val_u64(append ? UINT64_MAX : *pos),
			                      {0}},
			           got;
			args[2].type = MOTE_BYTES;
			args[2].v.buf.ptr = src + done;
			args[2].v.buf.len = want;
			const uint8_t *data;
			size_t k;
			if (mote_host_call(HOST_WASI_PWRITE, MOTE_BYTES, &got, args, 3))
				return wasi_ret(r, WASI_EIO);
			uint32_t err = host_reply(&got, &data, &k);
			if (!err && k != 12)
				err = WASI_EIO;
			if (err && total == 0)
				return wasi_ret(r, (int32_t)err);
			if (err)
				goto out;
			uint32_t n = get32(data);
			uint64_t end;
			memcpy(&end, data + 4, 8);
			if (n > want)
				return wasi_ret(r, WASI_EIO);
			total += n;
			done += n;
			*pos = end;
			if (n < want || want == 0) /* short: the limit, or nothing asked */
				goto out;
		}
	}
out:
	put32(nw, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* A __mote_wasi_fop call on file f: its WASI errno. */
enum { FOP_SET_SIZE, FOP_ALLOCATE, FOP_SYNC, FOP_DATASYNC };
static int32_t host_fop(const struct wasi_file *f, uint32_t op, uint64_t a, uint64_t b)
{
	mote_value args[4] = {mote_val_u64(f->handle), mote_val_u32(op), mote_val_u64(a),
	                      mote_val_u64(b)},
	           got;
	if (mote_host_call(HOST_WASI_FOP, MOTE_U32, &got, args, 4))
		return WASI_EIO;
	return (int32_t)got.v.u32;
}

static mw_trap wasi_fd_pread(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	struct wasi_file *f = file_at(a[0].u32);
	if (!f)
		return wasi_ret(r, a[0].u32 <= 2 ? WASI_ESPIPE : read_errno(a[0].u32));
	if (!f->read)
		return wasi_ret(r, WASI_ENOTCAPABLE);
	uint64_t pos = a[3].u64;
	return file_read(c, a[0].u32, a[1].u32, a[2].u32, &pos, a[4].u32, r);
}

/* A stat host call: the 64-byte filestat into out, or a WASI errno (out
 * untouched). */
static uint32_t stat_call(const char *fn, const mote_value *args, size_t nargs, uint8_t out[64])
{
	mote_value got;
	const uint8_t *data;
	size_t k;
	if (mote_host_call(fn, MOTE_BYTES, &got, args, nargs))
		return WASI_EIO;
	uint32_t err = host_reply(&got, &data, &k);
	if (!err && k != 64)
		err = WASI_EIO;
	if (!err)
		memcpy(out, data, 64);
	return err;
}

static uint32_t file_stat(uint64_t handle, uint8_t out[64])
{
	mote_value h = mote_val_u64(handle);
	return stat_call(HOST_WASI_FSTAT, &h, 1, out);
}

/* The host's (u32 dir, string path) arguments for a path beneath preopen
 * dir (an index). */
static void path_args(mote_value args[2], uint32_t dir, const char *path, uint32_t len)
{
	args[0] = mote_val_u32(dir);
	args[1].type = MOTE_STRING;
	args[1].v.buf.ptr = path;
	args[1].v.buf.len = len;
}

/* fn: HOST_WASI_PATHSTAT (links followed) or HOST_WASI_LSTAT (not). */
static uint32_t path_stat(const char *fn, uint32_t dir, const char *path, uint32_t len,
                          uint8_t out[64])
{
	mote_value args[2];
	path_args(args, dir, path, len);
	return stat_call(fn, args, 2, out);
}

/* Opens path beneath preopen dir (an index) on the host: 0 and *handle, or
 * a WASI errno. how: see __mote_wasi_open in src/host/wasi_fs.c. */
static uint32_t host_open(uint32_t dir, const char *path, uint32_t len, uint32_t how,
                          uint64_t *handle)
{
	mote_value args[3], got;
	path_args(args, dir, path, len);
	args[2] = mote_val_u32(how);
	const uint8_t *data;
	size_t k;
	if (mote_host_call(HOST_WASI_OPEN, MOTE_BYTES, &got, args, 3))
		return WASI_EIO;
	uint32_t err = host_reply(&got, &data, &k);
	if (!err && k != 8)
		err = WASI_EIO;
	if (!err)
		memcpy(handle, data, 8);
	return err;
}

static void host_close(uint64_t handle)
{
	mote_value h = mote_val_u64(handle), got;
	mote_host_call(HOST_WASI_CLOSE, MOTE_U32, &got, &h, 1);
}

static mw_trap wasi_fd_seek(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	struct wasi_file *f = file_at(a[0].u32);
	if (!f)
		return wasi_ret(r, seek_errno(a[0].u32));
	uint8_t *out = mem_at(c, a[3].u32, 8);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	int64_t base;
	switch (a[2].u32) {
	case 0: /* SET */
		base = 0;
		break;
	case 1: /* CUR */
		base = (int64_t)f->pos;
		break;
	case 2: { /* END */
		uint8_t st[64];
		uint32_t err = file_stat(f->handle, st);
		if (err)
			return wasi_ret(r, (int32_t)err);
		uint64_t size;
		memcpy(&size, st + 32, 8);
		base = (int64_t)size;
		break;
	}
	default:
		return wasi_ret(r, WASI_EINVAL);
	}
	int64_t off = a[1].i64;
	if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off))
		return wasi_ret(r, WASI_EINVAL);
	f->pos = (uint64_t)(base + off);
	put64(out, f->pos);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_tell(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	struct wasi_file *f = file_at(a[0].u32);
	if (!f)
		return wasi_ret(r, seek_errno(a[0].u32));
	uint8_t *out = mem_at(c, a[1].u32, 8);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	put64(out, f->pos);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_close(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (f) {
		host_close(f->handle);
		f->used = false;
		return wasi_ret(r, WASI_ESUCCESS);
	}
	return wasi_ret(r, fd_exists(fd) ? WASI_ESUCCESS : WASI_EBADF);
}

/* What the embedder says stdio descriptor fd is: a terminal is a
 * character device (isatty), a file a regular file, anything else (a pipe,
 * or nothing said) unknown. */
static uint8_t stdio_filetype(uint32_t fd)
{
	mote_value arg = mote_val_u32(fd), type;
	if (mote_host_call(HOST_WASI_STDIO, MOTE_U32, &type, &arg, 1) != 0 || type.v.u32 > 7)
		return 0;
	return (uint8_t)type.v.u32;
}

static mw_trap wasi_fd_fdstat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (!fd_exists(fd))
		return wasi_ret(r, WASI_EBADF);
	uint8_t *st = mem_at(c, a[1].u32, 24);
	if (!st)
		return wasi_ret(r, WASI_EFAULT);
	memset(st, 0, 24);
	st[2] = (uint8_t)*flags_of(fd); /* fs_flags, a u16: all fit the low byte */
	if (fd <= 2) {
		st[0] = stdio_filetype(fd);
		/* fd_read for stdin, fd_write for the others; no seek or tell,
		 * which isatty() requires absent */
		put64(st + 8, RIGHTS_ANY | (fd == 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE));
	} else if (f) {
		uint8_t fst[64];
		uint32_t err = file_stat(f->handle, fst);
		if (err)
			return wasi_ret(r, (int32_t)err);
		st[0] = fst[16];
		/* writing if opened for it; no paths relative to a directory
		 * opened here */
		uint64_t rights = st[0] == 3 ? RIGHTS_DIR : RIGHTS_FILE;
		if (f->write)
			rights |= RIGHTS_FILE_WRITE;
		if (!f->read)
			rights &= ~(RIGHT_FD_READ | RIGHT_FD_READDIR);
		put64(st + 8, rights);
	} else {
		st[0] = 3; /* a preopened directory */
		/* files opened from it may ask for every right: writing beneath
		 * a read-only one is refused at open, with EROFS, not left to
		 * fail later */
		put64(st + 8, RIGHTS_PREOPEN |
		                  (g_dirs[fd - FIRST_DIR_FD].writable ? RIGHTS_PREOPEN_WRITE : 0));
		put64(st + 16, RIGHTS_ALL);
	}
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_prestat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!is_dir_fd(a[0].u32))
		return wasi_ret(r, WASI_EBADF);
	uint8_t *out = mem_at(c, a[1].u32, 8);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	memset(out, 0, 8); /* tag 0: a directory */
	put32(out + 4, g_dirs[a[0].u32 - FIRST_DIR_FD].len);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_prestat_dir_name(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!is_dir_fd(a[0].u32))
		return wasi_ret(r, WASI_EBADF);
	uint32_t n = g_dirs[a[0].u32 - FIRST_DIR_FD].len;
	if (a[2].u32 < n)
		return wasi_ret(r, WASI_ENAMETOOLONG);
	uint8_t *out = mem_at(c, a[1].u32, n);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	memcpy(out, g_dirs[a[0].u32 - FIRST_DIR_FD].name, n);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* ---- Paths ----
 * Paths resolve beneath preopens only: wasi-libc turns every path into
 * one relative to a preopen. */

/* The path (ptr, len) of a path_* call in *path: 0, EFAULT (out of
 * bounds) or ENAMETOOLONG (no kernel would take it). */
static int32_t guest_path(mw_instance *c, uint32_t ptr, uint32_t len, const char **path)
{
	*path = (const char *)mem_at(c, ptr, len);
	if (!*path)
		return WASI_EFAULT;
	return len >= PATH_MAX_LEN ? WASI_ENAMETOOLONG : WASI_ESUCCESS;
}

/* Why a path_* call relative to fd, which is no preopen, fails: EBADF for
 * no descriptor, ENOTDIR for standard I/O and files; for a directory
 * opened from a preopen (not supported as a base) ENOTSUP, or for a
 * write EROFS beneath a read-only preopen (ENOTSUP beneath a writable
 * one). */
static int32_t path_fd_errno(uint32_t fd, bool write)
{
	if (fd <= 2)
		return WASI_ENOTDIR;
	struct wasi_file *f = file_at(fd);
	if (!f)
		return WASI_EBADF;
	uint8_t st[64];
	uint32_t err = file_stat(f->handle, st);
	if (err)
		return (int32_t)err;
	if (st[16] != 3)
		return WASI_ENOTDIR;
	return write && !f->dir_writable ? WASI_EROFS : WASI_ENOTSUP;
}

/* path_open(dirfd, dirflags, path, path_len, oflags, rights_base,
 * rights_inheriting, fdflags, *fd): beneath a preopen, for writing only
 * beneath a writable one (the host says EROFS otherwise); a symbolic link
 * at the end is followed only with lookupflags symlink_follow (else
 * ELOOP). The write right (or append) opens for writing, the read rights
 * for reading too. */
static mw_trap wasi_path_open(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t dirfd = a[0].u32, oflags = a[4].u32, fdflags = a[7].u32;
	bool want_write = a[5].u64 & RIGHT_FD_WRITE || fdflags & FDFLAG_APPEND;
	bool want_read = !want_write || a[5].u64 & (RIGHT_FD_READ | RIGHT_FD_READDIR);
	bool write = want_write || oflags & (OFLAG_CREAT | OFLAG_EXCL | OFLAG_TRUNC);
	if (!is_dir_fd(dirfd))
		return wasi_ret(r, path_fd_errno(dirfd, write));
	uint8_t *fd_out = mem_at(c, a[8].u32, 4);
	if (!fd_out)
		return wasi_ret(r, WASI_EFAULT);
	const char *path;
	int32_t perr = guest_path(c, a[2].u32, a[3].u32, &path);
	if (perr)
		return wasi_ret(r, perr);
	uint32_t slot = 0;
	while (slot < MAX_FILES && g_files[slot].used)
		slot++;
	if (slot == MAX_FILES)
		return wasi_ret(r, WASI_EMFILE);
	/* how: 1 a directory, 2 no following a link at the end, 4 for
	 * writing, 8 and reading, 16 create, 32 exclusively, 64 truncate */
	uint32_t how = (oflags & OFLAG_DIRECTORY ? 1u : 0u) | (a[1].u32 & LOOKUP_FOLLOW ? 0u : 2u) |
	               (want_write ? 4u : 0u) | (want_write && want_read ? 8u : 0u) |
	               (oflags & OFLAG_CREAT ? 16u : 0u) |
	               (oflags & OFLAG_CREAT && oflags & OFLAG_EXCL ? 32u : 0u) |
	               (oflags & OFLAG_TRUNC ? 64u : 0u);
	uint32_t err = host_open(dirfd - FIRST_DIR_FD, path, a[3].u32, how, &g_files[slot].handle);
	if (err)
		return wasi_ret(r, (int32_t)err);
	g_files[slot].used = true;
	g_files[slot].pos = 0;
	g_files[slot].read = want_read;
	g_files[slot].write = want_write;
	g_files[slot].dir_writable = g_dirs[dirfd - FIRST_DIR_FD].writable;
	g_files[slot].flags = (uint16_t)(fdflags & (FDFLAG_NONBLOCK | FDFLAG_APPEND));
	put32(fd_out, FIRST_FILE_FD + slot);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_filestat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (!fd_exists(fd))
		return wasi_ret(r, WASI_EBADF);
	uint8_t *out = mem_at(c, a[1].u32, 64);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t err = 0;
	if (f) {
		err = file_stat(f->handle, out);
	} else if (fd > 2) {
		err = path_stat(HOST_WASI_PATHSTAT, fd - FIRST_DIR_FD, ".", 1, out);
	} else {
		memset(out, 0, 64);
		out[16] = stdio_filetype(fd);
	}
	return wasi_ret(r, (int32_t)err);
}

/* fd_readdir(fd, buf, buf_len, cookie, *bufused): whole entries while they
 * fit, then as much of the next as fits (bufused == buf_len tells the
 * caller to come back with that entry's cookie); bufused < buf_len is the
 * end of the directory. */
static uint32_t read_dir(uint64_t handle, uint8_t *buf, uint32_t cap, uint64_t cookie,
                         uint32_t *used_out)
{
	uint32_t used = 0;
	while (used < cap) {
		/* Ask for a little more than the room left, so a last entry
		 * that only partly fits still comes back. */
		uint32_t room = cap - used, ask = room < 65536 - 280 ? room + 280 : 65536;
		mote_value args[3] = {mote_val_u64(handle), mote_val_u64(cookie),
		                      mote_val_u32(ask)},
		           got;
		const uint8_t *data;
		size_t k;
		if (mote_host_call(HOST_WASI_READDIR, MOTE_BYTES, &got, args, 3))
			return WASI_EIO;
		uint32_t err = host_reply(&got, &data, &k);
		if (err)
			return err;
		if (k == 0)
			break; /* the end of the directory */
		uint32_t before = used;
		for (size_t off = 0; off + 24 <= k && used < cap;) {
			uint32_t namlen = get32(data + off + 16);
			if (namlen > k - off - 24)
				return WASI_EIO;
			uint32_t whole = 24 + namlen, n = whole < cap - used ? whole : cap - used;
			memcpy(buf + used, data + off, n);
			used += n;
			memcpy(&cookie, data + off, 8);
			off += whole;
		}
		if (used == before)
			return WASI_EIO; /* a reply with no whole entry */
	}
	*used_out = used;
	return WASI_ESUCCESS;
}

/* A preopen is read through a handle of its own for the call. */
static mw_trap wasi_fd_readdir(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (!f && !is_dir_fd(fd))
		return wasi_ret(r, fd <= 2 ? WASI_ENOTDIR : WASI_EBADF);
	uint32_t cap = a[2].u32, used = 0, err;
	uint8_t *buf = mem_at(c, a[1].u32, cap), *used_out = mem_at(c, a[4].u32, 4);
	if (!buf || !used_out)
		return wasi_ret(r, WASI_EFAULT);
	if (f) {
		err = read_dir(f->handle, buf, cap, a[3].u64, &used);
	} else {
		uint64_t h;
		err = host_open(fd - FIRST_DIR_FD, ".", 1, 1, &h);
		if (!err) {
			err = read_dir(h, buf, cap, a[3].u64, &used);
			host_close(h);
		}
	}
	if (err)
		return wasi_ret(r, (int32_t)err);
	put32(used_out, used);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* path_filestat_get(dirfd, lookupflags, path, path_len, *filestat): with
 * symlink_follow a link at the end is followed (beneath the preopen only:
 * ENOTCAPABLE for one that leads out), without it the link itself. */
static mw_trap wasi_path_filestat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	if (!is_dir_fd(fd))
		return wasi_ret(r, path_fd_errno(fd, false));
	const char *path;
	uint8_t *out = mem_at(c, a[4].u32, 64);
	int32_t err = guest_path(c, a[2].u32, a[3].u32, &path);
	if (!out)
		err = WASI_EFAULT;
	if (err)
		return wasi_ret(r, err);
	const char *fn = a[1].u32 & LOOKUP_FOLLOW ? HOST_WASI_PATHSTAT : HOST_WASI_LSTAT;
	return wasi_ret(r, (int32_t)path_stat(fn, fd - FIRST_DIR_FD, path, a[3].u32, out));
}

/* path_readlink(dirfd, path, path_len, buf, buf_len, *bufused): the
 * link's target, cut to buf_len bytes (no NUL added), as readlink does;
 * EINVAL for a path that is no link. */
static mw_trap wasi_path_readlink(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32, cap = a[4].u32;
	if (!is_dir_fd(fd))
		return wasi_ret(r, path_fd_errno(fd, false));
	const char *path;
	uint8_t *buf = mem_at(c, a[3].u32, cap), *used_out = mem_at(c, a[5].u32, 4);
	int32_t perr = guest_path(c, a[1].u32, a[2].u32, &path);
	if (!buf || !used_out)
		perr = WASI_EFAULT;
	if (perr)
		return wasi_ret(r, perr);
	mote_value args[2], got;
	path_args(args, fd - FIRST_DIR_FD, path, a[2].u32);
	const uint8_t *data;
	size_t k;
	if (mote_host_call(HOST_WASI_READLINK, MOTE_BYTES, &got, args, 2))
		return wasi_ret(r, WASI_EIO);
	uint32_t err = host_reply(&got, &data, &k);
	if (err)
		return wasi_ret(r, (int32_t)err);
	uint32_t n = k < cap ? (uint32_t)k : cap;
	memcpy(buf, data, n);
	put32(used_out, n);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* A __mote_wasi_pathop call (op: 0 mkdir, 1 rmdir, 2 unlink, 3 symlink
 * to target) for path (ptr, len) relative to fd: its WASI errno. */
static int32_t path_op(mw_instance *c, uint32_t fd, uint32_t ptr, uint32_t len, uint32_t op,
                       const char *target, uint32_t target_len)
{
	if (!is_dir_fd(fd))
		return path_fd_errno(fd, true);
	const char *path;
	int32_t err = guest_path(c, ptr, len, &path);
	if (err)
		return err;
	mote_value args[4], got;
	path_args(args, fd - FIRST_DIR_FD, path, len);
	args[2] = mote_val_u32(op);
	args[3].type = MOTE_STRING;
	args[3].v.buf.ptr = target ? target : "";
	args[3].v.buf.len = target_len;
	if (mote_host_call(HOST_WASI_PATHOP, MOTE_U32, &got, args, 4))
		return WASI_EIO;
	return (int32_t)got.v.u32;
}

/* path_create_directory, path_remove_directory, path_unlink_file
 * (dirfd, path, path_len) */
static mw_trap wasi_path_create_directory(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return wasi_ret(r, path_op(c, a[0].u32, a[1].u32, a[2].u32, 0, NULL, 0));
}

static mw_trap wasi_path_remove_directory(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return wasi_ret(r, path_op(c, a[0].u32, a[1].u32, a[2].u32, 1, NULL, 0));
}

static mw_trap wasi_path_unlink_file(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return wasi_ret(r, path_op(c, a[0].u32, a[1].u32, a[2].u32, 2, NULL, 0));
}

/* Two paths (rename, link; op: 0 rename, 1 link, 2 link following a link
 * at the end of the first): EBADF if either descriptor is none, then
 * either's answer as a base (ENOTDIR, EROFS), then the host's. */
static int32_t path_two(mw_instance *c, uint32_t fd1, uint32_t ptr1, uint32_t len1, uint32_t fd2,
                        uint32_t ptr2, uint32_t len2, uint32_t op)
{
	if (!fd_exists(fd1) || !fd_exists(fd2))
		return WASI_EBADF;
	if (!is_dir_fd(fd1))
		return path_fd_errno(fd1, true);
	if (!is_dir_fd(fd2))
		return path_fd_errno(fd2, true);
	const char *p1, *p2;
	int32_t err = guest_path(c, ptr1, len1, &p1);
	if (!err)
		err = guest_path(c, ptr2, len2, &p2);
	if (err)
		return err;
	mote_value args[5], got;
	path_args(args, fd1 - FIRST_DIR_FD, p1, len1);
	path_args(args + 2, fd2 - FIRST_DIR_FD, p2, len2);
	args[4] = mote_val_u32(op);
	if (mote_host_call(HOST_WASI_RENAME, MOTE_U32, &got, args, 5))
		return WASI_EIO;
	return (int32_t)got.v.u32;
}

/* path_rename(fd, old_path, old_len, new_fd, new_path, new_len) */
static mw_trap wasi_path_rename(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return wasi_ret(r,
	                path_two(c, a[0].u32, a[1].u32, a[2].u32, a[3].u32, a[4].u32, a[5].u32, 0));
}

/* path_link(old_fd, old_flags, old_path, old_len, new_fd, new_path,
 * new_len) */
static mw_trap wasi_path_link(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return wasi_ret(r, path_two(c, a[0].u32, a[2].u32, a[3].u32, a[4].u32, a[5].u32, a[6].u32,
	                            a[1].u32 & LOOKUP_FOLLOW ? 2 : 1));
}

/* path_symlink(old_path, old_len, fd, new_path, new_len): the target is
 * only text, stored as given; the new path is where the link goes. */
static mw_trap wasi_path_symlink(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!fd_exists(a[2].u32))
		return wasi_ret(r, WASI_EBADF);
	const char *target = (const char *)mem_at(c, a[0].u32, a[1].u32);
	if (!target)
		return wasi_ret(r, WASI_EFAULT);
	if (a[1].u32 >= PATH_MAX_LEN)
		return wasi_ret(r, WASI_ENAMETOOLONG);
	return wasi_ret(r, path_op(c, a[2].u32, a[3].u32, a[4].u32, 3, target, a[1].u32));
}

/* fst_flags of the set_times calls: atim (1) and atim_now (2), mtim (4)
 * and mtim_now (8), not both of a pair. */
static bool fst_flags_valid(uint32_t f)
{
	return f <= 15 && (f & 3) != 3 && (f & 12) != 12;
}

/* path_filestat_set_times(fd, lookupflags, path, path_len, atim, mtim,
 * fst_flags): a write to an existing file, so the file is looked up
 * (ENOENT, ENOTCAPABLE, ...) before EROFS. */
static mw_trap wasi_path_filestat_set_times(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	if (!is_dir_fd(fd))
		return wasi_ret(r, path_fd_errno(fd, true));
	if (!fst_flags_valid(a[6].u32))
		return wasi_ret(r, WASI_EINVAL);
	const char *path;
	int32_t perr = guest_path(c, a[2].u32, a[3].u32, &path);
	if (perr)
		return wasi_ret(r, perr);
	uint8_t st[64];
	const char *fn = a[1].u32 & LOOKUP_FOLLOW ? HOST_WASI_PATHSTAT : HOST_WASI_LSTAT;
	uint32_t err = path_stat(fn, fd - FIRST_DIR_FD, path, a[3].u32, st);
	if (!err && g_dirs[fd - FIRST_DIR_FD].writable)
		err = WASI_ENOTSUP; /* times are not set, even where writing is allowed */
	return wasi_ret(r, err ? (int32_t)err : WASI_EROFS);
}

/* ---- Descriptor calls beyond reading ----
 * Standard I/O are streams (ESPIPE where a position or extent is
 * involved); files are changed by the host (EROFS beneath read-only
 * preopens), preopens themselves are directories. */

/* fd_sync(fd), fd_datasync(fd): files are synced on the host (fsync,
 * fdatasync); nothing is buffered on this side of the others. */
static mw_trap wasi_fd_sync(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	struct wasi_file *f = file_at(a[0].u32);
	if (f)
		return wasi_ret(r, host_fop(f, FOP_SYNC, 0, 0));
	return wasi_ret(r, fd_exists(a[0].u32) ? WASI_ESUCCESS : WASI_EBADF);
}

static mw_trap wasi_fd_datasync(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	struct wasi_file *f = file_at(a[0].u32);
	if (f)
		return wasi_ret(r, host_fop(f, FOP_DATASYNC, 0, 0));
	return wasi_ret(r, fd_exists(a[0].u32) ? WASI_ESUCCESS : WASI_EBADF);
}

/* fd_advise(fd, offset, len, advice): only advice, taken and ignored. */
static mw_trap wasi_fd_advise(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t fd = a[0].u32;
	if (!fd_exists(fd))
		return wasi_ret(r, WASI_EBADF);
	if (fd <= 2)
		return wasi_ret(r, WASI_ESPIPE);
	if (a[3].u32 > 5 || a[1].u64 > INT64_MAX || a[2].u64 > INT64_MAX)
		return wasi_ret(r, WASI_EINVAL);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* fd_allocate(fd, offset, len), fd_pwrite(fd, iovs, iovs_len, offset,
 * *nwritten): both involve a position (ESPIPE on 0-2). pwrite leaves the
 * file's position alone and writes at the offset, append or not. */
static mw_trap wasi_fd_allocate(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (f)
		return wasi_ret(r, host_fop(f, FOP_ALLOCATE, a[1].u64, a[2].u64));
	return wasi_ret(r, fd <= 2 ? WASI_ESPIPE : write_errno(fd));
}

static mw_trap wasi_fd_pwrite(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (!f)
		return wasi_ret(r, fd <= 2 ? WASI_ESPIPE : write_errno(fd));
	uint64_t pos = a[3].u64;
	if (pos > INT64_MAX)
		return wasi_ret(r, WASI_EINVAL);
	return file_write(c, f, a[1].u32, a[2].u32, &pos, false, a[4].u32, r);
}

/* fd_filestat_set_size(fd, size): ftruncate on the host; standard I/O
 * have no size of their own here. */
static mw_trap wasi_fd_filestat_set_size(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (f)
		return wasi_ret(r, host_fop(f, FOP_SET_SIZE, a[1].u64, 0));
	return wasi_ret(r, fd <= 2 ? WASI_ENOTSUP : write_errno(fd));
}

/* fd_filestat_set_times(fd, atim, mtim, fst_flags): not supported (EROFS
 * beneath a read-only preopen); standard I/O have no times of their own. */

static mw_trap wasi_fd_filestat_set_times(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t fd = a[0].u32;
	if (!fd_exists(fd))
		return wasi_ret(r, WASI_EBADF);
	if (!fst_flags_valid(a[3].u32))
		return wasi_ret(r, WASI_EINVAL);
	struct wasi_file *f = file_at(fd);
	bool writable = f ? f->dir_writable : fd > 2 && g_dirs[fd - FIRST_DIR_FD].writable;
	return wasi_ret(r, fd <= 2 || writable ? WASI_ENOTSUP : WASI_EROFS);
}

/* fd_fdstat_set_flags(fd, flags): append and nonblock are taken (and
 * fd_fdstat_get reports them): standard output and error are streams that
 * every write extends, a file's writes go to its end while append is set
 * (file_write), and nothing blocks (standard input is the embedder's
 * buffer).
 * The synchronized-I/O flags are a promise about storage this sandbox
 * cannot make: ENOTSUP. */
static mw_trap wasi_fd_fdstat_set_flags(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint16_t *flags = flags_of(a[0].u32);
	uint32_t want = a[1].u32;
	if (!flags)
		return wasi_ret(r, WASI_EBADF);
	if (want & ~(FDFLAG_APPEND | FDFLAG_DSYNC | FDFLAG_NONBLOCK | FDFLAG_RSYNC | FDFLAG_SYNC))
		return wasi_ret(r, WASI_EINVAL);
	if (want & (FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC))
		return wasi_ret(r, WASI_ENOTSUP);
	*flags = (uint16_t)want;
	return wasi_ret(r, WASI_ESUCCESS);
}

/* fd_fdstat_set_rights(fd, base, inheriting): rights are fixed by what
 * each descriptor is. */
static mw_trap wasi_fd_fdstat_set_rights(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	return wasi_ret(r, fd_exists(a[0].u32) ? WASI_ENOTSUP : WASI_EBADF);
}

/* fd_renumber(from, to): a file takes the place of another file (which is
 * closed); standard I/O and preopens stay where they are (ENOTSUP). */
static mw_trap wasi_fd_renumber(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t from = a[0].u32, to = a[1].u32;
	if (!fd_exists(from) || !fd_exists(to))
		return wasi_ret(r, WASI_EBADF);
	if (from == to)
		return wasi_ret(r, WASI_ESUCCESS);
	struct wasi_file *f = file_at(from), *t = file_at(to);
	if (!f || !t)
		return wasi_ret(r, WASI_ENOTSUP);
	host_close(t->handle);
	*t = *f;
	f->used = false;
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_enosys(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)a;
	return wasi_ret(r, WASI_ENOSYS);
}

static mw_trap wasi_sched_yield(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)a;
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_clock_res_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (a[0].u32 > 3)
		return wasi_ret(r, WASI_EINVAL);
	uint8_t *p = mem_at(c, a[1].u32, 8);
	if (!p)
		return wasi_ret(r, WASI_EFAULT);
	put64(p, 1000); /* 1 us: what a host call can resolve, honestly */
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_clock_time_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (a[0].u32 > 3)
		return wasi_ret(r, WASI_EINVAL);
	uint8_t *p = mem_at(c, a[2].u32, 8);
	if (!p)
		return wasi_ret(r, WASI_EFAULT);
	mote_value id = mote_val_i32(a[0].i32), t;
	int rc = mote_host_call(HOST_WASI_CLOCK, MOTE_U64, &t, &id, 1);
	if (rc)
		return wasi_ret(r, WASI_ENOSYS);
	put64(p, t.v.u64);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* ---- poll_oneoff ----
 * Clock subscriptions sleep on the host, which wakes early for the call's
 * timeout or an interrupt: a module asleep past its deadline is stopped
 * like a busy one. Standard input (the embedder's bytes), standard output
 * and error and files never block, so a subscription to them completes at
 * once, and then nothing sleeps. */
enum {
	SUB_SIZE = 48,   /* subscription: userdata, tag, then the union at 16 */
	EVENT_SIZE = 32, /* event: userdata, error (u16), type (u8), fd_readwrite at 16 */
	EVENTTYPE_CLOCK = 0,
	EVENTTYPE_FD_READ = 1,
	EVENTTYPE_FD_WRITE = 2,
	SUBCLOCK_ABSTIME = 1,
};

static bool host_clock(uint32_t id, uint64_t *ns)
{
	mote_value arg = mote_val_i32((int32_t)id), t;
	if (mote_host_call(HOST_WASI_CLOCK, MOTE_U64, &t, &arg, 1))
		return false;
	*ns = t.v.u64;
	return true;
}

static void put_event(uint8_t *ev, const uint8_t *sub, uint16_t error, uint8_t type)
{
	memset(ev, 0, EVENT_SIZE);
	memcpy(ev, sub, 8); /* userdata */
	memcpy(ev + 8, &error, 2);
	ev[10] = type;
}

/* When a clock subscription is due, on the monotonic clock (`mono` and
 * `real`: both clocks read at the start); `ok` false for a clock that
 * cannot be waited on. */
static uint64_t clock_due(const uint8_t *sub, uint64_t mono, uint64_t real, bool *ok)
{
	uint32_t id = get32(sub + 16);
	uint64_t timeout, due;
	uint16_t flags;
	memcpy(&timeout, sub + 24, 8);
	memcpy(&flags, sub + 40, 2);
	*ok = id <= 1; /* realtime, monotonic; not the CPU-time clocks */
	if (!(flags & SUBCLOCK_ABSTIME))
		due = timeout > UINT64_MAX - mono ? UINT64_MAX : mono + timeout;
	else if (id == 1)
		due = timeout;
	else /* a realtime instant, as an offset from now on the monotonic clock */
		due = timeout <= real                      ? mono
		      : timeout - real > UINT64_MAX - mono ? UINT64_MAX
		                                           : mono + (timeout - real);
	return due;
}

static mw_trap wasi_poll_oneoff(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t nsubs = a[2].u32;
	if (nsubs == 0)
		return wasi_ret(r, WASI_EINVAL);
	const uint8_t *in = mem_at(c, a[0].u32, (uint64_t)nsubs * SUB_SIZE);
	uint8_t *out = mem_at(c, a[1].u32, (uint64_t)nsubs * EVENT_SIZE);
	uint8_t *nevents = mem_at(c, a[3].u32, 4);
	if (!in || !out || !nevents)
		return wasi_ret(r, WASI_EFAULT);
	uint64_t mono, real;
	if (!host_clock(1, &mono) || !host_clock(0, &real))
		return wasi_ret(r, WASI_ENOSYS);
	uint32_t n = 0;
	uint64_t earliest = UINT64_MAX;
	bool any_clock = false;
	for (uint32_t i = 0; i < nsubs; i++) {
		const uint8_t *s = in + (size_t)i * SUB_SIZE;
		uint8_t tag = s[8];
		if (tag == EVENTTYPE_CLOCK) {
			bool ok;
			uint64_t due = clock_due(s, mono, real, &ok);
			if (!ok)
				put_event(out + (size_t)n++ * EVENT_SIZE, s, WASI_ENOTSUP, tag);
			else if (due < earliest)
				earliest = due;
			any_clock |= ok;
		} else if (tag == EVENTTYPE_FD_READ || tag == EVENTTYPE_FD_WRITE) {
			uint32_t fd = get32(s + 16);
			uint16_t err = !fd_exists(fd) ? WASI_EBADF
			               : tag == EVENTTYPE_FD_READ && (fd == 1 || fd == 2)
			                   ? WASI_ENOTCAPABLE
			               : tag == EVENTTYPE_FD_WRITE && fd == 0 ? WASI_ENOTCAPABLE
			                                                      : WASI_ESUCCESS;
			put_event(out + (size_t)n++ * EVENT_SIZE, s, err, tag);
		} else {
			put_event(out + (size_t)n++ * EVENT_SIZE, s, WASI_EINVAL, tag);
		}
	}
	uint64_t now = mono;
	if (n == 0 && any_clock && earliest > mono) {
		mote_value ns = mote_val_u64(earliest - mono), got;
		if (mote_host_call(HOST_WASI_SLEEP, MOTE_U32, &got, &ns, 1) || !host_clock(1, &now))
			return wasi_ret(r, WASI_ENOSYS);
	}
	/* Every clock that is due by now (none when the sleep was cut short:
	 * the call is being stopped). */
	for (uint32_t i = 0; any_clock && i < nsubs; i++) {
		const uint8_t *s = in + (size_t)i * SUB_SIZE;
		bool ok;
		if (s[8] == EVENTTYPE_CLOCK && clock_due(s, mono, real, &ok) <= now && ok)
			put_event(out + (size_t)n++ * EVENT_SIZE, s, WASI_ESUCCESS,
			          EVENTTYPE_CLOCK);
	}
	put32(nevents, n);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_random_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t ptr = a[0].u32, len = a[1].u32;
	uint8_t *p = mem_at(c, ptr, len);
	if (!p)
		return wasi_ret(r, WASI_EFAULT);
	for (uint32_t off = 0; off < len;) {
		uint32_t want = len - off < 65536 ? len - off : 65536;
		mote_value n = mote_val_u32(want), got;
		int rc = mote_host_call(HOST_WASI_RANDOM, MOTE_BYTES, &got, &n, 1);
		if (rc || got.v.buf.len == 0)
			return wasi_ret(r, WASI_ENOSYS);
		size_t k = got.v.buf.len < want ? got.v.buf.len : want;
		memcpy(p + off, got.v.buf.ptr, k);
		off += (uint32_t)k;
	}
	return wasi_ret(r, WASI_ESUCCESS);
}

/* Stops the running call: the engine unwinds on the trap, the caller sees
 * wasi_exited. */
static mw_trap wasi_proc_exit(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)r;
	wasi_exited = true;
	wasi_exit_code = a[0].i32;
	return MW_TRAP_HOST;
}

/* Signatures: i = i32, I = i64, before and after the colon. */
static const struct wasi_fn {
	const char *name;
	const char *type;
	mw_host_fn fn;
} wasi_table[] = {
    {"args_get", "ii:i", wasi_args_get},
    {"args_sizes_get", "ii:i", wasi_args_sizes_get},
    {"environ_get", "ii:i", wasi_environ_get},
    {"environ_sizes_get", "ii:i", wasi_environ_sizes_get},
    {"clock_res_get", "ii:i", wasi_clock_res_get},
    {"clock_time_get", "iIi:i", wasi_clock_time_get},
    {"fd_advise", "iIIi:i", wasi_fd_advise},
    {"fd_allocate", "iII:i", wasi_fd_allocate},
    {"fd_close", "i:i", wasi_fd_close},
    {"fd_datasync", "i:i", wasi_fd_datasync},
    {"fd_fdstat_get", "ii:i", wasi_fd_fdstat_get},
    {"fd_fdstat_set_flags", "ii:i", wasi_fd_fdstat_set_flags},
    {"fd_fdstat_set_rights", "iII:i", wasi_fd_fdstat_set_rights},
    {"fd_filestat_get", "ii:i", wasi_fd_filestat_get},
    {"fd_filestat_set_size", "iI:i", wasi_fd_filestat_set_size},
    {"fd_filestat_set_times", "iIIi:i", wasi_fd_filestat_set_times},
    {"fd_prestat_dir_name", "iii:i", wasi_fd_prestat_dir_name},
    {"fd_prestat_get", "ii:i", wasi_fd_prestat_get},
    {"fd_pread", "iiiIi:i", wasi_fd_pread},
    {"fd_pwrite", "iiiIi:i", wasi_fd_pwrite},
    {"fd_read", "iiii:i", wasi_fd_read},
    {"fd_readdir", "iiiIi:i", wasi_fd_readdir},
    {"fd_renumber", "ii:i", wasi_fd_renumber},
    {"fd_seek", "iIii:i", wasi_fd_seek},
    {"fd_sync", "i:i", wasi_fd_sync},
    {"fd_tell", "ii:i", wasi_fd_tell},
    {"fd_write", "iiii:i", wasi_fd_write},
    {"path_create_directory", "iii:i", wasi_path_create_directory},
    {"path_filestat_get", "iiiii:i", wasi_path_filestat_get},
    {"path_filestat_set_times", "iiiiIIi:i", wasi_path_filestat_set_times},
    {"path_link", "iiiiiii:i", wasi_path_link},
    {"path_open", "iiiiiIIii:i", wasi_path_open},
    {"path_readlink", "iiiiii:i", wasi_path_readlink},
    {"path_remove_directory", "iii:i", wasi_path_remove_directory},
    {"path_rename", "iiiiii:i", wasi_path_rename},
    {"path_symlink", "iiiii:i", wasi_path_symlink},
    {"path_unlink_file", "iii:i", wasi_path_unlink_file},
    {"poll_oneoff", "iiii:i", wasi_poll_oneoff},
    {"proc_exit", "i:", wasi_proc_exit},
    {"random_get", "ii:i", wasi_random_get},
    {"sched_yield", ":i", wasi_sched_yield},
};

static bool wasi_type_matches(const char *spec, const mw_functype *ft)
{
	uint8_t p[12], res[2];
	uint32_t np = 0, nr = 0;
	bool after = false;
	for (const char *s = spec; *s; s++) {
		if (*s == ':') {
			after = true;
			continue;
		}
		uint8_t t = *s == 'I' ? MW_I64 : MW_I32;
		if (after)
			res[nr++] = t;
		else
			p[np++] = t;
	}
	return functype_equal(ft, p, np, res, nr);
}

int wasi_resolve(const mw_import_info *imp, mw_host_fn *fn, char *reason, size_t reason_len)
{
	char have[160];
	format_functype(have, sizeof(have), &imp->func);
	*fn = NULL;
	for (size_t i = 0; i < sizeof(wasi_table) / sizeof(wasi_table[0]); i++) {
		const char *name = wasi_table[i].name;
		if (strlen(name) != imp->name_len || memcmp(imp->name, name, imp->name_len))
			continue;
		if (!wasi_type_matches(wasi_table[i].type, &imp->func)) {
			snprintf(reason, reason_len,
			         "incompatible import type " WASI_MODULE ".%s: %s", name, have);
			return -MOTE_ESIGNATURE;
		}
		*fn = wasi_table[i].fn;
		return 0;
	}
	/* The rest of preview 1 (proc_raise, sock_*) fails with ENOSYS. */
	if (imp->func.nresults != 1 || imp->func.results[0] != MW_I32) {
		snprintf(reason, reason_len,
		         "unknown import " WASI_MODULE ".%.*s %s: not a WASI preview 1 function",
		         (int)(imp->name_len > 64 ? 64 : imp->name_len), imp->name, have);
		return -MOTE_ENOFUNC;
	}
	*fn = wasi_enosys;
	return 0;
}

int wasi_set_args(const uint8_t *p, size_t len)
{
	uint32_t argc, envc;
	if (len < 8)
		return -MOTE_EINVAL;
	memcpy(&argc, p, 4);
	memcpy(&envc, p + 4, 4);
	const char *s = (const char *)p + 8;
	size_t rest = len - 8, off = 0;
	uint32_t split = 0;
	if (argc > rest || envc > rest - argc)
		return -MOTE_EINVAL;
	for (uint32_t i = 0; i < argc + envc; i++) {
		if (i == argc)
			split = (uint32_t)off;
		size_t l = strnlen(s + off, rest - off);
		if (l == rest - off)
			return -MOTE_EINVAL;
		off += l + 1;
	}
	if (envc == 0)
		split = (uint32_t)off;
	char *a = malloc(split + 1), *e = malloc(off - split + 1);
	if (!a || !e) {
		free(a);
		free(e);
		return -MOTE_ENOMEM;
	}
	memcpy(a, s, split);
	memcpy(e, s + split, off - split);
	free(g_argbuf);
	free(g_envbuf);
	g_argbuf = a;
	g_envbuf = e;
	g_argc = argc;
	g_envc = envc;
	g_arglen = split;
	g_envlen = (uint32_t)(off - split);
	return 0;
}
