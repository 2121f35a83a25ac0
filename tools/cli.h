/* What the mote subcommands share (tools/cli.c): exit codes, error
 * reporting, typed values from and to the command line, the options every
 * sandbox-starting command takes. */
#ifndef MOTE_TOOLS_CLI_H
#define MOTE_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mote.h"

enum {
	EXIT_OK = 0,
	EXIT_CALL = 1,   /* the guest call failed (fault, timeout, guest error) */
	EXIT_USAGE = 2,  /* bad command line or arguments */
	EXIT_CREATE = 3, /* the sandbox could not be created (bad file, no KVM) */
};

/* Print "mote: MOTE_Exxx: detail" (or the code's text) and return `code`. */
int fail(int code, int err, const char *detail);
/* "64K", "8M", "1G", or plain bytes. 0 or -1. */
int parse_size(const char *s, uint64_t *out);
/* A whole file or stream, malloc'ed (NULL on failure, errno set). */
void *read_file(const char *path, size_t *len);
void *read_stream(FILE *f, size_t *len);
/* A value of `type` from its command-line text (docs/cli.md); *owned is
 * what to free after the call (bytes and strings). 0, or -1 after saying
 * why. */
int parse_value(const char *s, mote_type type, mote_value *v, void **owned);
/* A result, the way parse_value reads it, and a newline. */
void print_value(const mote_value *v);
/* Guest prints to stdout, logs to stderr. */
void cli_output(void *user, mote_log_level level, const char *text, size_t len);

/* The options shared by commands that start sandboxes (--heap, --stack,
 * --input-size, --output-size, --timeout, --backend, --header-only,
 * --map, --core-dump, --gdb); consumes them from argv. 0 or -1 (after saying why). */
int parse_config(int *argc, char ***argv, mote_config *cfg);
/* mote_snapshot_open flags the options asked for (--header-only). */
extern unsigned open_flags;
/* --gdb PORT (0 without): say where gdb should connect before a call. */
extern int gdb_port;
/* Map the --map files into a started sandbox. 0 or an exit code. */
int apply_maps(mote_sandbox *sb);

/* A snapshot file (by its magic). */
bool is_snapshot_file(const char *path);

/* A JSON string literal of `s` on stdout. */
void json_string(const char *s);

/* mote wasm (tools/mote_wasm.c); `mote run` hands the Wasm snapshots it
 * has opened to wasm_run (`snap`: argv's file, opened; or NULL). */
int cmd_wasm(int argc, char **argv);
int wasm_run(int argc, char **argv, mote_config *cfg, const mote_snapshot *snap);

#endif
