/* A WebAssembly module (build: clang --target=wasm32 -nostdlib
 * -Wl,--no-entry -Wl,--export-all -O2): a pricing rule that asks its host
 * for a tax rate through an "env" import. */
#include <stdint.h>

__attribute__((import_module("env"), import_name("tax_rate"))) double tax_rate(int32_t region);

double price(double net, int32_t region)
{
	return net * (1.0 + tax_rate(region));
}

int64_t cents(double amount)
{
	return (int64_t)(amount * 100.0 + 0.5);
}
