/* Errors, the replaceable allocator, value types and signatures. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/internal.h"

static mote_allocator allocator = {malloc, realloc, free};

int mote_set_allocator(const mote_allocator *a)
{
	if (!a || (!a->malloc && !a->realloc && !a->free)) {
		allocator = (mote_allocator){malloc, realloc, free};
		return 0;
	}
	if (!a->malloc || !a->realloc || !a->free)
		return mote_fail(-MOTE_EINVAL,
		                 "mote_set_allocator: malloc, realloc and free are all "
		                 "needed");
	allocator = *a;
	return 0;
}

void *mote_malloc(size_t size)
{
	return allocator.malloc(size ? size : 1);
}

void *mote_calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return NULL;
	void *p = mote_malloc(total);
	if (p)
		memset(p, 0, total);
	return p;
}

void *mote_realloc(void *ptr, size_t size)
{
	return allocator.realloc(ptr, size ? size : 1);
}

void mote_free(void *ptr)
{
	if (ptr)
		allocator.free(ptr);
}

char *mote_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = mote_malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* ---- Errors: the one idiom (internal.h) ---- */
static __thread char thread_error[1024];

const char *mote_last_error(void)
{
	return thread_error;
}

void mote_set_last_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(thread_error, sizeof(thread_error), fmt, ap);
	va_end(ap);
}

int mote_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(thread_error, sizeof(thread_error), fmt, ap);
	va_end(ap);
	return code;
}

int mote_sandbox_fail(struct mote_sandbox *sb, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sb->err, sizeof(sb->err), fmt, ap);
	va_end(ap);
	snprintf(thread_error, sizeof(thread_error), "%s", sb->err);
	return code;
}

int mote_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

void mote_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *mote_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
#define MOTE_STRERROR_CASE_(name, num, text)                                                       \
	case num:                                                                                  \
		return text;
		MOTE_ERRNO_MAP(MOTE_STRERROR_CASE_)
#undef MOTE_STRERROR_CASE_
	default:
		return "unknown error";
	}
}

const char *mote_errname(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "MOTE_OK";
#define MOTE_ERRNAME_CASE_(name, num, text)                                                        \
	case num:                                                                                  \
		return "MOTE_" #name;
		MOTE_ERRNO_MAP(MOTE_ERRNAME_CASE_)
#undef MOTE_ERRNAME_CASE_
	default:
		return "MOTE_E?";
	}
}

const char *mote_version(void)
{
	return MOTE_VERSION;
}

static const char *const type_names[MOTE_TYPE_COUNT_] = {
	"void", "i32", "u32", "i64", "u64", "f32", "f64", "bool", "string", "bytes",
};

const char *mote_type_name(mote_type type)
{
	if ((unsigned)type >= MOTE_TYPE_COUNT_)
		return "?";
	return type_names[type];
}

int mote_type_parse(const char *name, mote_type *out)
{
	if (!name || !out)
		return mote_fail(-MOTE_EINVAL, "mote_type_parse: no %s", !name ? "name" : "out");
	for (unsigned i = 0; i < MOTE_TYPE_COUNT_; i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*out = (mote_type)i;
			return 0;
		}
	}
	if (strcmp(name, "str") == 0) {
		*out = MOTE_STRING;
		return 0;
	}
	return mote_fail(-MOTE_EINVAL, "'%.64s' is not a type", name);
}

mote_value mote_string(const char *s)
{
	mote_value v = {MOTE_STRING, {.buf = {s, s ? strlen(s) : 0}}};
	return v;
}

void mote_sig_format(const struct mote_sig *sig, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s %s(", mote_type_name(sig->ret), sig->name);
	for (unsigned i = 0; i < sig->nargs && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
				      mote_type_name(sig->args[i]));
	if (n < len)
		snprintf(buf + n, len - n, ")");
}

bool mote_sig_equal(const struct mote_sig *a, const struct mote_sig *b)
{
	return a->ret == b->ret && a->nargs == b->nargs &&
	       memcmp(a->args, b->args, a->nargs * sizeof(a->args[0])) == 0;
}

int mote_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		int e = (uint64_t)st.st_size > max && S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		close(fd);
		errno = e;
		return -1;
	}
	size_t size = (size_t)st.st_size, done = 0;
	uint8_t *buf = mote_malloc(size ? size : 1);
	while (buf && done < size) {
		ssize_t n = read(fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (!buf || done != size) {
		mote_free(buf);
		errno = buf ? EIO : ENOMEM;
		return -1;
	}
	*out = buf;
	*len = size;
	return 0;
}
