/* Test module importing a host function no test registers. */
#include <stdint.h>

__attribute__((import_module("env"), import_name("no_such_host_fn"))) int32_t missing(int32_t);

int32_t use_missing(int32_t x)
{
	return missing(x) + 1;
}
