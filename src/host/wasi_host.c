/* WASI's host side other than files (those are wasi_fs.c): the host functions every
 * Wasm sandbox registers for the runtime guest's WASI (src/guest-wasm/
 * wasi.c): clocks, randomness, sleeps, standard input and what fds 0-2
 * are, the table of the file ones, and the public calls that set stdin and
 * the stdio types. Names and types are in src/common/wasm_abi.h. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/wasm_abi.h"
#include "host/wasm_int.h"
#include "mote/wasm.h"

#define HOST_WASI_CLOCK  MOTE_WASI_HOST_CLOCK
#define HOST_WASI_RANDOM MOTE_WASI_HOST_RANDOM
#define HOST_WASI_STDIN  MOTE_WASI_HOST_STDIN
#define HOST_WASI_STDIO  MOTE_WASI_HOST_STDIO
#define HOST_WASI_SLEEP  MOTE_WASI_HOST_SLEEP

/* Files (wasi_fs.c); names in src/common/wasm_abi.h, types matching the
 * runtime guest's calls (src/guest-wasm/wasi.c). */
static const struct {
	const char *name;
	mote_type ret;
	uint8_t nargs;
	mote_type args[5];
	mote_host_fn fn;
} wasi_fs_fns[] = {
    {MOTE_WASI_HOST_DIRS, MOTE_BYTES, 0, {MOTE_VOID}, mote_wasi_host_dirs},
    {MOTE_WASI_HOST_OPEN, MOTE_BYTES, 3, {MOTE_U32, MOTE_STRING, MOTE_U32}, mote_wasi_host_open},
    {MOTE_WASI_HOST_PREAD, MOTE_BYTES, 3, {MOTE_U64, MOTE_U64, MOTE_U32}, mote_wasi_host_pread},
    {MOTE_WASI_HOST_FSTAT, MOTE_BYTES, 1, {MOTE_U64}, mote_wasi_host_fstat},
    {MOTE_WASI_HOST_PATHSTAT, MOTE_BYTES, 2, {MOTE_U32, MOTE_STRING}, mote_wasi_host_pathstat},
    {MOTE_WASI_HOST_CLOSE, MOTE_U32, 1, {MOTE_U64}, mote_wasi_host_close},
    {MOTE_WASI_HOST_READDIR, MOTE_BYTES, 3, {MOTE_U64, MOTE_U64, MOTE_U32}, mote_wasi_host_readdir},
    {MOTE_WASI_HOST_LSTAT, MOTE_BYTES, 2, {MOTE_U32, MOTE_STRING}, mote_wasi_host_lstat},
    {MOTE_WASI_HOST_READLINK, MOTE_BYTES, 2, {MOTE_U32, MOTE_STRING}, mote_wasi_host_readlink},
    {MOTE_WASI_HOST_PARENT, MOTE_U32, 2, {MOTE_U32, MOTE_STRING}, mote_wasi_host_parent},
    {MOTE_WASI_HOST_PWRITE, MOTE_BYTES, 3, {MOTE_U64, MOTE_U64, MOTE_BYTES}, mote_wasi_host_pwrite},
    {MOTE_WASI_HOST_FOP, MOTE_U32, 4, {MOTE_U64, MOTE_U32, MOTE_U64, MOTE_U64}, mote_wasi_host_fop},
    {MOTE_WASI_HOST_PATHOP,
     MOTE_U32,
     4,
     {MOTE_U32, MOTE_STRING, MOTE_U32, MOTE_STRING},
     mote_wasi_host_pathop},
    {MOTE_WASI_HOST_RENAME,
     MOTE_U32,
     5,
     {MOTE_U32, MOTE_STRING, MOTE_U32, MOTE_STRING, MOTE_U32},
     mote_wasi_host_rename},
};
#define NWASI_FS_FNS (sizeof(wasi_fs_fns) / sizeof(wasi_fs_fns[0]))

static int wasi_clock(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                      mote_value *result)
{
	(void)user;
	(void)sb;
	(void)nargs;
	/* WASI ids: realtime, monotonic, process and thread CPU time. CPU
	 * time is the calling thread's: the one running this sandbox. */
	static const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID,
	                                CLOCK_THREAD_CPUTIME_ID};
	uint32_t id = args[0].v.u32;
	struct timespec ts;
	if (id >= sizeof(ids) / sizeof(ids[0]) || clock_gettime(ids[id], &ts) != 0)
		return -MOTE_EINVAL;
	result->v.u64 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return 0;
}

static int wasi_random(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                       mote_value *result)
{
	(void)user;
	(void)nargs;
	uint32_t n = args[0].v.u32;
	if (n == 0 || n > 65536)
		return -MOTE_EINVAL;
	uint8_t *p = mote_hostcall_scratch(sb, n);
	if (!p)
		return -MOTE_ENOMEM;
	for (uint32_t done = 0; done < n;) {
		ssize_t got = getrandom(p + done, n - done, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -MOTE_EIO;
		done += (uint32_t)got;
	}
	result->v.buf.ptr = p;
	result->v.buf.len = n;
	return 0;
}

/* The next bytes of the sandbox's standard input (mote_wasm_set_stdin). */
static int wasi_stdin(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                      mote_value *result)
{
	(void)user;
	(void)nargs;
	struct mote_wasi_stdio *w = mote_wasm_stdio_of(sb, false);
	size_t left = w ? w->stdin_len - w->stdin_pos : 0;
	size_t n = args[0].v.u32 < left ? args[0].v.u32 : left;
	result->v.buf.ptr = w && w->stdin_data ? w->stdin_data + w->stdin_pos : (const void *)"";
	result->v.buf.len = n;
	if (w)
		w->stdin_pos += n;
	return 0;
}

static int wasi_stdio(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                      mote_value *result)
{
	(void)user;
	(void)nargs;
	const struct mote_wasi_stdio *w = mote_wasm_stdio_of(sb, false);
	uint32_t fd = args[0].v.u32;
	result->v.u32 = w && fd < 3 ? w->stdio_type[fd] : MOTE_WASM_STDIO_UNKNOWN;
	return 0;
}

/* poll_oneoff's clocks: sleep in slices, each bounded by the call's
 * deadline, and give up at an interrupt; the next run of the guest then
 * reports the timeout or the cancellation as for a busy guest. */
static int wasi_sleep(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                      mote_value *result)
{
	(void)user;
	(void)nargs;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	uint64_t now = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	uint64_t end = args[0].v.u64 > UINT64_MAX - now ? UINT64_MAX : now + args[0].v.u64;
	while (now < end && !__atomic_load_n(&sb->cancel, __ATOMIC_SEQ_CST)) {
		uint64_t left = end - now, slice = 10000000u; /* 10 ms: cancel latency */
		if (sb->deadline_us) {
			uint64_t deadline = sb->deadline_us * 1000u;
			if (now >= deadline)
				break;
			if (deadline - now < slice)
				slice = deadline - now;
		}
		if (left < slice)
			slice = left;
		struct timespec d = {(time_t)(slice / 1000000000u), (long)(slice % 1000000000u)};
		nanosleep(&d, NULL); /* EINTR (the timeout's signal): look again */
		clock_gettime(CLOCK_MONOTONIC, &t);
		now = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	}
	result->v.u32 = 0;
	return 0;
}

int mote_wasm_set_stdio_type(mote_sandbox *sb, int fd, mote_wasm_stdio_type type)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_set_stdio_type: no sandbox");
	if (fd < 0 || fd > 2)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
		                         "mote_wasm_set_stdio_type: fd %d is not 0, 1 or 2", fd);
	if (type != MOTE_WASM_STDIO_UNKNOWN && type != MOTE_WASM_STDIO_TERMINAL &&
	    type != MOTE_WASM_STDIO_FILE)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
		                         "mote_wasm_set_stdio_type: unknown type %d", (int)type);
	struct mote_wasi_stdio *w = mote_wasm_stdio_of(sb, true);
	if (!w)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	w->stdio_type[fd] = (uint8_t)type;
	return 0;
}

int mote_wasm_set_stdin(mote_sandbox *sb, const void *data, size_t len)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_set_stdin: no sandbox");
	if (!data && len)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
		                         "mote_wasm_set_stdin: no data for %zu bytes", len);
	struct mote_wasi_stdio *w = mote_wasm_stdio_of(sb, true);
	uint8_t *copy = NULL;
	if (!w || (len && !(copy = mote_malloc(len))))
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	if (len)
		memcpy(copy, data, len);
	mote_free(w->stdin_data);
	w->stdin_data = copy;
	w->stdin_len = len;
	w->stdin_pos = 0;
	return 0;
}

bool mote_wasi_is_host_function(const char *name)
{
	for (size_t i = 0; i < NWASI_FS_FNS; i++)
		if (!strcmp(name, wasi_fs_fns[i].name))
			return true;
	return !strcmp(name, HOST_WASI_CLOCK) || !strcmp(name, HOST_WASI_RANDOM) ||
	       !strcmp(name, HOST_WASI_STDIN) || !strcmp(name, HOST_WASI_STDIO) ||
	       !strcmp(name, HOST_WASI_SLEEP);
}

/* The caller's functions plus the WASI ones (unless the caller has a
 * function of that name). */
int mote_wasi_host_functions(const mote_host_functions *imports, mote_host_functions **out)
{
	mote_host_functions *fns;
	int rc = mote_host_functions_new(&fns);
	if (rc)
		return rc;
	for (size_t i = 0; imports && !rc && i < imports->n; i++) {
		const struct mote_host_fn_entry *e = &imports->v[i];
		rc = mote_host_functions_add(fns, e->sig.name, e->sig.ret, e->sig.args,
		                             e->sig.nargs, e->fn, e->user);
	}
	const mote_type clock_args[1] = {MOTE_I32}, random_args[1] = {MOTE_U32};
	if (!rc && !mote_host_functions_find(fns, HOST_WASI_CLOCK, strlen(HOST_WASI_CLOCK)))
		rc = mote_host_functions_add(fns, HOST_WASI_CLOCK, MOTE_U64, clock_args, 1,
		                             wasi_clock, NULL);
	if (!rc && !mote_host_functions_find(fns, HOST_WASI_RANDOM, strlen(HOST_WASI_RANDOM)))
		rc = mote_host_functions_add(fns, HOST_WASI_RANDOM, MOTE_BYTES, random_args, 1,
		                             wasi_random, NULL);
	if (!rc && !mote_host_functions_find(fns, HOST_WASI_STDIN, strlen(HOST_WASI_STDIN)))
		rc = mote_host_functions_add(fns, HOST_WASI_STDIN, MOTE_BYTES, random_args, 1,
		                             wasi_stdin, NULL);
	const mote_type sleep_args[1] = {MOTE_U64};
	if (!rc && !mote_host_functions_find(fns, HOST_WASI_SLEEP, strlen(HOST_WASI_SLEEP)))
		rc = mote_host_functions_add(fns, HOST_WASI_SLEEP, MOTE_U32, sleep_args, 1,
		                             wasi_sleep, NULL);
	if (!rc && !mote_host_functions_find(fns, HOST_WASI_STDIO, strlen(HOST_WASI_STDIO)))
		rc = mote_host_functions_add(fns, HOST_WASI_STDIO, MOTE_U32, random_args, 1,
		                             wasi_stdio, NULL);
	for (size_t i = 0; !rc && i < NWASI_FS_FNS; i++) {
		const char *name = wasi_fs_fns[i].name;
		if (!mote_host_functions_find(fns, name, strlen(name)))
			rc = mote_host_functions_add(fns, name, wasi_fs_fns[i].ret,
			                             wasi_fs_fns[i].args, wasi_fs_fns[i].nargs,
			                             wasi_fs_fns[i].fn, NULL);
	}
	if (rc) {
		mote_host_functions_free(fns);
		return rc;
	}
	*out = fns;
	return 0;
}
