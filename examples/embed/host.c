/* Embedding libmote: create a sandbox from a guest, give it one host
 * function, call a guest function, handle errors.
 *   cc host.c $(pkg-config --cflags --libs mote) -o host && ./host guest.elf */
#include <mote.h>
#include <stdio.h>
#include <string.h>

static int lookup_price(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			mote_value *result)
{
	(void)user;
	(void)sb;
	(void)nargs;
	const char *item = args[0].v.buf.ptr; /* strings arrive NUL-terminated */
	if (strcmp(item, "apple") == 0)
		result->v.f64 = 0.5;
	else if (strcmp(item, "melon") == 0)
		result->v.f64 = 2.25;
	else
		return -MOTE_EHOSTFUNC; /* the guest sees this error */
	return 0;
}

int main(int argc, char **argv)
{
	const char *guest = argc > 1 ? argv[1] : "hostcall.elf";
	mote_host_functions *fns;
	mote_sandbox *sb;
	mote_host_functions_new(&fns);
	mote_host_functions_add(fns, "lookup_price", MOTE_F64, (mote_type[]){MOTE_STRING}, 1,
				lookup_price, NULL);

	int rc = mote_sandbox_new(guest, NULL, fns, &sb);
	if (rc) {
		fprintf(stderr, "cannot create sandbox: %s: %s\n", mote_strerror(rc),
			mote_last_error());
		return 1;
	}
	mote_value args[2] = {mote_string("melon"), mote_u32(4)};
	mote_value total;
	rc = mote_sandbox_call(sb, "order_total", args, 2, &total);
	if (rc == 0)
		printf("4 melons cost %.2f\n", total.v.f64);
	else
		printf("call failed: %s\n", mote_sandbox_last_error(sb));

	args[0] = mote_string("durian"); /* unknown to the host: the guest fails */
	rc = mote_sandbox_call(sb, "order_total", args, 2, &total);
	printf("durian: %s (%s)\n", mote_strerror(rc), mote_sandbox_last_error(sb));

	mote_sandbox_free(sb);
	mote_host_functions_free(fns);
	return 0;
}
