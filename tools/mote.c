/* mote: the command line tool. One table of subcommands; each parses its own
 * arguments. Exit codes are documented in usage() and docs/cli.md. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "common/abi.h"
#include "mote.h"
#include "mote/wasm.h"

enum {
	EXIT_OK = 0,
	EXIT_CALL = 1,   /* the guest call failed (fault, timeout, guest error) */
	EXIT_USAGE = 2,  /* bad command line or arguments */
	EXIT_CREATE = 3, /* the sandbox could not be created (bad file, no KVM) */
};

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *args;
	const char *help;
};

static int cmd_run(int argc, char **argv);
static int cmd_inspect(int argc, char **argv);
static int cmd_snapshot(int argc, char **argv);
static int cmd_verify(int argc, char **argv);
static int cmd_bench(int argc, char **argv);
static int cmd_wasm(int argc, char **argv);
static int cmd_doctor(int argc, char **argv);
static int wasm_cmd_run(int argc, char **argv, mote_config *cfg);

static const struct command commands[] = {
	{"run", cmd_run, "[OPTIONS] GUEST|SNAPSHOT FUNCTION [ARGS...]",
	 "start a sandbox from a guest ELF or a snapshot file, call FUNCTION with ARGS\n"
	 "           parsed by its signature, print the result"},
	{"inspect", cmd_inspect, "[--json] GUEST|SNAPSHOT",
	 "show a guest's or snapshot's functions, versions, sizes (and hashes)"},
	{"snapshot", cmd_snapshot, "[OPTIONS] GUEST -o FILE [--call FUNCTION ARGS...]",
	 "boot GUEST, optionally run a warm-up call, save a snapshot file"},
	{"verify", cmd_verify, "FILE", "check every hash of a snapshot file"},
	{"bench", cmd_bench, "[--json] [--runs N] [SUITE...]",
	 "measure creation, calls, snapshots, mappings against the bare-KVM floor"},
	{"wasm", cmd_wasm, "run|snapshot|exports [OPTIONS] MODULE.wasm|SNAPSHOT ...",
	 "run a WebAssembly module inside a sandbox (mote wasm --help)"},
	{"doctor", cmd_doctor, "[--json] [--check BACKEND]",
	 "which backends this machine can run, which one auto picks, and why not"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: mote COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n           %s\n", commands[i].name, commands[i].args,
			commands[i].help);
	fprintf(f,
		"  help     this text;  --version  the version\n"
		"\nrun options:\n"
		"  --heap SIZE        guest heap (128K default, up to 16G; suffixes K, M, G)\n"
		"  --stack SIZE       guest stack (64K default)\n"
		"  --input-size SIZE  argument buffer (64K default)\n"
		"  --output-size SIZE result buffer (64K default)\n"
		"  --timeout MS       stop the call after MS milliseconds\n"
		"  --backend NAME     auto (default: MOTE_BACKEND, else kvm where /dev/kvm\n"
		"                     opens, else process), kvm or process\n"
		"  --header-only      (snapshot files) verify the header hash only\n"
		"  --map FILE[@ADDR][,cow]  map a host file into the guest, read-only (or\n"
		"                     copy-on-write), at ADDR or the next free address of the\n"
		"                     mapping window 0x1000000000-0x1100000000 (run only)\n"
		"\narguments: i32/u32/i64/u64 in decimal or 0x hex; f32/f64 as decimal, inf, nan;\n"
		"bool as true/false/1/0; string as given; bytes as hex digits (\"0a0b\") or\n"
		"@FILE for a file's contents. Results print the same way (bytes as hex).\n"
		"\nA snapshot file is recognised by its magic. Opening one verifies every hash\n"
		"(SHA-256) unless --header-only is given; inspect reads the header only.\n"
		"inspect reads a guest ELF without starting it (no /dev/kvm needed).\n"
		"\nexit status: 0 success; 1 the call failed (guest fault, abort, timeout,\n"
		"guest error) or verify found the file invalid; 2 usage error or arguments\n"
		"that do not match the signature; 3 the sandbox or snapshot could not be\n"
		"created or opened (bad file, ABI mismatch, no KVM).\n"
		"Errors print as \"mote: MOTE_Exxx: detail\" on stderr.\n");
}

static int fail(int code, int err, const char *detail)
{
	fprintf(stderr, "mote: %s: %s\n", mote_errname(err),
		detail && *detail ? detail : mote_strerror(err));
	return code;
}

/* "64K", "8M", "1G", or plain bytes. */
static int parse_size(const char *s, uint64_t *out)
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

static void *read_stream(FILE *f, size_t *len);

static void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	void *data = read_stream(f, len);
	fclose(f);
	return data;
}

static void *read_stream(FILE *f, size_t *len)
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
static int parse_value(const char *s, mote_type type, mote_value *v, void **owned)
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
				fprintf(stderr, "mote: cannot read %s: %s\n", s + 1, strerror(errno));
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

static void print_value(const mote_value *v)
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
static void cli_output(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	static const char *const names[] = {"", "error", "warn", "info", "debug"};
	if (level == MOTE_LOG_PRINT) {
		fwrite(text, 1, len, stdout);
		return;
	}
	fflush(stdout);
	fprintf(stderr, "[guest %s] %.*s\n", names[level <= MOTE_LOG_DEBUG ? level : 3], (int)len,
		text);
}

static unsigned open_flags; /* --header-only */

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
static int apply_maps(mote_sandbox *sb)
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
static int parse_config(int *argc, char ***argv, mote_config *cfg)
{
	mote_config_set_output(cfg, cli_output, NULL);
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
				fprintf(stderr, "mote: --backend takes auto, kvm or process, not '%s'\n",
					val);
				return -1;
			}
			mote_config_set_backend(cfg, b);
			*argc -= 2;
			*argv += 2;
			continue;
		}
		if (!strcmp(opt, "--timeout")) {
			char *end;
			unsigned long long ms = strtoull(val, &end, 10);
			if (*end || end == val) {
				fprintf(stderr, "mote: --timeout takes milliseconds, not '%s'\n", val);
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

static bool is_snapshot_file(const char *path)
{
	char magic[8];
	FILE *f = fopen(path, "rb");
	bool yes = f && fread(magic, 1, 8, f) == 8 && !memcmp(magic, "MOTESNAP", 8);
	if (f)
		fclose(f);
	return yes;
}

/* A snapshot of a Wasm sandbox: its guest is mote's Wasm runtime. */
static bool is_wasm_snapshot(const char *path)
{
	mote_snapshot_info in;
	if (!is_snapshot_file(path) || mote_snapshot_info_read(path, &in) != 0)
		return false;
	bool wasm = false;
	for (size_t i = 0; i < in.nguest_functions && !wasm; i++)
		wasm = !strcmp(in.guest_functions[i].name, "wasm_call");
	mote_snapshot_info_free(&in);
	return wasm;
}

/* A sandbox from a guest ELF or a snapshot file. Prints the error. */
static int open_sandbox(const char *path, const mote_config *cfg, mote_sandbox **sb)
{
	if (!is_snapshot_file(path)) {
		int rc = mote_sandbox_new(path, cfg, NULL, sb);
		return rc ? fail(EXIT_CREATE, rc, mote_last_error()) : 0;
	}
	mote_snapshot *snap;
	int rc = mote_snapshot_open(path, open_flags, &snap);
	if (rc)
		return fail(EXIT_CREATE, rc, mote_last_error());
	rc = mote_sandbox_from_snapshot(snap, NULL, cfg, sb);
	mote_snapshot_free(snap);
	return rc ? fail(EXIT_CREATE, rc, mote_last_error()) : 0;
}

static const char *sig_text(const mote_function_info *fi, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s %s(", mote_type_name(fi->ret), fi->name);
	for (size_t i = 0; i < fi->nargs && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
				      mote_type_name(fi->args[i]));
	if (n < len)
		snprintf(buf + n, len - n, ")");
	return buf;
}

/* Look FUNCTION up, parse ARGS by its signature, call, print the result. */
static int call_and_print(mote_sandbox *sb, const char *fname, size_t nargs, char **argv,
			  const char *what, bool print)
{
	int code = EXIT_USAGE, rc;
	mote_function_info fi = {0};
	bool found = false;
	for (size_t i = 0; i < mote_sandbox_function_count(sb) && !found; i++)
		found = mote_sandbox_function(sb, i, &fi) == 0 && !strcmp(fi.name, fname);
	if (!found) {
		char detail[256];
		snprintf(detail, sizeof(detail), "no guest function '%s' (see mote inspect %s)",
			 fname, what);
		return fail(EXIT_USAGE, -MOTE_ENOFUNC, detail);
	}
	if (nargs != fi.nargs) {
		char sig[256], detail[320];
		snprintf(detail, sizeof(detail), "%s takes %zu argument%s, %zu given",
			 sig_text(&fi, sig, sizeof(sig)), fi.nargs, fi.nargs == 1 ? "" : "s", nargs);
		return fail(EXIT_USAGE, -MOTE_ESIGNATURE, detail);
	}
	mote_value args[MOTE_MAX_ARGS];
	void *owned[MOTE_MAX_ARGS] = {0};
	bool ok = true;
	for (size_t i = 0; i < nargs && ok; i++)
		ok = parse_value(argv[i], fi.args[i], &args[i], &owned[i]) == 0;
	if (ok) {
		mote_value result;
		rc = mote_sandbox_call(sb, fname, args, nargs, &result);
		if (rc)
			code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
		else {
			if (print)
				print_value(&result);
			code = EXIT_OK;
		}
	}
	for (size_t i = 0; i < nargs; i++)
		free(owned[i]);
	return code;
}

static int cmd_run(int argc, char **argv)
{
	mote_config *cfg;
	if (mote_config_new(&cfg))
		return fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
	int code = EXIT_USAGE;
	if (parse_config(&argc, &argv, cfg))
		goto out_cfg;
	if (argc < 2) {
		fprintf(stderr, "usage: mote run [OPTIONS] GUEST FUNCTION [ARGS...]\n");
		goto out_cfg;
	}
	if (is_wasm_snapshot(argv[0])) {
		/* A Wasm sandbox's snapshot: FUNCTION is an export of its module. */
		char **wargv = calloc((size_t)argc + 2, sizeof(*wargv));
		if (!wargv) {
			code = fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
			goto out_cfg;
		}
		wargv[0] = argv[0];
		wargv[1] = (char *)"--invoke";
		for (int i = 1; i < argc; i++)
			wargv[i + 1] = argv[i];
		code = wasm_cmd_run(argc + 1, wargv, cfg);
		free(wargv);
		goto out_cfg;
	}
	mote_sandbox *sb;
	code = open_sandbox(argv[0], cfg, &sb);
	if (code)
		goto out_cfg;
	code = apply_maps(sb);
	if (!code)
		code = call_and_print(sb, argv[1], (size_t)argc - 2, argv + 2, argv[0], true);
	mote_sandbox_free(sb);
out_cfg:
	mote_config_free(cfg);
	return code;
}

static void json_string(const char *s)
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

static void json_functions(const mote_function_info *fns, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		printf("%s{\"name\": ", i ? ", " : "");
		json_string(fns[i].name);
		printf(", \"result\": \"%s\", \"args\": [", mote_type_name(fns[i].ret));
		for (size_t a = 0; a < fns[i].nargs; a++)
			printf("%s\"%s\"", a ? ", " : "", mote_type_name(fns[i].args[a]));
		printf("]}");
	}
	printf("]");
}

/* A layer names its base: follow the chain, each file read header-only. */
static void print_chain(const char *path, const mote_snapshot_info *in)
{
	char cur[4096], hash[65], hint[4096];
	snprintf(cur, sizeof(cur), "%s", path);
	bool layer = in->is_layer;
	if (layer) {
		snprintf(hash, sizeof(hash), "%s", in->parent_hash);
		snprintf(hint, sizeof(hint), "%s", in->parent_path);
	}
	for (int depth = 1; layer && depth <= 32; depth++) {
		char base[4096];
		const char *slash = strrchr(cur, '/');
		if (hint[0] == '/' || !slash)
			snprintf(base, sizeof(base), "%s", hint);
		else
			snprintf(base, sizeof(base), "%.*s/%.*s", (int)(slash - cur), cur,
				 (int)(sizeof(base) / 2), hint);
		printf("%-15s %s (header hash %.16s...)\n", depth == 1 ? "layer over:" : "", base,
		       hash);
		mote_snapshot_info next;
		if (mote_snapshot_info_read(base, &next) != 0) {
			printf("%-15s (cannot read it: %s)\n", "", mote_last_error());
			return;
		}
		if (strcmp(next.header_hash, hash) != 0) {
			printf("%-15s (it has changed: header hash %.16s...)\n", "", next.header_hash);
			mote_snapshot_info_free(&next);
			return;
		}
		layer = next.is_layer;
		if (layer) {
			snprintf(hash, sizeof(hash), "%s", next.parent_hash);
			snprintf(hint, sizeof(hint), "%s", next.parent_path);
		}
		snprintf(cur, sizeof(cur), "%s", base);
		mote_snapshot_info_free(&next);
	}
}

static int inspect_snapshot(const char *path, bool json)
{
	mote_snapshot_info in;
	int rc = mote_snapshot_info_read(path, &in);
	if (rc)
		return fail(EXIT_CREATE, rc, mote_last_error());
	time_t secs = (time_t)(in.created_unix_ns / 1000000000u);
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&secs));
	if (json) {
		printf("{\"kind\": \"snapshot\", \"path\": ");
		json_string(path);
		printf(", \"format_version\": %u, \"abi_version\": %u, \"arch\": \"%s\", "
		       "\"hypervisor\": \"%s\", \"cpu_vendor\": ",
		       in.format_version, in.abi_version, in.arch, in.hypervisor);
		json_string(in.cpu_vendor);
		printf(", \"created\": \"%s\", \"file_size\": %" PRIu64 ", \"memory_size\": %" PRIu64
		       ", \"image_size\": %" PRIu64 ", \"heap_size\": %" PRIu64
		       ", \"stack_size\": %" PRIu64 ", \"input_size\": %" PRIu64
		       ", \"output_size\": %" PRIu64 ", \"stored_bytes\": %" PRIu64
		       ", \"regions\": %zu, \"header_hash\": \"%s\", \"blob_hash\": \"%s\", "
		       "\"parent_hash\": \"%s\", \"mapped_files\": %zu, \"host_functions\": ",
		       when, in.file_size, in.mem_size, in.image_size, in.heap_size, in.stack_size,
		       in.input_size, in.output_size, in.blob_size, in.nregions, in.header_hash,
		       in.blob_hash, in.parent_hash, in.nmappings);
		json_functions(in.host_functions, in.nhost_functions);
		printf(", \"guest_functions\": ");
		json_functions(in.guest_functions, in.nguest_functions);
		printf("}\n");
	} else {
		char sig[256];
		printf("snapshot:       %s\n", path);
		printf("format:         version %u, guest ABI %u, %s, saved on %s, %s CPU\n",
		       in.format_version, in.abi_version, in.arch, in.hypervisor, in.cpu_vendor);
		printf("created:        %s\n", when);
		printf("file:           %" PRIu64 " bytes, %" PRIu64 " bytes of memory stored in %zu "
		       "regions\n",
		       in.file_size, in.blob_size, in.nregions);
		printf("memory:         %" PRIu64 " bytes (heap %" PRIu64 ", stack %" PRIu64
		       ", input %" PRIu64 ", output %" PRIu64 ", image %" PRIu64 ")\n",
		       in.mem_size, in.heap_size, in.stack_size, in.input_size, in.output_size,
		       in.image_size);
		printf("header hash:    %s\nblob hash:      %s\n", in.header_hash, in.blob_hash);
		print_chain(path, &in);
		if (in.nmappings)
			printf("mapped files:   %zu (by path and content hash, or absorbed)\n",
			       in.nmappings);
		printf("host functions: %zu required\n", in.nhost_functions);
		for (size_t i = 0; i < in.nhost_functions; i++)
			printf("  %s\n", sig_text(&in.host_functions[i], sig, sizeof(sig)));
		printf("functions:      %zu\n", in.nguest_functions);
		for (size_t i = 0; i < in.nguest_functions; i++)
			printf("  %s\n", sig_text(&in.guest_functions[i], sig, sizeof(sig)));
	}
	mote_snapshot_info_free(&in);
	return EXIT_OK;
}

/* From the file alone (mote_guest_info_read): no sandbox, no /dev/kvm. */
static int inspect_elf(const char *path, bool json)
{
	mote_guest_info in;
	int rc = mote_guest_info_read(path, &in);
	if (rc)
		return fail(EXIT_CREATE, rc, mote_last_error());
	if (json) {
		printf("{\"kind\": \"elf\", \"path\": ");
		json_string(path);
		printf(", \"abi_version\": %u, \"image_size\": %" PRIu64
		       ", \"memory_size\": %" PRIu64 ", \"heap_size\": %" PRIu64
		       ", \"stack_size\": %" PRIu64 ", \"input_size\": %" PRIu64
		       ", \"output_size\": %" PRIu64 ", \"functions\": [",
		       in.abi_version, in.image_size, in.mem_size, in.heap_size, in.stack_size,
		       in.input_size, in.output_size);
		for (size_t i = 0; i < in.nfunctions; i++) {
			const mote_function_info *fi = &in.functions[i];
			printf("%s{\"name\": ", i ? ", " : "");
			json_string(fi->name);
			printf(", \"result\": \"%s\", \"args\": [", mote_type_name(fi->ret));
			for (size_t a = 0; a < fi->nargs; a++)
				printf("%s\"%s\"", a ? ", " : "", mote_type_name(fi->args[a]));
			printf("]}");
		}
		printf("]}\n");
	} else {
		printf("guest:        %s (ELF)\n", path);
		printf("ABI version:  %u\n", in.abi_version);
		printf("image:        %" PRIu64 " bytes\n", in.image_size);
		printf("memory:       %" PRIu64 " bytes (heap %" PRIu64 ", stack %" PRIu64
		       ", input %" PRIu64 ", output %" PRIu64 ") with default settings\n",
		       in.mem_size, in.heap_size, in.stack_size, in.input_size, in.output_size);
		printf("functions:    %zu\n", in.nfunctions);
		for (size_t i = 0; i < in.nfunctions; i++) {
			char sig[256];
			printf("  %s\n", sig_text(&in.functions[i], sig, sizeof(sig)));
		}
	}
	mote_guest_info_free(&in);
	return EXIT_OK;
}

static int cmd_inspect(int argc, char **argv)
{
	bool json = false;
	if (argc > 0 && !strcmp(argv[0], "--json")) {
		json = true;
		argc--;
		argv++;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: mote inspect [--json] GUEST|SNAPSHOT\n");
		return EXIT_USAGE;
	}
	if (is_snapshot_file(argv[0]))
		return inspect_snapshot(argv[0], json);
	return inspect_elf(argv[0], json);
}

static int cmd_snapshot(int argc, char **argv)
{
	mote_config *cfg;
	if (mote_config_new(&cfg))
		return fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
	int code = EXIT_USAGE;
	const char *out = NULL, *guest = NULL;
	mote_sandbox *sb = NULL;
	mote_snapshot *snap = NULL;
	/* Options may come before or after GUEST; --call ends them. */
	while (argc > 0 && strcmp(argv[0], "--call") != 0) {
		if (!strcmp(argv[0], "-o") && argc > 1) {
			out = argv[1];
			argc -= 2;
			argv += 2;
		} else if (!strncmp(argv[0], "--", 2)) {
			if (parse_config(&argc, &argv, cfg) || (argc > 0 && !strncmp(argv[0], "--", 2) &&
							      strcmp(argv[0], "--call")))
				goto out;
		} else if (!guest) {
			guest = argv[0];
			argc--;
			argv++;
		} else {
			fprintf(stderr, "mote snapshot: unexpected argument '%s'\n", argv[0]);
			goto out;
		}
	}
	if (!guest || !out) {
		fprintf(stderr, "usage: mote snapshot [OPTIONS] GUEST -o FILE [--call FUNCTION ARGS...]\n");
		goto out;
	}
	code = open_sandbox(guest, cfg, &sb);
	if (code)
		goto out;
	if (argc > 0) { /* --call FUNCTION ARGS... */
		if (argc < 2) { /* argv[0] is "--call" */
			fprintf(stderr, "mote snapshot: --call needs a FUNCTION\n");
			code = EXIT_USAGE;
			goto out;
		}
		code = call_and_print(sb, argv[1], (size_t)argc - 2, argv + 2, guest, false);
		if (code)
			goto out;
	}
	int rc = mote_sandbox_snapshot(sb, &snap);
	if (rc) {
		code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
		goto out;
	}
	rc = mote_snapshot_save(snap, out);
	if (rc) {
		code = fail(EXIT_CREATE, rc, mote_last_error());
		goto out;
	}
	fprintf(stderr, "mote: saved %s\n", out);
	code = EXIT_OK;
out:
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	mote_config_free(cfg);
	return code;
}

/* What this machine can run: each backend's check, and auto's choice. */
static int cmd_doctor(int argc, char **argv)
{
	bool json = false;
	const char *check = NULL;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--check") && i + 1 < argc)
			check = argv[++i];
		else {
			fprintf(stderr, "usage: mote doctor [--json] [--check BACKEND]\n");
			return EXIT_USAGE;
		}
	}
	if (check) {
		mote_backend b;
		if (mote_backend_parse(check, &b)) {
			fprintf(stderr, "mote: --check takes auto, kvm or process, not '%s'\n", check);
			return EXIT_USAGE;
		}
		if (mote_backend_check(b, NULL)) {
			printf("%s\n", mote_last_error());
			return EXIT_CALL;
		}
		return EXIT_OK;
	}
	static const mote_backend all[] = {MOTE_BACKEND_KVM, MOTE_BACKEND_PROCESS};
	char why[2][512], how[2][256];
	bool ok[2];
	for (int i = 0; i < 2; i++) {
		ok[i] = mote_backend_check(all[i], NULL) == 0;
		snprintf(why[i], sizeof(why[i]), "%s", ok[i] ? "" : mote_last_error());
		snprintf(how[i], sizeof(how[i]), "%s", mote_backend_describe(all[i]));
	}
	mote_backend chosen = MOTE_BACKEND_AUTO;
	bool any = mote_backend_check(MOTE_BACKEND_AUTO, &chosen) == 0;
	const char *env = getenv("MOTE_BACKEND");
	if (json) {
		printf("{\"backends\": [");
		for (int i = 0; i < 2; i++) {
			printf("%s{\"name\": \"%s\", \"available\": %s, \"reason\": ", i ? ", " : "",
			       mote_backend_name(all[i]), ok[i] ? "true" : "false");
			json_string(why[i]);
			printf(", \"how\": ");
			json_string(how[i]);
			printf("}");
		}
		printf("], \"auto\": ");
		if (any)
			printf("\"%s\"", mote_backend_name(chosen));
		else
			printf("null");
		printf(", \"MOTE_BACKEND\": ");
		if (env)
			json_string(env);
		else
			printf("null");
		printf("}\n");
	} else {
		for (int i = 0; i < 2; i++)
			printf("%-8s %s: %s\n", mote_backend_name(all[i]),
			       ok[i] ? "available" : "unavailable", ok[i] ? how[i] : why[i]);
		if (!any)
			printf("auto     nothing can run here\n");
		else if (env && *env)
			printf("auto     picks %s (MOTE_BACKEND=%s)\n", mote_backend_name(chosen), env);
		else
			printf("auto     picks %s\n", mote_backend_name(chosen));
	}
	return any ? EXIT_OK : EXIT_CREATE;
}

static int cmd_verify(int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "usage: mote verify FILE\n");
		return EXIT_USAGE;
	}
	mote_snapshot *snap;
	int rc = mote_snapshot_open(argv[0], MOTE_SNAPSHOT_NO_CACHE, &snap);
	if (rc)
		return fail(rc == -MOTE_EIO ? EXIT_CREATE : EXIT_CALL, rc, mote_last_error());
	mote_snapshot_free(snap);
	printf("%s: ok (every hash matches)\n", argv[0]);
	return EXIT_OK;
}

static int cmd_bench(int argc, char **argv)
{
	return mote_bench_main(argc, argv);
}

/* ---- mote wasm: WebAssembly modules in Wasm sandboxes (mote/wasm.h) ---- */
static void wasm_usage(FILE *f)
{
	fprintf(f,
		"usage: mote wasm run [OPTIONS] MODULE.wasm|SNAPSHOT --invoke EXPORT [ARGS...]\n"
		"       mote wasm run [OPTIONS] [--env NAME=VALUE]... [--stdin FILE|-]\n"
		"                     [--dir GUEST=HOST]... MODULE.wasm|SNAPSHOT [ARGS...]\n"
		"       mote wasm snapshot [OPTIONS] MODULE.wasm -o FILE\n"
		"       mote wasm exports MODULE.wasm|SNAPSHOT\n"
		"\n"
		"run --invoke calls EXPORT with ARGS parsed by its parameter types and prints\n"
		"each result on a line. run without --invoke runs a WASI command's _start\n"
		"with argv = MODULE ARGS...; the exit status is the module's exit code.\n"
		"--dir lets it read the files under directory HOST, which it sees as\n"
		"GUEST (e.g. --dir /data=./data); read-only, nothing outside HOST.\n"
		"snapshot loads MODULE and saves a snapshot with it instantiated; run and\n"
		"exports accept that file instead of a module (no load at all).\n"
		"OPTIONS are run's (--heap, --stack, --input-size, --output-size, --timeout,\n"
		"--header-only); sizes below the Wasm defaults (256M heap, 16M input) are\n"
		"raised to them. Modules may import only WASI functions here (no host\n"
		"functions are registered).\n");
}

/* A Wasm sandbox with PATH loaded, or started from PATH (a snapshot). */
static int open_wasm_sandbox(const char *path, const mote_config *cfg, mote_sandbox **sb)
{
	int rc;
	*sb = NULL;
	if (is_snapshot_file(path)) {
		mote_snapshot *snap;
		rc = mote_snapshot_open(path, open_flags, &snap);
		if (rc)
			return fail(EXIT_CREATE, rc, mote_last_error());
		rc = mote_wasm_sandbox_from_snapshot(snap, NULL, cfg, sb);
		mote_snapshot_free(snap);
		return rc ? fail(EXIT_CREATE, rc, mote_last_error()) : 0;
	}
	rc = mote_wasm_sandbox_new(cfg, NULL, sb);
	if (rc)
		return fail(EXIT_CREATE, rc, mote_last_error());
	rc = mote_wasm_load_file(*sb, path);
	if (rc) {
		int code = fail(EXIT_CREATE, rc, mote_sandbox_last_error(*sb));
		mote_sandbox_free(*sb);
		*sb = NULL;
		return code;
	}
	return 0;
}

static int wasm_invoke(mote_sandbox *sb, const char *name, int argc, char **argv)
{
	mote_wasm_exports *ex;
	int rc = mote_wasm_exports_get(sb, &ex);
	if (rc)
		return fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
	mote_wasm_export_info fi;
	int code = EXIT_USAGE;
	char detail[512];
	if (mote_wasm_exports_find(ex, name, &fi) != 0 || fi.kind != MOTE_WASM_FUNCTION) {
		snprintf(detail, sizeof(detail), "no exported wasm function '%s' (see mote wasm exports)",
			 name);
		code = fail(EXIT_USAGE, -MOTE_ENOFUNC, detail);
		goto out;
	}
	if (argc > 0 && !strcmp(argv[0], "--")) {
		argc--;
		argv++;
	}
	if ((size_t)argc != fi.nparams) {
		snprintf(detail, sizeof(detail), "%s takes %zu argument%s, %d given", fi.signature,
			 fi.nparams, fi.nparams == 1 ? "" : "s", argc);
		code = fail(EXIT_USAGE, -MOTE_ESIGNATURE, detail);
		goto out;
	}
	mote_value *args = calloc((size_t)argc + 1, sizeof(*args));
	mote_value *res = calloc(fi.nresults + 1, sizeof(*res));
	bool ok = args && res;
	for (int i = 0; ok && i < argc; i++) {
		void *owned = NULL;
		if (fi.params[i] == MOTE_VOID) {
			snprintf(detail, sizeof(detail), "%s: reference parameters cannot be passed",
				 fi.signature);
			code = fail(EXIT_USAGE, -MOTE_ESIGNATURE, detail);
			ok = false;
		} else {
			ok = parse_value(argv[i], fi.params[i], &args[i], &owned) == 0;
		}
	}
	if (ok) {
		size_t n;
		rc = mote_wasm_call(sb, name, args, (size_t)argc, res, fi.nresults, &n);
		if (rc)
			code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
		else {
			for (size_t i = 0; i < n; i++)
				print_value(&res[i]);
			code = EXIT_OK;
		}
	}
	free(args);
	free(res);
out:
	mote_wasm_exports_free(ex);
	return code;
}

static int wasm_cmd_run(int argc, char **argv, mote_config *cfg)
{
	const char *stdin_path = NULL; /* --stdin FILE, "-" for ours */
	const char **envp = calloc((size_t)argc + 1, sizeof(*envp));
	const char **dirs = calloc((size_t)argc + 1, sizeof(*dirs)); /* GUEST=HOST */
	size_t envc = 0, ndirs = 0;
	int code = EXIT_USAGE;
	if (!envp || !dirs) {
		free(envp);
		free(dirs);
		return fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
	}
	while (argc > 0 && !strncmp(argv[0], "--", 2)) {
		if (!strcmp(argv[0], "--env") && argc > 1) {
			envp[envc++] = argv[1];
			argc -= 2;
			argv += 2;
			continue;
		}
		if (!strcmp(argv[0], "--stdin") && argc > 1) {
			stdin_path = argv[1];
			argc -= 2;
			argv += 2;
			continue;
		}
		if (!strcmp(argv[0], "--dir") && argc > 1) {
			const char *eq = strchr(argv[1], '=');
			if (!eq || eq == argv[1] || !eq[1]) {
				fprintf(stderr, "mote wasm run: --dir wants GUEST=HOST, not '%s'\n",
					argv[1]);
				goto out;
			}
			dirs[ndirs++] = argv[1];
			argc -= 2;
			argv += 2;
			continue;
		}
		/* One option at a time, so --env may come between them. */
		int one = !strcmp(argv[0], "--header-only") || !strcmp(argv[0], "--") ? 1 : 2;
		if (one > argc)
			one = argc;
		int left = one;
		char **rest = argv;
		if (parse_config(&left, &rest, cfg))
			goto out;
		argc -= one - left;
		argv += one - left;
		if (!strcmp(argv[-1], "--"))
			break;
	}
	if (argc < 1) {
		wasm_usage(stderr);
		goto out;
	}
	const char *path = argv[0];
	mote_sandbox *sb;
	code = open_wasm_sandbox(path, cfg, &sb);
	if (code)
		goto out;
	if (argc >= 2 && !strcmp(argv[1], "--invoke")) {
		if (argc < 3) {
			fprintf(stderr, "mote wasm run: --invoke needs an EXPORT\n");
			code = EXIT_USAGE;
		} else {
			code = wasm_invoke(sb, argv[2], argc - 3, argv + 3);
		}
	} else {
		int exit_code = 0, rc = 0;
		for (size_t i = 0; !rc && i < ndirs; i++) {
			size_t gl = (size_t)(strchr(dirs[i], '=') - dirs[i]);
			char *guest = strndup(dirs[i], gl);
			rc = guest ? mote_wasm_preopen(sb, guest, dirs[i] + gl + 1) : -MOTE_ENOMEM;
			free(guest);
		}
		if (rc) {
			code = fail(EXIT_USAGE, rc, mote_sandbox_last_error(sb));
			mote_sandbox_free(sb);
			goto out;
		}
		if (stdin_path) {
			size_t len = 0;
			void *data = !strcmp(stdin_path, "-") ? read_stream(stdin, &len)
							      : read_file(stdin_path, &len);
			if (!data) {
				fprintf(stderr, "mote: cannot read %s: %s\n", stdin_path,
					strerror(errno));
				mote_sandbox_free(sb);
				code = EXIT_USAGE;
				goto out;
			}
			rc = mote_wasm_set_stdin(sb, data, len);
			free(data);
		}
		if (!rc)
			rc = mote_wasm_run(sb, (const char *const *)argv, (size_t)argc, envp, envc,
					   &exit_code);
		fflush(stdout);
		if (rc)
			code = fail(rc == -MOTE_ENOFUNC ? EXIT_USAGE : EXIT_CALL, rc,
				    mote_sandbox_last_error(sb));
		else
			code = exit_code & 0xff;
	}
	mote_sandbox_free(sb);
out:
	free(envp);
	free(dirs);
	return code;
}

static int wasm_cmd_snapshot(int argc, char **argv, mote_config *cfg)
{
	const char *out = NULL, *module = NULL;
	while (argc > 0) {
		if (!strcmp(argv[0], "-o") && argc > 1) {
			out = argv[1];
			argc -= 2;
			argv += 2;
		} else if (!strncmp(argv[0], "--", 2)) {
			int one = !strcmp(argv[0], "--header-only") ? 1 : 2, left;
			if (one > argc)
				one = argc;
			left = one;
			char **rest = argv;
			if (parse_config(&left, &rest, cfg))
				return EXIT_USAGE;
			argc -= one - left;
			argv += one - left;
		} else if (!module) {
			module = argv[0];
			argc--;
			argv++;
		} else {
			fprintf(stderr, "mote wasm snapshot: unexpected argument '%s'\n", argv[0]);
			return EXIT_USAGE;
		}
	}
	if (!module || !out) {
		wasm_usage(stderr);
		return EXIT_USAGE;
	}
	mote_sandbox *sb;
	int code = open_wasm_sandbox(module, cfg, &sb);
	if (code)
		return code;
	mote_snapshot *snap = NULL;
	int rc = mote_sandbox_snapshot(sb, &snap);
	if (rc)
		code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
	else if ((rc = mote_snapshot_save(snap, out)) != 0)
		code = fail(EXIT_CREATE, rc, mote_last_error());
	else
		fprintf(stderr, "mote: saved %s\n", out);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	return code;
}

static int wasm_cmd_exports(int argc, char **argv, mote_config *cfg)
{
	if (argc != 1) {
		wasm_usage(stderr);
		return EXIT_USAGE;
	}
	mote_sandbox *sb;
	int code = open_wasm_sandbox(argv[0], cfg, &sb);
	if (code)
		return code;
	mote_wasm_exports *ex;
	int rc = mote_wasm_exports_get(sb, &ex);
	if (rc) {
		code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
	} else {
		static const char *const kinds[] = {"func", "table", "memory", "global"};
		for (size_t i = 0; i < mote_wasm_exports_count(ex); i++) {
			mote_wasm_export_info fi;
			mote_wasm_exports_at(ex, i, &fi);
			printf("%-6s %s\n", kinds[fi.kind], fi.signature);
		}
		mote_wasm_exports_free(ex);
	}
	mote_sandbox_free(sb);
	return code;
}

static int cmd_wasm(int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
	    !strcmp(argv[0], "help")) {
		wasm_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? EXIT_USAGE : EXIT_OK;
	}
	mote_config *cfg;
	if (mote_config_new(&cfg))
		return fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
	mote_config_set_output(cfg, cli_output, NULL);
	int code;
	if (!strcmp(argv[0], "run"))
		code = wasm_cmd_run(argc - 1, argv + 1, cfg);
	else if (!strcmp(argv[0], "snapshot"))
		code = wasm_cmd_snapshot(argc - 1, argv + 1, cfg);
	else if (!strcmp(argv[0], "exports"))
		code = wasm_cmd_exports(argc - 1, argv + 1, cfg);
	else {
		fprintf(stderr, "mote wasm: unknown subcommand '%s'\n", argv[0]);
		wasm_usage(stderr);
		code = EXIT_USAGE;
	}
	mote_config_free(cfg);
	return code;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("mote %s (guest ABI %u)\n", mote_version(), MOTE_ABI_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].run(argc - 2, argv + 2);
	fprintf(stderr, "mote: unknown command '%s' (see mote --help)\n", cmd);
	return EXIT_USAGE;
}
