/* A guest that calls back into its host: it asks the host function
 * "lookup_price" for each item and returns the total. The host decides
 * which functions exist; a guest can reach nothing else. */
#include <mote/guest.h>

MOTE_FN2(f64, order_total, str, item, u32, quantity)
{
	mote_value arg = mote_val_str(item.ptr);
	mote_value price;
	int rc = mote_host_call("lookup_price", MOTE_F64, &price, &arg, 1);
	if (rc) {
		mote_fail("price lookup failed");
		return 0;
	}
	mote_log(MOTE_LOG_INFO, "%u x %s at %.2f", quantity, item.ptr, price.v.f64);
	return price.v.f64 * quantity;
}
