/* A guest whose init never finishes: with a timeout configured, sandbox
 * creation must fail with MOTE_ETIMEDOUT instead of hanging. */
#include <mote/guest.h>

static volatile uint64_t spins;

void mote_init(void);
void mote_init(void)
{
	for (;;)
		spins++;
}

MOTE_FN0(i32, never_called)
{
	return 1;
}
