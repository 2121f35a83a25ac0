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
#include "tools/cli.h"

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
static int cmd_doctor(int argc, char **argv);

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
		"  --gdb PORT         stop before the call's first instruction and wait for\n"
		"                     gdb on 127.0.0.1:PORT (gdb GUEST.elf -ex 'target remote\n"
		"                     :PORT')\n"
		"  --core-dump DIR    when the call faults, aborts or times out, write an ELF\n"
		"                     core file into DIR (gdb GUEST.elf DIR/core.mote.PID.N)\n"
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

/* A sandbox from a guest ELF or a snapshot file (`snap`, when the caller
 * has opened it already). Prints the error. */
static int open_sandbox(const char *path, const mote_snapshot *snap, const mote_config *cfg,
			mote_sandbox **sb)
{
	if (!snap && !is_snapshot_file(path)) {
		int rc = mote_sandbox_new(path, cfg, NULL, sb);
		return rc ? fail(EXIT_CREATE, rc, mote_last_error()) : 0;
	}
	mote_snapshot *opened = NULL;
	if (!snap) {
		int rc = mote_snapshot_open(path, open_flags, &opened);
		if (rc)
			return fail(EXIT_CREATE, rc, mote_last_error());
		snap = opened;
	}
	int rc = mote_sandbox_from_snapshot(snap, NULL, cfg, sb);
	mote_snapshot_free(opened);
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
	/* A snapshot file is opened, parsed and verified once, here. */
	mote_snapshot *snap = NULL;
	if (is_snapshot_file(argv[0])) {
		int rc = mote_snapshot_open(argv[0], open_flags, &snap);
		if (rc) {
			code = fail(EXIT_CREATE, rc, mote_last_error());
			goto out_cfg;
		}
	}
	if (snap && mote_wasm_is_snapshot(snap)) {
		/* A Wasm sandbox's snapshot: FUNCTION is an export of its module. */
		char **wargv = calloc((size_t)argc + 2, sizeof(*wargv));
		if (!wargv) {
			code = fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
			goto out_snap;
		}
		wargv[0] = argv[0];
		wargv[1] = (char *)"--invoke";
		for (int i = 1; i < argc; i++)
			wargv[i + 1] = argv[i];
		code = wasm_run(argc + 1, wargv, cfg, snap);
		free(wargv);
		goto out_snap;
	}
	mote_sandbox *sb;
	code = open_sandbox(argv[0], snap, cfg, &sb);
	if (code)
		goto out_snap;
	code = apply_maps(sb);
	if (!code && gdb_port)
		fprintf(stderr, "mote: %s waits for gdb: target remote 127.0.0.1:%d\n", argv[1],
			gdb_port);
	if (!code)
		code = call_and_print(sb, argv[1], (size_t)argc - 2, argv + 2, argv[0], true);
	mote_sandbox_free(sb);
out_snap:
	mote_snapshot_free(snap);
out_cfg:
	mote_config_free(cfg);
	return code;
}


/* The i-th element of a JSON array of functions. */
static void json_function(size_t i, const mote_function_info *fi)
{
	printf("%s{\"name\": ", i ? ", " : "");
	json_string(fi->name);
	printf(", \"result\": \"%s\", \"args\": [", mote_type_name(fi->ret));
	for (size_t a = 0; a < fi->nargs; a++)
		printf("%s\"%s\"", a ? ", " : "", mote_type_name(fi->args[a]));
	printf("]}");
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
	mote_function_info fi;
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
		       "\"parent_hash\": \"%s\", \"mapped_files\": %zu, ",
		       when, in.file_size, in.mem_size, in.image_size, in.heap_size, in.stack_size,
		       in.input_size, in.output_size, in.blob_size, in.nregions, in.header_hash,
		       in.blob_hash, in.parent_hash, in.nmappings);
		printf("\"guest_path\": ");
		if (in.guest_path)
			json_string(in.guest_path);
		else
			printf("null");
		printf(", \"guest_hash\": \"%s\", \"host_functions\": [", in.guest_hash);
		for (size_t i = 0; i < mote_snapshot_info_host_function_count(&in); i++)
			if (mote_snapshot_info_host_function(&in, i, &fi) == 0)
				json_function(i, &fi);
		printf("], \"guest_functions\": [");
		for (size_t i = 0; i < mote_snapshot_info_function_count(&in); i++)
			if (mote_snapshot_info_function(&in, i, &fi) == 0)
				json_function(i, &fi);
		printf("]}\n");
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
		if (in.guest_path)
			printf("guest binary:   %s (SHA-256 %.16s...)\n", in.guest_path, in.guest_hash);
		size_t n = mote_snapshot_info_host_function_count(&in);
		printf("host functions: %zu required\n", n);
		for (size_t i = 0; i < n; i++)
			if (mote_snapshot_info_host_function(&in, i, &fi) == 0)
				printf("  %s\n", sig_text(&fi, sig, sizeof(sig)));
		n = mote_snapshot_info_function_count(&in);
		printf("functions:      %zu\n", n);
		for (size_t i = 0; i < n; i++)
			if (mote_snapshot_info_function(&in, i, &fi) == 0)
				printf("  %s\n", sig_text(&fi, sig, sizeof(sig)));
	}
	mote_snapshot_info_free(&in);
	return EXIT_OK;
}

/* From the file alone (mote_guest_info_read): no sandbox, no /dev/kvm. */
static int inspect_elf(const char *path, bool json)
{
	mote_guest_info in;
	mote_function_info fi;
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
		for (size_t i = 0; i < mote_guest_info_function_count(&in); i++)
			if (mote_guest_info_function(&in, i, &fi) == 0)
				json_function(i, &fi);
		printf("]}\n");
	} else {
		printf("guest:        %s (ELF)\n", path);
		printf("ABI version:  %u\n", in.abi_version);
		printf("image:        %" PRIu64 " bytes\n", in.image_size);
		printf("memory:       %" PRIu64 " bytes (heap %" PRIu64 ", stack %" PRIu64
		       ", input %" PRIu64 ", output %" PRIu64 ") with default settings\n",
		       in.mem_size, in.heap_size, in.stack_size, in.input_size, in.output_size);
		printf("functions:    %zu\n", mote_guest_info_function_count(&in));
		for (size_t i = 0; i < mote_guest_info_function_count(&in); i++) {
			char sig[256];
			if (mote_guest_info_function(&in, i, &fi) == 0)
				printf("  %s\n", sig_text(&fi, sig, sizeof(sig)));
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
	code = open_sandbox(guest, NULL, cfg, &sb);
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
	rc = mote_snapshot_save(snap, out, 0);
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
