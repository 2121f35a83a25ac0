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
		return -MOTE_EINVAL;
	*out = mote_malloc(sizeof(**out));
	if (!*out)
		return -MOTE_ENOMEM;
	mote_config_defaults(*out);
	return 0;
}

void mote_config_free(mote_config *config)
{
	mote_free(config);
}

static int set_size(uint64_t *field, uint64_t bytes, uint64_t min, uint64_t max)
{
	if (bytes < min || bytes > max)
		return -MOTE_EINVAL;
	*field = (bytes + MOTE_PAGE_SIZE - 1) & ~(MOTE_PAGE_SIZE - 1);
	return 0;
}

int mote_config_set_heap_size(mote_config *c, uint64_t bytes)
{
	return c ? set_size(&c->heap_size, bytes, 128 * KIB, 16 * GIB) : -MOTE_EINVAL;
}

int mote_config_set_stack_size(mote_config *c, uint64_t bytes)
{
	return c ? set_size(&c->stack_size, bytes, 16 * KIB, 64 * MIB) : -MOTE_EINVAL;
}

int mote_config_set_input_size(mote_config *c, uint64_t bytes)
{
	return c ? set_size(&c->input_size, bytes, 4 * KIB, 256 * MIB) : -MOTE_EINVAL;
}

int mote_config_set_output_size(mote_config *c, uint64_t bytes)
{
	return c ? set_size(&c->output_size, bytes, 4 * KIB, 256 * MIB) : -MOTE_EINVAL;
}

int mote_config_set_timeout_us(mote_config *c, uint64_t us)
{
	if (!c)
		return -MOTE_EINVAL;
	c->timeout_us = us;
	return 0;
}

int mote_config_set_huge_pages(mote_config *c, bool enable)
{
	if (!c)
		return -MOTE_EINVAL;
	c->huge_pages = enable;
	return 0;
}

int mote_config_set_output(mote_config *c, mote_output_fn fn, void *user)
{
	if (!c)
		return -MOTE_EINVAL;
	c->output = fn;
	c->output_user = user;
	return 0;
}

int mote_host_functions_new(mote_host_functions **out)
{
	if (!out)
		return -MOTE_EINVAL;
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
	if (!fns || !name || !fn || !valid_name(name) || nargs > MOTE_MAX_ARGS ||
	    (nargs && !arg_types) || (unsigned)ret >= MOTE_TYPE_COUNT_)
		return -MOTE_EINVAL;
	for (size_t i = 0; i < nargs; i++)
		if (arg_types[i] == MOTE_VOID || (unsigned)arg_types[i] >= MOTE_TYPE_COUNT_)
			return -MOTE_EINVAL;
	if (mote_host_functions_find(fns, name, strlen(name)))
		return -MOTE_EEXIST;
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
	if (!c || (unsigned)backend > MOTE_BACKEND_PROCESS)
		return -MOTE_EINVAL;
	c->backend = backend;
	return 0;
}
