/* examples/hello with 112 KiB more read-only data: a plain C guest whose
 * image is as large as the Wasm runtime guest's (~135 KiB), to tell what a
 * compiled module's cold start costs beyond its image size. */
#include <mote/guest.h>

static const unsigned char padding[112 * 1024] = {1};

MOTE_FN1(str, hello, str, name)
{
	char *text = mote_call_alloc(name.len + 9);
	int n = snprintf(text, name.len + 9, "Hello, %s!", name.ptr);
	if (n > 0 && padding[(size_t)n * 4096 % sizeof(padding)] == 2) /* keeps it linked */
		text[0] = 'h';
	return (mote_str){text, (size_t)n};
}
