/* libFuzzer target for the ahead-of-time translator (src/wasm/aot.c): every
 * module the validator accepts must translate without a crash or sanitizer
 * report, into C whose blocks and strings are balanced; everything else must
 * be refused with the validator's error. With FUZZ_AOT_CC=1 in the
 * environment each translation is also compiled (cc -fsyntax-only), slowly,
 * to catch C that the compiler would reject.
 *
 *   make build-fuzz/fuzz_wasm_aot
 *   build-fuzz/fuzz_wasm_aot CORPUS_DIR fuzz/seeds/fuzz_wasm build-fuzz/corpus/fuzz_wasm
 * The Wasm fuzzer's corpus (valid modules found by coverage) and the spec
 * tests' modules make good seeds: random bytes rarely validate.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Braces and parentheses balance outside string literals and comments. */
static int balanced(const char *c, size_t n)
{
	long brace = 0, paren = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i] == '"') {
			for (i++; i < n && c[i] != '"'; i++)
				if (c[i] == '\\')
					i++;
			continue;
		}
		if (c[i] == '/' && i + 1 < n && c[i + 1] == '*') {
			const char *e = strstr(c + i + 2, "*/");
			if (!e)
				return 0;
			i = (size_t)(e - c) + 1;
			continue;
		}
		brace += c[i] == '{' ? 1 : c[i] == '}' ? -1 : 0;
		paren += c[i] == '(' ? 1 : c[i] == ')' ? -1 : 0;
		if (brace < 0 || paren < 0)
			return 0;
	}
	return brace == 0 && paren == 0;
}

static void compile_check(const char *c, size_t n)
{
	char path[] = "/tmp/fuzz-aot-XXXXXX.c";
	int fd = mkstemps(path, 2);
	if (fd < 0)
		return;
	if (write(fd, c, n) != (ssize_t)n) {
		close(fd);
		unlink(path);
		return;
	}
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "cc " MW_AOT_CFLAGS " -fsyntax-only -I" FUZZ_AOT_INCLUDE " %s",
	         path);
	int rc = system(cmd);
	unlink(path);
	if (rc != 0)
		abort(); /* the translator wrote C the compiler rejects */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int cc = -1;
	if (cc < 0)
		cc = getenv("FUZZ_AOT_CC") && !strcmp(getenv("FUZZ_AOT_CC"), "1");
	mw_limits lim;
	mw_limits_default(&lim);
	mw_module *m;
	mw_error verr, terr;
	memset(&verr, 0, sizeof verr);
	memset(&terr, 0, sizeof terr);
	int valid = mw_module_load(data, size, &lim, &m, &verr) == 0;
	if (valid)
		mw_module_free(m);
	char *c = NULL;
	size_t n = 0;
	mw_aot_options opt = {.prefix = "f_", .symbol = "f_module"};
	int rc = mw_aot_translate(data, size, &opt, &c, &n, &terr);
	if (valid != (rc == 0) && terr.code != MW_ERR_NOMEM)
		abort(); /* the translator and the validator disagree */
	if (!valid && strcmp(verr.msg, terr.msg) != 0)
		abort(); /* refused, but not with the validator's message */
	if (rc == 0) {
		if (!c || strlen(c) != n || !balanced(c, n))
			abort();
		if (cc)
			compile_check(c, n);
	}
	free(c);
	return 0;
}
