/* Sandbox configuration and host-function sets. */
#include <string.h>

#include "host/internal.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

void mote_config_defaults(struct mote_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->heap_size = 128 * KIB;
	cfg->stack_size = 64 * KIB;
	cfg->input_size = 64 * KIB;
	cfg->output_size = 64 * KIB;
	cfg->log_size = 16 * KIB;
}

int mote_config_new(mote_config **out)
{
	if (!out)
		return mote_fail(-MOTE_EINVAL, "mote_config_new: no out");
	*out = mote_malloc(sizeof(**out));
	if (!*out)
		return -MOTE_ENOMEM;
	mote_config_defaults(*out);
	return 0;
}

void mote_config_free(mote_config *config)
{
	if (config)
		mote_free(config->core_dump_dir);
	mote_free(config);
}

int mote_config_set_gdb_port(mote_config *c, int port)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_gdb_port: no config");
	if (port < 0 || port > 65535)
		return mote_fail(
		    -MOTE_EINVAL,
		    "mote_config_set_gdb_port: port %d out of range (1..65535, 0 for none)", port);
	c->gdb_port = port;
	return 0;
}

int mote_config_set_core_dump(mote_config *c, const char *dir)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_core_dump: no config");
	char *copy = NULL;
	if (dir) {
		if (!dir[0])
			return mote_fail(-MOTE_EINVAL,
			                 "mote_config_set_core_dump: empty directory");
		copy = mote_strdup(dir);
		if (!copy)
			return mote_fail(-MOTE_ENOMEM, "out of memory");
	}
	mote_free(c->core_dump_dir);
	c->core_dump_dir = copy;
	return 0;
}

static int set_size(mote_config *c, uint64_t *field, const char *what, uint64_t bytes, uint64_t min,
                    uint64_t max)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "setting the %s size: no config", what);
	if (bytes < min || bytes > max)
		return mote_fail(-MOTE_EINVAL, "%s size %llu out of range (%llu..%llu bytes)", what,
		                 (unsigned long long)bytes, (unsigned long long)min,
		                 (unsigned long long)max);
	*field = (bytes + MOTE_PAGE_SIZE - 1) & ~(MOTE_PAGE_SIZE - 1);
	return 0;
}

int mote_config_set_heap_size(mote_config *c, uint64_t bytes)
{
	return set_size(c, c ? &c->heap_size : NULL, "heap", bytes, 128 * KIB, 16 * GIB);
}

int mote_config_set_stack_size(mote_config *c, uint64_t bytes)
{
	return set_size(c, c ? &c->stack_size : NULL, "stack", bytes, 16 * KIB, 64 * MIB);
}

int mote_config_set_input_size(mote_config *c, uint64_t bytes)
{
	return set_size(c, c ? &c->input_size : NULL, "input", bytes, 4 * KIB, 256 * MIB);
}

int mote_config_set_output_size(mote_config *c, uint64_t bytes)
{
	return set_size(c, c ? &c->output_size : NULL, "output", bytes, 4 * KIB, 256 * MIB);
}

int mote_config_set_timeout_us(mote_config *c, uint64_t us)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_timeout_us: no config");
	c->timeout_us = us;
	return 0;
}

int mote_config_set_huge_pages(mote_config *c, bool enable)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_huge_pages: no config");
	c->huge_pages = enable;
	return 0;
}

int mote_config_set_output(mote_config *c, mote_output_fn fn, void *user)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_output: no config");
	c->output = fn;
	c->output_user = user;
	c->output_streams = false;
	return 0;
}

int mote_config_set_output_streams(mote_config *c, mote_output_fn fn, void *user)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_output_streams: no config");
	c->output = fn;
	c->output_user = user;
	c->output_streams = fn != NULL;
	return 0;
}

int mote_host_functions_new(mote_host_functions **out)
{
	if (!out)
		return mote_fail(-MOTE_EINVAL, "mote_host_functions_new: no out");
	*out = mote_calloc(1, sizeof(**out));
	return *out ? 0 : -MOTE_ENOMEM;
}

void mote_host_functions_clear(mote_host_functions *fns)
{
	for (size_t i = 0; i < fns->n; i++)
		mote_free(fns->v[i].sig.name);
	mote_free(fns->v);
	fns->v = NULL;
	fns->n = fns->cap = 0;
}

void mote_host_functions_free(mote_host_functions *fns)
{
	if (!fns)
		return;
	mote_host_functions_clear(fns);
	mote_free(fns);
}

const struct mote_host_fn_entry *mote_host_functions_find(const mote_host_functions *fns,
							  const char *name, size_t len)
{
	if (!fns)
		return NULL;
	for (size_t i = 0; i < fns->n; i++)
		if (strlen(fns->v[i].sig.name) == len && memcmp(fns->v[i].sig.name, name, len) == 0)
			return &fns->v[i];
	return NULL;
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > MOTE_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return false;
	return true;
}

int mote_host_functions_add(mote_host_functions *fns, const char *name, mote_type ret,
			    const mote_type *arg_types, size_t nargs, mote_host_fn fn, void *user)
{
	if (!fns)
		return mote_fail(-MOTE_EINVAL, "mote_host_functions_add: no function set");
	if (!name)
		return mote_fail(-MOTE_EINVAL, "mote_host_functions_add: no name");
	if (!valid_name(name))
		return mote_fail(-MOTE_EINVAL,
		                 "host function '%.64s': names are 1..%d bytes, no spaces or "
		                 "control characters",
		                 name, MOTE_MAX_NAME);
	if (!fn)
		return mote_fail(-MOTE_EINVAL, "host function '%s': no callback", name);
	if (nargs > MOTE_MAX_ARGS || (nargs && !arg_types))
		return mote_fail(-MOTE_EINVAL, "host function '%s': %zu arguments (at most %d)%s",
		                 name, nargs, MOTE_MAX_ARGS,
		                 nargs && !arg_types ? ", no types" : "");
	if ((unsigned)ret >= MOTE_TYPE_COUNT_)
		return mote_fail(-MOTE_EINVAL, "host function '%s': result type %d invalid", name,
		                 (int)ret);
	for (size_t i = 0; i < nargs; i++)
		if (arg_types[i] == MOTE_VOID || (unsigned)arg_types[i] >= MOTE_TYPE_COUNT_)
			return mote_fail(-MOTE_EINVAL,
			                 "host function '%s': argument %zu type %d invalid", name,
			                 i, (int)arg_types[i]);
	if (mote_host_functions_find(fns, name, strlen(name)))
		return mote_fail(-MOTE_EEXIST, "host function '%s' added twice", name);
	if (fns->n == fns->cap) {
		size_t cap = fns->cap ? fns->cap * 2 : 8;
		void *v = mote_realloc(fns->v, cap * sizeof(fns->v[0]));
		if (!v)
			return -MOTE_ENOMEM;
		fns->v = v;
		fns->cap = cap;
	}
	struct mote_host_fn_entry *e = &fns->v[fns->n];
	memset(e, 0, sizeof(*e));
	e->sig.name = mote_strdup(name);
	if (!e->sig.name)
		return -MOTE_ENOMEM;
	e->sig.ret = ret;
	e->sig.nargs = (uint8_t)nargs;
	for (size_t i = 0; i < nargs; i++)
		e->sig.args[i] = arg_types[i];
	e->fn = fn;
	e->user = user;
	fns->n++;
	return 0;
}

int mote_host_functions_copy(const mote_host_functions *src, mote_host_functions *dst)
{
	memset(dst, 0, sizeof(*dst));
	if (!src || !src->n)
		return 0;
	dst->v = mote_calloc(src->n, sizeof(dst->v[0]));
	if (!dst->v)
		return -MOTE_ENOMEM;
	dst->cap = src->n;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].sig.name = mote_strdup(src->v[i].sig.name);
		if (!dst->v[i].sig.name) {
			mote_host_functions_clear(dst);
			return -MOTE_ENOMEM;
		}
		dst->n++;
	}
	return 0;
}

int mote_config_set_backend(mote_config *c, mote_backend backend)
{
	if (!c)
		return mote_fail(-MOTE_EINVAL, "mote_config_set_backend: no config");
	if ((unsigned)backend > MOTE_BACKEND_PROCESS)
		return mote_fail(-MOTE_EINVAL, "unknown backend %d", (int)backend);
	c->backend = backend;
	return 0;
}
