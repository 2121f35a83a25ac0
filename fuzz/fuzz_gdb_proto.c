/* libFuzzer target for the GDB Remote Serial Protocol engine (src/host/gdb_proto.c). The input
 * is a byte stream from "gdb", fed in pieces cut at points derived from the input, to a session
 * with a fake target, as the stub would: a resumed guest stops again (or ends) a little later.
 * ASan/UBSan catch memory and arithmetic errors; this file checks the engine's promises and
 * traps if one breaks: every output is acks and well-formed packets no longer than PacketSize,
 * the output buffer never overflows, every call makes progress, and the target is touched
 * only while the guest is stopped, never with a range past the top of the address space. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "host/gdb_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_BASE 0x200000ull
#define MEM_SIZE 4096u
#define MAX_BPS 8

static void require(int cond)
{
	if (!cond)
		__builtin_trap();
}

static struct {
	struct mote_cpu_state st;
	uint8_t mem[MEM_SIZE];
	uint64_t bps[MAX_BPS];
	int nbps;
	bool fail; /* every op fails, from a bit of the input */
} fake;

static struct mote_gdb_session S;
static struct mote_gdb_buf out;
static bool in_stop_reply; /* the caller's own get_regs for a stop reply */

static void check_call(void)
{
	require(S.run == MOTE_GDB_STOPPED || in_stop_reply);
}

static bool range_ok(uint64_t addr, size_t len)
{
	require(len == 0 || addr + (len - 1) >= addr); /* never wraps */
	require(len <= MOTE_GDB_PACKET_MAX);
	return !fake.fail && addr >= MEM_BASE && len <= MEM_SIZE &&
	       addr - MEM_BASE <= MEM_SIZE - len;
}

static int f_get_regs(void *ctx, struct mote_cpu_state *st)
{
	(void)ctx;
	check_call();
	if (fake.fail)
		return -1;
	*st = fake.st;
	return 0;
}

static int f_set_regs(void *ctx, const struct mote_cpu_state *st)
{
	(void)ctx;
	check_call();
	require(!(st->rflags & ~MOTE_RFLAGS_GUEST));
	if (fake.fail)
		return -1;
	fake.st = *st;
	return 0;
}

static int f_read_mem(void *ctx, uint64_t addr, void *buf, size_t len)
{
	(void)ctx;
	check_call();
	if (!range_ok(addr, len))
		return -1;
	memcpy(buf, fake.mem + (addr - MEM_BASE), len);
	return 0;
}

static int f_write_mem(void *ctx, uint64_t addr, const void *buf, size_t len)
{
	(void)ctx;
	check_call();
	if (!range_ok(addr, len))
		return -1;
	memcpy(fake.mem + (addr - MEM_BASE), buf, len);
	return 0;
}

static int f_insert_bp(void *ctx, uint64_t addr)
{
	(void)ctx;
	check_call();
	if (!range_ok(addr, 1) || fake.nbps == MAX_BPS)
		return -1;
	fake.bps[fake.nbps++] = addr;
	return 0;
}

static int f_remove_bp(void *ctx, uint64_t addr)
{
	(void)ctx;
	check_call();
	for (int i = 0; i < fake.nbps; i++)
		if (fake.bps[i] == addr) {
			fake.bps[i] = fake.bps[--fake.nbps];
			return 0;
		}
	return -1;
}

static const struct mote_gdb_target_ops ops = {
	.get_regs = f_get_regs,
	.set_regs = f_set_regs,
	.read_mem = f_read_mem,
	.write_mem = f_write_mem,
	.insert_breakpoint = f_insert_bp,
	.remove_breakpoint = f_remove_bp,
};

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Acks and "$data#cc" packets, checksums right, data within PacketSize. */
static void check_output(void)
{
	require(out.len <= MOTE_GDB_OUT_MAX && !out.truncated);
	size_t i = 0;
	while (i < out.len) {
		uint8_t c = out.data[i];
		if (c == '+' || c == '-') {
			i++;
			continue;
		}
		require(c == '$');
		size_t j = i + 1;
		unsigned sum = 0;
		while (j < out.len && out.data[j] != '#') {
			require(out.data[j] != '$');
			sum += out.data[j++];
		}
		require(j + 2 < out.len && j - i - 1 <= MOTE_GDB_PACKET_MAX);
		int hi = hexval(out.data[j + 1]), lo = hexval(out.data[j + 2]);
		require(hi >= 0 && lo >= 0 && (unsigned)(hi << 4 | lo) == (sum & 0xff));
		i = j + 3;
	}
	out.len = 0;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* The guest resumed earlier: it stops, faults or ends, as `how` says. */
static void guest_stops(unsigned how)
{
	in_stop_reply = true;
	if (how % 8 == 0)
		mote_gdb_exit_reply(&S, how % 16 ? -11 : 0, &out);
	else
		mote_gdb_stop_reply(&S, (int)(how % 32), how & 32, how & 64 ? &out : NULL);
	in_stop_reply = false;
	check_output();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	memset(&fake, 0, sizeof(fake));
	for (int i = 0; i < 16; i++)
		fake.st.gpr[i] = mix(h + (uint64_t)i);
	fake.st.rip = MEM_BASE + 0x10;
	fake.st.rflags = h & MOTE_RFLAGS_GUEST;
	for (int i = 0; i < 512; i++)
		fake.st.fxsave[i] = (uint8_t)mix(h ^ (uint64_t)i);
	fake.fail = (h & 0xff) == 0;
	mote_gdb_session_init(&S, &ops, NULL);
	out.len = 0;
	out.truncated = false;

	/* Up to three cuts; pieces fed as a stub would, re-feeding what was not consumed. */
	size_t cuts[4];
	for (int k = 0; k < 3; k++)
		cuts[k] = size ? (size_t)(mix(h + 100 + (uint64_t)k) % (size + 1)) : 0;
	cuts[3] = size;
	for (int a = 0; a < 3; a++)
		for (int b = a + 1; b < 3; b++)
			if (cuts[b] < cuts[a]) {
				size_t t = cuts[a];
				cuts[a] = cuts[b];
				cuts[b] = t;
			}
	size_t off = 0;
	unsigned steps = 0;
	bool running = false;
	for (int k = 0; k < 4; k++) {
		while (off < cuts[k]) {
			size_t used = 0, len = cuts[k] - off;
			enum mote_gdb_action act = mote_gdb_feed(&S, data + off, len, &used, &out);
			require(used > 0 && used <= len); /* an emptied buffer always has room */
			require(S.pkt_len <= MOTE_GDB_PACKET_MAX);
			size_t sent = out.len;
			check_output();
			off += used;
			unsigned how = (unsigned)mix(h + off);
			switch (act) {
			case MOTE_GDB_CONTINUE:
			case MOTE_GDB_STEP:
				require(!running && S.run == MOTE_GDB_RUNNING);
				running = true;
				break;
			case MOTE_GDB_INTERRUPT:
				require(running);
				break;
			case MOTE_GDB_KILL:
			case MOTE_GDB_DETACH:
				require(!running && S.run == MOTE_GDB_ENDED);
				if (how & 1) /* gdb connects again */
					mote_gdb_session_init(&S, &ops, NULL);
				break;
			case MOTE_GDB_NONE: /* all taken, or no room left for another reply */
				require(off == cuts[k] ||
					sent + 1 + MOTE_GDB_PACKET_MAX + 4 > MOTE_GDB_OUT_MAX);
				break;
			}
			/* A running guest stops now or after more input. */
			if (running && (act == MOTE_GDB_INTERRUPT || how % 4 == 0)) {
				guest_stops(how >> 8);
				running = false;
			}
			require(++steps <= 2 * size + 8);
		}
		if (running && k == 1) {
			guest_stops((unsigned)h);
			running = false;
		}
	}
	require(fake.nbps <= MAX_BPS);
	return 0;
}
