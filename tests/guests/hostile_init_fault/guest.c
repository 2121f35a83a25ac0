/* A guest whose init faults: sandbox creation must fail with the fault. */
#include <mote/guest.h>

/* volatile: the compiler must neither fold nor warn about the address. */
static volatile uintptr_t bad_addr = 0x10;

void mote_init(void);
void mote_init(void)
{
	*(volatile uint32_t *)bad_addr = 1;
}

MOTE_FN0(i32, never_called)
{
	return 1;
}
