/* mote wasm: WebAssembly modules in Wasm sandboxes (mote/wasm.h): run a
 * module's export or its WASI _start, snapshot a loaded module, list its
 * exports. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mote.h"
#include "mote/wasm.h"
#include "tools/cli.h"

/* What one of our stdio descriptors is, as a WASI module should see it. */
static mote_wasm_stdio_type host_stdio_type(int fd)
{
	struct stat st;
	if (isatty(fd))
		return MOTE_WASM_STDIO_TERMINAL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return MOTE_WASM_STDIO_FILE;
	return MOTE_WASM_STDIO_UNKNOWN;
}

static void wasm_usage(FILE *f)
{
	fprintf(f, "usage: mote wasm run [OPTIONS] MODULE.wasm|SNAPSHOT --invoke EXPORT [ARGS...]\n"
	           "       mote wasm run [OPTIONS] [--env NAME=VALUE]... [--stdin FILE|-]\n"
	           "                     [--dir GUEST=HOST[:ro|:rw]]...\n"
	           "                     MODULE.wasm|SNAPSHOT [ARGS...]\n"
	           "       mote wasm snapshot [OPTIONS] MODULE.wasm -o FILE\n"
	           "       mote wasm exports MODULE.wasm|SNAPSHOT\n"
	           "       mote wasm compile [--no-cache] MODULE.wasm -o MODULE.elf\n"
	           "\n"
	           "Everywhere a MODULE.wasm is taken, a MODULE.elf from compile is too: the\n"
	           "module compiled ahead of time to native code (C through gcc -O2), with\n"
	           "the same results and traps. compile caches what it builds (see\n"
	           "docs/wasm.md); --no-cache neither uses nor fills the cache.\n"
	           "\n"
	           "run --invoke calls EXPORT with ARGS parsed by its parameter types and prints\n"
	           "each result on a line. run without --invoke runs a WASI command's _start\n"
	           "with argv = MODULE ARGS...; the exit status is the module's exit code.\n"
	           "--dir lets it read the files under directory HOST, which it sees as\n"
	           "GUEST (e.g. --dir /data=./data); read-only, nothing outside HOST.\n"
	           "HOST:rw lets it also write there (64 MiB, 1024 new files at most);\n"
	           "HOST:ro is the default. Only a final \":rw\" or \":ro\" is taken so.\n"
	           "snapshot loads MODULE and saves a snapshot with it instantiated; run and\n"
	           "exports accept that file instead of a module (no load at all).\n"
	           "OPTIONS are run's (--heap, --stack, --input-size, --output-size, --timeout,\n"
	           "--header-only); sizes below the Wasm defaults (256M heap, 16M input) are\n"
	           "raised to them. Modules may import only WASI functions here (no host\n"
	           "functions are registered).\n");
}

static bool is_elf_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char m[4] = {0};
	if (!f)
		return false;
	size_t n = fread(m, 1, 4, f);
	fclose(f);
	return n == 4 && !memcmp(m,
	                         "\x7f"
	                         "ELF",
	                         4);
}

/* A Wasm sandbox with PATH loaded, or started from PATH (a snapshot; `snap`
 * when the caller has opened it already). */
static int open_wasm_sandbox(const char *path, const mote_snapshot *snap, const mote_config *cfg,
                             mote_sandbox **sb)
{
	int rc;
	*sb = NULL;
	if (snap || is_snapshot_file(path)) {
		mote_snapshot *opened = NULL;
		if (!snap) {
			rc = mote_snapshot_open(path, open_flags, &opened);
			if (rc)
				return fail(EXIT_CREATE, rc, mote_last_error());
			snap = opened;
		}
		rc = mote_wasm_sandbox_from_snapshot(snap, NULL, cfg, sb);
		mote_snapshot_free(opened);
		return rc ? fail(EXIT_CREATE, rc, mote_last_error()) : 0;
	}
	if (is_elf_file(path)) { /* compiled ahead of time: the module is in it */
		rc = mote_wasm_sandbox_new_compiled(path, cfg, NULL, sb);
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
	if (mote_wasm_export_find(ex, name, &fi) != 0 || fi.kind != MOTE_WASM_FUNCTION) {
		snprintf(detail, sizeof(detail),
		         "no exported wasm function '%s' (see mote wasm exports)", name);
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
			snprintf(detail, sizeof(detail),
			         "%s: reference parameters cannot be passed", fi.signature);
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

int wasm_run(int argc, char **argv, mote_config *cfg, const mote_snapshot *snap)
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
	code = open_wasm_sandbox(path, snap, cfg, &sb);
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
			/* GUEST=HOST, GUEST=HOST:ro or GUEST=HOST:rw (writable) */
			size_t gl = (size_t)(strchr(dirs[i], '=') - dirs[i]);
			const char *host = dirs[i] + gl + 1;
			size_t hl = strlen(host);
			unsigned flags = 0;
			const char *suffix = hl > 3 ? host + hl - 3 : "";
			if (!strcmp(suffix, ":rw") || !strcmp(suffix, ":ro")) {
				flags = host[hl - 1] == 'w' ? MOTE_WASM_PREOPEN_WRITABLE : 0;
				hl -= 3;
			}
			char *guest = strndup(dirs[i], gl), *hdir = strndup(host, hl);
			rc = guest && hdir ? mote_wasm_preopen_flags(sb, guest, hdir, flags)
			                   : -MOTE_ENOMEM;
			free(guest);
			free(hdir);
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
		/* The module sees its stdio as what ours is (--stdin FILE: a
		 * file; no --stdin: empty, so unknown). */
		if (!rc && stdin_path)
			rc = mote_wasm_set_stdio_type(sb, 0, strcmp(stdin_path, "-")
			                                         ? MOTE_WASM_STDIO_FILE
			                                         : host_stdio_type(0));
		for (int fd = 1; !rc && fd <= 2; fd++)
			rc = mote_wasm_set_stdio_type(sb, fd, host_stdio_type(fd));
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
	int code = open_wasm_sandbox(module, NULL, cfg, &sb);
	if (code)
		return code;
	mote_snapshot *snap = NULL;
	int rc = mote_sandbox_snapshot(sb, &snap);
	if (rc)
		code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
	else if ((rc = mote_snapshot_save(snap, out, 0)) != 0)
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
	int code = open_wasm_sandbox(argv[0], NULL, cfg, &sb);
	if (code)
		return code;
	mote_wasm_exports *ex;
	int rc = mote_wasm_exports_get(sb, &ex);
	if (rc) {
		code = fail(EXIT_CALL, rc, mote_sandbox_last_error(sb));
	} else {
		static const char *const kinds[] = {"func", "table", "memory", "global"};
		for (size_t i = 0; i < mote_wasm_export_count(ex); i++) {
			mote_wasm_export_info fi;
			mote_wasm_export(ex, i, &fi);
			printf("%-6s %s\n", kinds[fi.kind], fi.signature);
		}
		mote_wasm_exports_free(ex);
	}
	mote_sandbox_free(sb);
	return code;
}

static int wasm_cmd_compile(int argc, char **argv)
{
	const char *in = NULL, *out = NULL;
	unsigned flags = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--no-cache"))
			flags |= MOTE_WASM_COMPILE_NO_CACHE;
		else if (argv[i][0] != '-' && !in)
			in = argv[i];
		else {
			fprintf(stderr, "mote wasm compile: unexpected argument '%s'\n", argv[i]);
			wasm_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!in || !out) {
		fprintf(stderr, "mote wasm compile: needs MODULE.wasm and -o MODULE.elf\n");
		return EXIT_USAGE;
	}
	int rc = mote_wasm_compile_file(in, out, flags);
	return rc ? fail(EXIT_CREATE, rc, mote_last_error()) : EXIT_OK;
}

int cmd_wasm(int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
	    !strcmp(argv[0], "help")) {
		wasm_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(argv[0], "compile"))
		return wasm_cmd_compile(argc - 1, argv + 1);
	mote_config *cfg;
	if (mote_config_new(&cfg))
		return fail(EXIT_CREATE, -MOTE_ENOMEM, NULL);
	mote_config_set_output_streams(cfg, cli_output, NULL);
	int code;
	if (!strcmp(argv[0], "run"))
		code = wasm_run(argc - 1, argv + 1, cfg, NULL);
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
