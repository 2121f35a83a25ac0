/* What the mote subcommands share: error reporting, sizes and typed values
 * parsed from the command line and printed back, the sandbox options, and
 * telling a snapshot file from a guest ELF. */
#include "tools/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fail(int code, int err, const char *detail)
{
	fprintf(stderr, "mote: %s: %s\n", mote_errname(err),
	        detail && *detail ? detail : mote_strerror(err));
	return code;
}

/* "64K", "8M", "1G", or plain bytes. */
int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	uint64_t mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30;
	else if (*end)
		return -1;
	if (mul > 1 && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	void *data = read_stream(f, len);
	fclose(f);
	return data;
}

void *read_stream(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		unsigned char *bigger = realloc(buf, cap * 2);
		if (!bigger) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = bigger;
		cap *= 2;
	}
	*len = n;
	return buf;
}

/* Parse one command-line argument as `type`. Bytes storage is malloc'd into
 * *owned. Returns 0 or prints why and returns -1. */
int parse_value(const char *s, mote_type type, mote_value *v, void **owned)
{
	char *end = NULL;
	errno = 0;
	v->type = type;
	switch (type) {
	case MOTE_I32:
	case MOTE_I64: {
		long long x = strtoll(s, &end, 0);
		if (errno || *end || end == s ||
		    (type == MOTE_I32 && (x < INT32_MIN || x > INT32_MAX)))
			break;
		if (type == MOTE_I32)
			v->v.i32 = (int32_t)x;
		else
			v->v.i64 = x;
		return 0;
	}
	case MOTE_U32:
	case MOTE_U64: {
		if (*s == '-')
			break;
		unsigned long long x = strtoull(s, &end, 0);
		if (errno || *end || end == s || (type == MOTE_U32 && x > UINT32_MAX))
			break;
		if (type == MOTE_U32)
			v->v.u32 = (uint32_t)x;
		else
			v->v.u64 = x;
		return 0;
	}
	case MOTE_F32:
	case MOTE_F64: {
		double x = strtod(s, &end);
		if (*end || end == s)
			break;
		if (type == MOTE_F32)
			v->v.f32 = (float)x;
		else
			v->v.f64 = x;
		return 0;
	}
	case MOTE_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "1"))
			v->v.b = true;
		else if (!strcmp(s, "false") || !strcmp(s, "0"))
			v->v.b = false;
		else
			break;
		return 0;
	case MOTE_STRING:
		v->v.buf.ptr = s;
		v->v.buf.len = strlen(s);
		return 0;
	case MOTE_BYTES: {
		if (*s == '@') {
			size_t len;
			void *data = read_file(s + 1, &len);
			if (!data) {
				fprintf(stderr, "mote: cannot read %s: %s\n", s + 1,
				        strerror(errno));
				return -1;
			}
			*owned = data;
			v->v.buf.ptr = data;
			v->v.buf.len = len;
			return 0;
		}
		size_t n = strlen(s);
		if (n % 2)
			break;
		unsigned char *data = malloc(n / 2 + 1);
		if (!data)
			return -1;
		for (size_t i = 0; i < n / 2; i++) {
			int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				free(data);
				goto bad;
			}
			data[i] = (unsigned char)(hi << 4 | lo);
		}
		*owned = data;
		v->v.buf.ptr = data;
		v->v.buf.len = n / 2;
		return 0;
	}
	default:
		break;
	}
bad:
	fprintf(stderr, "mote: MOTE_ESIGNATURE: '%s' is not a valid %s\n", s, mote_type_name(type));
	return -1;
}

void print_value(const mote_value *v)
{
	switch (v->type) {
	case MOTE_VOID:
		break;
	case MOTE_I32:
		printf("%" PRId32 "\n", v->v.i32);
		break;
	case MOTE_U32:
		printf("%" PRIu32 "\n", v->v.u32);
		break;
	case MOTE_I64:
		printf("%" PRId64 "\n", v->v.i64);
		break;
	case MOTE_U64:
		printf("%" PRIu64 "\n", v->v.u64);
		break;
	case MOTE_F32:
		printf("%.9g\n", (double)v->v.f32);
		break;
	case MOTE_F64:
		printf("%.17g\n", v->v.f64);
		break;
	case MOTE_BOOL:
		printf("%s\n", v->v.b ? "true" : "false");
		break;
	case MOTE_STRING:
		fwrite(v->v.buf.ptr, 1, v->v.buf.len, stdout);
		putchar('\n');
		break;
	case MOTE_BYTES: {
		const unsigned char *p = v->v.buf.ptr;
		for (size_t i = 0; i < v->v.buf.len; i++)
			printf("%02x", p[i]);
		putchar('\n');
		break;
	}
	default:
		printf("?\n");
	}
}

/* Guest prints go to stdout (they are the program's output), logs to stderr. */
void cli_output(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	static const char *const names[] = {"", "error", "warn", "info", "debug"};
	if (level == MOTE_LOG_PRINT) {
		fwrite(text, 1, len, stdout);
		return;
	}
	if (level == MOTE_LOG_STDERR) {
		fflush(stdout); /* the order a terminal showing both would expect */
		fwrite(text, 1, len, stderr);
		return;
	}
	fflush(stdout);
	fprintf(stderr, "[guest %s] %.*s\n", names[level <= MOTE_LOG_DEBUG ? level : 3], (int)len,
	        text);
}

unsigned open_flags; /* --header-only */
int gdb_port;

/* --map FILE[@ADDR][,cow] requests, applied after the sandbox starts. */
#define MAX_MAPS 16
static struct {
	char path[4096];
	uint64_t addr; /* 0: next free */
	unsigned flags;
} maps[MAX_MAPS];
static int nmaps;

static int parse_map(const char *arg)
{
	if (nmaps == MAX_MAPS) {
		fprintf(stderr, "mote: at most %d --map options\n", MAX_MAPS);
		return -1;
	}
	char spec[4200];
	snprintf(spec, sizeof(spec), "%s", arg);
	unsigned flags = MOTE_MAP_READ_ONLY;
	size_t n = strlen(spec);
	if (n > 4 && !strcmp(spec + n - 4, ",cow")) {
		flags = MOTE_MAP_COPY_ON_WRITE;
		spec[n - 4] = 0;
	}
	uint64_t addr = 0;
	char *at = strrchr(spec, '@');
	if (at) {
		char *end;
		*at = 0;
		errno = 0;
		addr = strtoull(at + 1, &end, 0);
		if (errno || *end || end == at + 1) {
			fprintf(stderr, "mote: --map %s: '%s' is not an address\n", arg, at + 1);
			return -1;
		}
	}
	snprintf(maps[nmaps].path, sizeof(maps[nmaps].path), "%s", spec);
	maps[nmaps].addr = addr;
	maps[nmaps].flags = flags;
	nmaps++;
	return 0;
}

/* Map the --map files; addresses not given follow each other, 2 MiB apart
 * at least, from the start of the window. */
int apply_maps(mote_sandbox *sb)
{
	uint64_t next = MOTE_MAP_WINDOW_BASE;
	for (int i = 0; i < nmaps; i++) {
		uint64_t addr = maps[i].addr ? maps[i].addr : next;
		int rc = mote_sandbox_map_file(sb, maps[i].path, addr, maps[i].flags);
		if (rc)
			return fail(EXIT_CREATE, rc, mote_sandbox_last_error(sb));
		FILE *f = fopen(maps[i].path, "rb");
		long size = 0;
		if (f && fseek(f, 0, SEEK_END) == 0)
			size = ftell(f);
		if (f)
			fclose(f);
		uint64_t end = addr + (uint64_t)(size > 0 ? size : 1);
		next = (end + (2u << 20) - 1) & ~((2ull << 20) - 1);
		fprintf(stderr, "mote: mapped %s at 0x%llx%s\n", maps[i].path,
		        (unsigned long long)addr,
		        maps[i].flags == MOTE_MAP_COPY_ON_WRITE ? " (copy-on-write)" : "");
	}
	return 0;
}

/* Options shared by commands that create sandboxes; consumes argv entries. */
int parse_config(int *argc, char ***argv, mote_config *cfg)
{
	mote_config_set_output_streams(cfg, cli_output, NULL);
	while (*argc > 0 && strncmp((*argv)[0], "--", 2) == 0) {
		const char *opt = (*argv)[0];
		if (!strcmp(opt, "--")) {
			(*argc)--;
			(*argv)++;
			break;
		}
		if (!strcmp(opt, "--header-only")) {
			open_flags |= MOTE_SNAPSHOT_VERIFY_HEADER;
			(*argc)--;
			(*argv)++;
			continue;
		}
		if (*argc < 2) {
			fprintf(stderr, "mote: option %s needs a value\n", opt);
			return -1;
		}
		const char *val = (*argv)[1];
		uint64_t n;
		int rc;
		if (!strcmp(opt, "--map")) {
			if (parse_map(val))
				return -1;
			*argc -= 2;
			*argv += 2;
			continue;
		}
		if (!strcmp(opt, "--backend")) {
			mote_backend b;
			if (mote_backend_parse(val, &b)) {
				fprintf(stderr,
				        "mote: --backend takes auto, kvm or process, not '%s'\n",
				        val);
				return -1;
			}
			mote_config_set_backend(cfg, b);
			*argc -= 2;
			*argv += 2;
			continue;
		}
		if (!strcmp(opt, "--gdb")) {
			char *end;
			long port = strtol(val, &end, 10);
			if (*end || end == val || port < 1 || port > 65535) {
				fprintf(stderr, "mote: --gdb takes a TCP port (1-65535), not '%s'\n", val);
				return -1;
			}
			mote_config_set_gdb_port(cfg, (int)port);
			gdb_port = (int)port;
			*argc -= 2;
			*argv += 2;
			continue;
		}
		if (!strcmp(opt, "--core-dump")) {
			rc = mote_config_set_core_dump(cfg, val);
			if (rc) {
				fprintf(stderr, "mote: --core-dump: %s\n", mote_last_error());
				return -1;
			}
			*argc -= 2;
			*argv += 2;
			continue;
		}
		if (!strcmp(opt, "--timeout")) {
			char *end;
			unsigned long long ms = strtoull(val, &end, 10);
			if (*end || end == val) {
				fprintf(stderr, "mote: --timeout takes milliseconds, not '%s'\n",
				        val);
				return -1;
			}
			rc = mote_config_set_timeout_us(cfg, ms * 1000);
		} else if (parse_size(val, &n)) {
			fprintf(stderr, "mote: %s: '%s' is not a size\n", opt, val);
			return -1;
		} else if (!strcmp(opt, "--heap"))
			rc = mote_config_set_heap_size(cfg, n);
		else if (!strcmp(opt, "--stack"))
			rc = mote_config_set_stack_size(cfg, n);
		else if (!strcmp(opt, "--input-size"))
			rc = mote_config_set_input_size(cfg, n);
		else if (!strcmp(opt, "--output-size"))
			rc = mote_config_set_output_size(cfg, n);
		else {
			fprintf(stderr, "mote: unknown option %s\n", opt);
			return -1;
		}
		if (rc) {
			fprintf(stderr, "mote: %s %s: out of range\n", opt, val);
			return -1;
		}
		*argc -= 2;
		*argv += 2;
	}
	return 0;
}

bool is_snapshot_file(const char *path)
{
	char magic[8];
	FILE *f = fopen(path, "rb");
	bool yes = f && fread(magic, 1, 8, f) == 8 && !memcmp(magic, "MOTESNAP", 8);
	if (f)
		fclose(f);
	return yes;
}

void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}
