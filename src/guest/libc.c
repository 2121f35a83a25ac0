/* The C library subset guests get: memory and string functions and a small
 * vsnprintf. memcpy/memset use `rep movsb/stosb` (fast with ERMS, and the
 * compiler cannot turn them back into calls to themselves). */
#include <stdarg.h>

#include "mote/guest.h"

__attribute__((section(".text.mote_hot"))) void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	d += n - 1;
	s += n - 1;
	__asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	const char *p = s;
	while (*p)
		p++;
	return (size_t)(p - s);
}

__attribute__((section(".text.mote_hot"))) size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

char *strcpy(char *dst, const char *src)
{
	char *d = dst;
	while ((*d++ = *src++))
		;
	return dst;
}

char *strchr(const char *s, int c)
{
	for (;; s++) {
		if (*s == (char)c)
			return (char *)s;
		if (!*s)
			return 0;
	}
}

/* ---- vsnprintf: %d %i %u %x %X %p %s %c %f %%, flags - 0, width,
 * precision, length h hh l ll z j t. ---- */
struct out {
	char *buf;
	size_t size, len;
};

static void emit(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void emit_padded(struct out *o, const char *s, size_t n, int width, bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;
	if (!left)
		while (fill-- > 0)
			emit(o, pad);
	for (size_t i = 0; i < n; i++)
		emit(o, s[i]);
	if (left)
		while (fill-- > 0)
			emit(o, ' ');
}

static size_t utoa(char *end, unsigned long long v, unsigned base, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t n = 0;
	do {
		*--end = digits[v % base];
		v /= base;
		n++;
	} while (v);
	return n;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			emit(&o, *p);
			continue;
		}
		p++;
		bool left = false, zero = false;
		for (;; p++) {
			if (*p == '-')
				left = true;
			else if (*p == '0')
				zero = true;
			else
				break;
		}
		int width = 0, prec = -1;
		if (*p == '*') {
			width = va_arg(ap, int);
			p++;
		} else
			while (*p >= '0' && *p <= '9')
				width = width * 10 + (*p++ - '0');
		if (*p == '.') {
			p++;
			prec = 0;
			if (*p == '*') {
				prec = va_arg(ap, int);
				p++;
			} else
				while (*p >= '0' && *p <= '9')
					prec = prec * 10 + (*p++ - '0');
		}
		int lng = 0;
		while (*p == 'l' || *p == 'h' || *p == 'z' || *p == 'j' || *p == 't') {
			if (*p == 'l' || *p == 'z' || *p == 'j' || *p == 't')
				lng++;
			p++;
		}
		char tmp[72];
		char *end = tmp + sizeof(tmp);
		switch (*p) {
		case 'd':
		case 'i': {
			long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
			unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
			size_t n = utoa(end, u, 10, false);
			if (v < 0) {
				if (zero && !left) {
					emit(&o, '-');
					width--;
				} else {
					*(end - n - 1) = '-';
					n++;
				}
			}
			emit_padded(&o, end - n, n, width, left, zero ? '0' : ' ');
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			unsigned long long v = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
			size_t n = utoa(end, v, *p == 'u' ? 10 : 16, *p == 'X');
			emit_padded(&o, end - n, n, width, left, zero ? '0' : ' ');
			break;
		}
		case 'p': {
			uintptr_t v = (uintptr_t)va_arg(ap, void *);
			size_t n = utoa(end, v, 16, false);
			*(end - n - 1) = 'x';
			*(end - n - 2) = '0';
			emit_padded(&o, end - n - 2, n + 2, width, left, ' ');
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			size_t n = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
			emit_padded(&o, s, n, width, left, ' ');
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			emit_padded(&o, &c, 1, width, left, ' ');
			break;
		}
		case 'f': {
			double v = va_arg(ap, double);
			if (prec < 0)
				prec = 6;
			if (prec > 17)
				prec = 17;
			char *q = tmp;
			if (v != v) {
				emit_padded(&o, "nan", 3, width, left, ' ');
				break;
			}
			if (v < 0) {
				*q++ = '-';
				v = -v;
			}
			if (v > 1e18) {
				emit_padded(&o, v == v + 1 ? "inf" : "big", 3, width, left, ' ');
				break;
			}
			double scale = 1;
			for (int i = 0; i < prec; i++)
				scale *= 10;
			unsigned long long whole = (unsigned long long)v;
			unsigned long long frac =
				(unsigned long long)((v - (double)whole) * scale + 0.5);
			if ((double)frac >= scale) {
				whole++;
				frac = 0;
			}
			char num[24];
			size_t n = utoa(num + sizeof(num), whole, 10, false);
			memcpy(q, num + sizeof(num) - n, n);
			q += n;
			if (prec > 0) {
				*q++ = '.';
				for (int i = prec - 1; i >= 0; i--) {
					q[i] = (char)('0' + frac % 10);
					frac /= 10;
				}
				q += prec;
			}
			emit_padded(&o, tmp, (size_t)(q - tmp), width, left, zero ? '0' : ' ');
			break;
		}
		case '%':
			emit(&o, '%');
			break;
		case 0:
			p--;
			break;
		default:
			emit(&o, '%');
			emit(&o, *p);
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = 0;
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
