/* mote_wasm_compile: a Wasm module to a guest ELF with the module compiled
 * ahead of time. The engine's translator (src/wasm/aot.c) writes C; mote-cc
 * compiles it and links it with the Wasm runtime guest as a library, so the
 * result is the runtime with the module built in and its functions native.
 * Results are cached by a hash of everything that goes into them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aot_abi.h"
#include "host/internal.h"
#include "mote/wasm.h"
#include "wasm.h"

extern char **environ;

#ifndef MOTE_WASM_SDK_BUILD
#error "MOTE_WASM_SDK_BUILD must name the build tree's Wasm SDK directory"
#endif
#ifndef MOTE_WASM_SDK_INSTALL
#error "MOTE_WASM_SDK_INSTALL must name the installed Wasm SDK directory"
#endif

#define PATH_CAP 4096

/* DIR/NAME into out (cap bytes); false when it does not fit. */
static bool path_join(char *out, size_t cap, const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	if (a + 1 + b >= cap)
		return false;
	memcpy(out, dir, a);
	out[a] = '/';
	memcpy(out + a + 1, name, b + 1);
	return true;
}

/* The SDK: DIR/mote-cc, DIR/include (aot_abi.h), DIR/lib/libmote_wasmrt.a. */
static bool sdk_usable(const char *dir)
{
	char p[PATH_CAP];
	path_join(p, sizeof(p), dir, "lib/libmote_wasmrt.a");
	if (access(p, R_OK) != 0)
		return false;
	path_join(p, sizeof(p), dir, "mote-cc");
	return access(p, X_OK) == 0;
}

static const char *find_sdk(void)
{
	const char *env = getenv("MOTE_WASM_SDK");
	if (env && *env)
		return sdk_usable(env) ? env : NULL;
	if (sdk_usable(MOTE_WASM_SDK_BUILD))
		return MOTE_WASM_SDK_BUILD;
	if (sdk_usable(MOTE_WASM_SDK_INSTALL))
		return MOTE_WASM_SDK_INSTALL;
	return NULL;
}

/* Any size: these are the module and the SDK's own files. */
static int read_all(const char *path, uint8_t **out, size_t *len)
{
	return mote_read_file(path, SIZE_MAX, out, len);
}

static int write_all(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	const uint8_t *b = p;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, b + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	return close(fd);
}

/* Write `len` bytes to `path` whole or not at all (a temporary, renamed). */
static int publish(const char *path, const void *p, size_t len)
{
	char tmp[PATH_CAP];
	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (write_all(tmp, p, len) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* $MOTE_CACHE_DIR, else $XDG_CACHE_HOME/mote, else ~/.cache/mote; then
 * /wasm-aot, made if missing. */
static bool cache_dir(char *out, size_t cap)
{
	const char *env = getenv("MOTE_CACHE_DIR");
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;
	if (env && *env)
		n = snprintf(out, cap, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(out, cap, "%s/mote", xdg);
	else if (home && *home)
		n = snprintf(out, cap, "%s/.cache/mote", home);
	else
		return false;
	if (n < 0 || (size_t)n + 16 >= cap)
		return false;
	/* each level, so a missing ~/.cache is made too */
	for (char *s = out + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		mkdir(out, 0755);
		*s = '/';
	}
	mkdir(out, 0755);
	strcat(out, "/wasm-aot");
	if (mkdir(out, 0755) == 0)
		return true;
	struct stat st; /* there already, maybe read-only: hits still work */
	return stat(out, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The cache key: the module and everything that shapes what it becomes. */
/* The translation of a module, in parts (one C file each). */
struct translation {
	unsigned parts;
	char *c[16];
	size_t len[16];
};

static void translation_free(struct translation *tr)
{
	for (unsigned p = 0; p < tr->parts; p++)
		free(tr->c[p]);
	tr->parts = 0;
}

static int cache_key(const char *sdk, const void *wasm, size_t len, const struct translation *tr,
                     char hex[65])
{
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(h);
		return -1;
	}
	static const char tag[] = "mote-wasm-aot\0" MOTE_VERSION;
	EVP_DigestUpdate(h, tag, sizeof(tag));
	uint32_t abi = MW_AOT_ABI;
	EVP_DigestUpdate(h, &abi, sizeof(abi));
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256(wasm, len, d);
	EVP_DigestUpdate(h, d, sizeof(d));
	/* The C itself: a change in the translator (which lives in libmote,
	 * not in the SDK) changes the key even where the version does not. */
	for (unsigned p = 0; p < tr->parts; p++) {
		SHA256((const uint8_t *)tr->c[p], tr->len[p], d);
		EVP_DigestUpdate(h, d, sizeof(d));
	}
	static const char *const parts[] = {"lib/libmote_wasmrt.a", "mote-cc", "include/aot_abi.h",
	                                    "include/fmath.h"};
	int rc = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && !rc; i++) {
		char p[PATH_CAP];
		path_join(p, sizeof(p), sdk, parts[i]);
		uint8_t *b;
		size_t n;
		rc = read_all(p, &b, &n);
		if (!rc) {
			SHA256(b, n, d);
			mote_free(b);
			EVP_DigestUpdate(h, d, sizeof(d));
		}
	}
	const char *cc = getenv("MOTE_GUEST_CC");
	if (cc)
		EVP_DigestUpdate(h, cc, strlen(cc) + 1);
	unsigned dl = 0;
	if (!rc && !EVP_DigestFinal_ex(h, d, &dl))
		rc = -1;
	EVP_MD_CTX_free(h);
	for (int i = 0; i < 32 && !rc; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return rc;
}

static int copy_file(const char *from, const char *to)
{
	uint8_t *b;
	size_t n;
	if (read_all(from, &b, &n) != 0)
		return -1;
	int rc = publish(to, b, n);
	int e = errno;
	mote_free(b);
	errno = e;
	return rc;
}

/* The first lines of the compiler's messages, for the error detail. */
static void log_excerpt(const char *path, char *out, size_t cap)
{
	out[0] = 0;
	uint8_t *b;
	size_t n;
	if (read_all(path, &b, &n) != 0)
		return;
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < cap; i++)
		out[k++] = b[i] == '\n' ? ' ' : (b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '?');
	out[k] = 0;
	mote_free(b);
}

/* Start SDK/mote-cc with MW_AOT_CFLAGS and `args`, its messages to `log`:
 * the pid, or -1 with the error reported. */
static pid_t spawn_cc(const char *sdk, char *const *args, size_t nargs, const char *log)
{
	char cc[PATH_CAP], inc[PATH_CAP + 8];
	path_join(cc, sizeof(cc), sdk, "mote-cc");
	snprintf(inc, sizeof(inc), "-I%s/include", sdk);
	char flags[] = MW_AOT_CFLAGS;
	char *argv[64];
	size_t argc = 0;
	argv[argc++] = cc;
	for (char *save, *q = strtok_r(flags, " ", &save); q && argc < 16;
	     q = strtok_r(NULL, " ", &save))
		argv[argc++] = q;
	argv[argc++] = inc;
	for (size_t i = 0; i < nargs && argc < 62; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int err = posix_spawn(&pid, cc, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		mote_fail(-MOTE_ECOMPILE, "cannot run %s: %s", cc, strerror(err));
		return -1;
	}
	return pid;
}

/* Wait for a compiler run: 0, or the error with its first messages. */
static int wait_cc(pid_t pid, const char *log)
{
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return mote_fail(-MOTE_ECOMPILE, "waiting for the C compiler: %s",
			                 strerror(errno));
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	char msg[600];
	log_excerpt(log, msg, sizeof(msg));
	return mote_fail(-MOTE_ECOMPILE, "the C compiler failed on the translated module: %s",
	                 msg[0] ? msg : "no message");
}

/* Every file in `work`, then `work` itself. */
static void remove_work(const char *work)
{
	DIR *d = opendir(work);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			char p[PATH_CAP];
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
			    path_join(p, sizeof(p), work, e->d_name))
				unlink(p);
		}
		closedir(d);
	}
	rmdir(work);
}

/* How many C files to split a module of `len` bytes into: one per CPU for
 * big modules (gcc -O2 takes ~45 s for a 1 MiB module on one core). */
static unsigned parts_for(size_t len)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t by_size = 1 + len / (64 << 10);
	size_t n = cpus > 0 ? (size_t)cpus : 1;
	if (n > by_size)
		n = by_size;
	return n > 16 ? 16 : (unsigned)n;
}

static int translate_error(const mw_error *err)
{
	switch (err->code) {
	case MW_ERR_MALFORMED:
	case MW_ERR_INVALID:
		return mote_fail(-MOTE_EBADWASM, "%s wasm module: %s (at byte %u)",
		                 err->code == MW_ERR_MALFORMED ? "malformed" : "invalid", err->msg,
		                 err->offset);
	case MW_ERR_NOMEM:
		return mote_fail(-MOTE_ENOMEM, "out of memory translating the wasm module");
	case MW_ERR_LIMIT:
		return mote_fail(-MOTE_ETOOBIG, "wasm module exceeds a limit: %s", err->msg);
	default:
		return mote_fail(-MOTE_ECOMPILE, "cannot translate the wasm module: %s", err->msg);
	}
}

/* Translate `wasm` into tr. The C names its bytes "module.wasm", found by
 * the assembler in the work directory (-Wa,-I), so the same module always
 * translates to the same text. */
static int translate(const void *wasm, size_t len, struct translation *tr)
{
	tr->parts = 0;
	unsigned parts = parts_for(len);
	for (unsigned p = 0; p < parts; p++) {
		mw_aot_options opt = {"w_", "mote_wasm_builtin", "module.wasm", parts, p};
		mw_error err;
		memset(&err, 0, sizeof(err));
		if (mw_aot_translate(wasm, len, &opt, &tr->c[p], &tr->len[p], &err) != 0) {
			translation_free(tr);
			return translate_error(&err);
		}
		tr->parts = p + 1;
	}
	return 0;
}

/* Write the translation into work/module-P.c, compile the parts in
 * parallel, link work/module.elf. */
static int compile_in(const char *sdk, const char *work, const void *wasm, size_t len,
                      const struct translation *tr)
{
	char wpath[PATH_CAP], asm_inc[PATH_CAP + 8];
	path_join(wpath, sizeof(wpath), work, "module.wasm");
	snprintf(asm_inc, sizeof(asm_inc), "-Wa,-I%s", work);
	unsigned parts = tr->parts;
	int rc = 0;
	for (unsigned p = 0; p < parts && !rc; p++) {
		char name[32], cpath[PATH_CAP];
		snprintf(name, sizeof(name), "module-%u.c", p);
		path_join(cpath, sizeof(cpath), work, name);
		if (write_all(cpath, tr->c[p], tr->len[p]) != 0)
			rc = mote_fail(-MOTE_EIO, "cannot write in %s: %s", work, strerror(errno));
	}
	if (!rc && write_all(wpath, wasm, len) != 0)
		rc = mote_fail(-MOTE_EIO, "cannot write in %s: %s", work, strerror(errno));
	if (rc)
		return rc;
	pid_t pids[16];
	char objs[16][PATH_CAP], logs[16][PATH_CAP];
	unsigned started = 0;
	for (unsigned p = 0; p < parts; p++) {
		char name[32], src[PATH_CAP];
		snprintf(name, sizeof(name), "module-%u.c", p);
		path_join(src, sizeof(src), work, name);
		snprintf(name, sizeof(name), "module-%u.o", p);
		path_join(objs[p], sizeof(objs[p]), work, name);
		snprintf(name, sizeof(name), "cc-%u.log", p);
		path_join(logs[p], sizeof(logs[p]), work, name);
		char *args[] = {asm_inc, "-c", "-o", objs[p], src};
		pids[p] = spawn_cc(sdk, args, 5, logs[p]);
		if (pids[p] < 0) {
			rc = -MOTE_ECOMPILE;
			break;
		}
		started++;
	}
	for (unsigned p = 0; p < started; p++) {
		int r = wait_cc(pids[p], logs[p]);
		if (!rc)
			rc = r;
	}
	if (rc)
		return rc;
	char elf[PATH_CAP], lib[PATH_CAP], log[PATH_CAP];
	path_join(elf, sizeof(elf), work, "module.elf");
	path_join(lib, sizeof(lib), sdk, "lib/libmote_wasmrt.a");
	path_join(log, sizeof(log), work, "link.log");
	char *args[24];
	size_t n = 0;
	args[n++] = "-o";
	args[n++] = elf;
	for (unsigned p = 0; p < parts; p++)
		args[n++] = objs[p];
	args[n++] = "-Wl,--whole-archive";
	args[n++] = lib;
	args[n++] = "-Wl,--no-whole-archive";
	pid_t pid = spawn_cc(sdk, args, n, log);
	return pid < 0 ? -MOTE_ECOMPILE : wait_cc(pid, log);
}

int mote_wasm_compile(const void *wasm, size_t len, const char *out_path, unsigned flags)
{
	if (!wasm || !out_path || !*out_path)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_compile: no %s",
		                 !wasm ? "module" : "output path");
	if (flags & ~(unsigned)MOTE_WASM_COMPILE_NO_CACHE)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_compile: unknown flags 0x%x", flags);
	const char *sdk = find_sdk();
	if (!sdk) {
		const char *env = getenv("MOTE_WASM_SDK");
		return mote_fail(-MOTE_ECOMPILE,
		                 "no Wasm compiler SDK (mote-cc, lib/libmote_wasmrt.a) in %s%s%s",
		                 env && *env ? env : MOTE_WASM_SDK_BUILD,
		                 env && *env ? " ($MOTE_WASM_SDK)" : " or ",
		                 env && *env ? "" : MOTE_WASM_SDK_INSTALL);
	}
	struct translation tr;
	int rc = translate(wasm, len, &tr);
	if (rc)
		return rc;
	char dir[PATH_CAP], key[65], cached[PATH_CAP + 80];
	bool use_cache = !(flags & MOTE_WASM_COMPILE_NO_CACHE) && cache_dir(dir, sizeof(dir)) &&
	                 cache_key(sdk, wasm, len, &tr, key) == 0;
	if (use_cache) {
		snprintf(cached, sizeof(cached), "%s/%s.elf", dir, key);
		if (access(cached, R_OK) == 0) {
			translation_free(&tr);
			if (copy_file(cached, out_path) != 0)
				return mote_fail(-MOTE_EIO, "cannot write %s: %s", out_path,
				                 strerror(errno));
			return 0;
		}
	}
	char work[PATH_CAP];
	const char *tmp = getenv("TMPDIR");
	snprintf(work, sizeof(work), "%s/mote-wasm-compile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(work)) {
		translation_free(&tr);
		return mote_fail(-MOTE_EIO, "cannot make a directory for compiling: %s",
		                 strerror(errno));
	}
	rc = compile_in(sdk, work, wasm, len, &tr);
	translation_free(&tr);
	char elf[PATH_CAP + 16];
	snprintf(elf, sizeof(elf), "%s/module.elf", work);
	if (!rc && copy_file(elf, out_path) != 0)
		rc = mote_fail(-MOTE_EIO, "cannot write %s: %s", out_path, strerror(errno));
	/* Into the cache whole (a concurrent compile of the same module writes
	 * the same bytes); a cache that cannot be written is only not filled. */
	if (!rc && use_cache)
		(void)copy_file(elf, cached);
	remove_work(work);
	return rc;
}

int mote_wasm_compile_file(const char *wasm_path, const char *out_path, unsigned flags)
{
	if (!wasm_path || !*wasm_path)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_compile_file: no module path");
	uint8_t *b;
	size_t n;
	if (read_all(wasm_path, &b, &n) != 0)
		return mote_fail(errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO, "cannot read %s: %s",
		                 wasm_path, strerror(errno));
	int rc = mote_wasm_compile(b, n, out_path, flags);
	mote_free(b);
	return rc;
}
