/* The smallest mote guest: one function.
 *   mote-cc -o hello.elf hello.c && mote run hello.elf hello world */
#include <mote/guest.h>

MOTE_FN1(str, hello, str, name)
{
	char *text = mote_call_alloc(name.len + 9);
	int n = snprintf(text, name.len + 9, "Hello, %s!", name.ptr);
	return (mote_str){text, (size_t)n};
}
