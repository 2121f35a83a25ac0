/* Runtime functions the wasm engine needs from its environment. On the host
 * they come from libc; inside a guest the guest SDK provides them. The engine
 * includes nothing else besides the freestanding C headers. */
#ifndef MOTE_WASM_RT_H
#define MOTE_WASM_RT_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void free(void *p);

#endif
