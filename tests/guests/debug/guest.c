/* The debugging test guest: faults a few frames deep, so symbolized
 * details, core dumps and the gdb stub have a call chain to show. The
 * helpers are noinline and use their callee's result, so -O2 keeps every
 * frame (no inlining, no tail calls). The line numbers of the marked lines
 * are read by the tests: keep the markers. */
#include <mote/guest.h>

volatile int sink;

__attribute__((noinline)) static int store_through(int *p, int v)
{
	*p = v; /* FAULT LINE */
	return v + 1;
}

__attribute__((noinline)) static int middle(int *p, int v)
{
	int r = store_through(p, v * 3);
	sink = r;
	return r + 2;
}

MOTE_FN1(i32, crash, i32, v)
{
	int *volatile target = (int *)0;
	int r = middle(target, v);
	sink = r;
	return r;
}

__attribute__((noinline)) static int quotient(int a, int b)
{
	return a / b;
}

MOTE_FN2(i32, divide, i32, a, i32, b)
{
	int q = quotient(a, b);
	sink = q;
	return q + 0;
}

MOTE_FN0(void, give_up)
{
	mote_abort(3, "the guest gives up");
}

MOTE_FN0(void, spin)
{
	for (;;)
		sink++;
}

__attribute__((noinline)) static int square(int x)
{
	int y = x * x; /* SQUARE LINE */
	sink = y;
	return y;
}

/* For the gdb session: break at square, print x, step, bt, continue. */
MOTE_FN1(i32, work, i32, x)
{
	int s = square(x + 1);
	sink = s;
	return s + 1;
}
