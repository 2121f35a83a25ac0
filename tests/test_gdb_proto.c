/* The GDB Remote Serial Protocol engine (src/host/gdb_proto.c) against a fake target: 64 KiB
 * of memory at MEM_BASE, a register struct and a breakpoint list. Expected replies are
 * written out here from the GDB manual's "Remote Protocol" appendix and the FXSAVE layout,
 * with checksums computed by this file, so a change in what goes on the wire fails here.
 * Then hostile input: random streams, endless packets, huge numbers. Starts no sandbox. */
#include <stdbool.h>
#include <stdint.h>

#include "common/abi.h"
#include "host/gdb_proto.h"
#include "mote.h"
#include "test.h"

#define MEM_BASE 0x200000ull
#define MEM_SIZE 0x10000u
#define MAX_BPS 16

/* ---- The fake target ---- */

struct fake {
	struct mote_cpu_state st;
	uint8_t mem[MEM_SIZE];
	uint64_t bps[MAX_BPS];
	int nbps;
	int get_calls, set_calls, read_calls, write_calls;
	uint64_t last_read_addr;
	size_t last_read_len;
	bool fail_regs;
	bool wrapped; /* asked for a range past the top of the address space */
};

static struct fake F;
static struct mote_gdb_session S;
static struct mote_gdb_buf OUT;

static int f_get_regs(void *ctx, struct mote_cpu_state *st)
{
	struct fake *f = ctx;
	f->get_calls++;
	if (f->fail_regs)
		return -MOTE_EIO;
	*st = f->st;
	return 0;
}

static int f_set_regs(void *ctx, const struct mote_cpu_state *st)
{
	struct fake *f = ctx;
	f->set_calls++;
	if (f->fail_regs)
		return -MOTE_EIO;
	f->st = *st;
	return 0;
}

static bool in_mem(uint64_t addr, size_t len)
{
	return addr >= MEM_BASE && len <= MEM_SIZE && addr - MEM_BASE <= MEM_SIZE - len;
}

static int f_read_mem(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct fake *f = ctx;
	f->read_calls++;
	f->last_read_addr = addr;
	f->last_read_len = len;
	if (len && addr + (len - 1) < addr)
		f->wrapped = true;
	if (!in_mem(addr, len))
		return -MOTE_EFAULT;
	memcpy(buf, f->mem + (addr - MEM_BASE), len);
	return 0;
}

static int f_write_mem(void *ctx, uint64_t addr, const void *buf, size_t len)
{
	struct fake *f = ctx;
	f->write_calls++;
	if (len && addr + (len - 1) < addr)
		f->wrapped = true;
	if (!in_mem(addr, len))
		return -MOTE_EFAULT;
	memcpy(f->mem + (addr - MEM_BASE), buf, len);
	return 0;
}

static int f_insert_bp(void *ctx, uint64_t addr)
{
	struct fake *f = ctx;
	if (!in_mem(addr, 1) || f->nbps == MAX_BPS)
		return -MOTE_EFAULT;
	f->bps[f->nbps++] = addr;
	return 0;
}

static int f_remove_bp(void *ctx, uint64_t addr)
{
	struct fake *f = ctx;
	for (int i = 0; i < f->nbps; i++)
		if (f->bps[i] == addr) {
			f->bps[i] = f->bps[--f->nbps];
			return 0;
		}
	return -MOTE_EINVAL;
}

static const struct mote_gdb_target_ops fake_ops = {
	.get_regs = f_get_regs,
	.set_regs = f_set_regs,
	.read_mem = f_read_mem,
	.write_mem = f_write_mem,
	.insert_breakpoint = f_insert_bp,
	.remove_breakpoint = f_remove_bp,
};

static void st_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A fresh connection to a guest with distinct values everywhere. */
static void setup(void)
{
	memset(&F, 0, sizeof(F));
	for (int i = 0; i < 16; i++)
		F.st.gpr[i] = 0x1000000000000000ull * (uint64_t)(i + 1) + 0x0102030405060708ull +
			      (uint64_t)i;
	F.st.rip = 0x200670;
	F.st.rflags = 0x246 & MOTE_RFLAGS_GUEST;
	F.st.fs_base = 0x7000123456;
	F.st.gs_base = 0x7000abcdef;
	for (int i = 0; i < 512; i++)
		F.st.fxsave[i] = (uint8_t)(i * 7 + 1);
	st_le(F.st.fxsave + 0, 0x037f, 2);	/* FCW */
	st_le(F.st.fxsave + 2, 0x3800, 2);	/* FSW: TOP 7 */
	F.st.fxsave[4] = 0;			/* abridged FTW: all empty */
	st_le(F.st.fxsave + 6, 0x0123, 2);	/* FOP */
	st_le(F.st.fxsave + 24, 0x1f80, 4);	/* MXCSR */
	for (unsigned i = 0; i < MEM_SIZE; i++)
		F.mem[i] = (uint8_t)(i ^ (i >> 8));
	mote_gdb_session_init(&S, &fake_ops, &F);
	OUT.len = 0;
	OUT.truncated = false;
}

/* ---- Wire helpers ---- */

/* "$data#cc" for n bytes of packet data (a rotating buffer). */
static char *frame(const void *data, size_t n)
{
	static char bufs[6][MOTE_GDB_OUT_MAX + 8];
	static int k;
	char *b = bufs[k++ % 6];
	unsigned sum = 0;
	b[0] = '$';
	memcpy(b + 1, data, n);
	for (size_t i = 0; i < n; i++)
		sum += ((const uint8_t *)data)[i];
	snprintf(b + 1 + n, 4, "#%02x", sum & 0xff);
	return b;
}

static const char *pkt(const char *data)
{
	return frame(data, strlen(data));
}

/* The ack and the framed reply. */
static const char *ack(const char *reply)
{
	static char bufs[4][MOTE_GDB_OUT_MAX + 8];
	static int k;
	char *b = bufs[k++ % 4];
	snprintf(b, sizeof(bufs[0]), "+%s", pkt(reply));
	return b;
}

static enum mote_gdb_action last_action;

/* Feeds n bytes as a caller would (what is not consumed is fed again) and returns everything
 * sent back, NUL-terminated; last_action is the first action asked for. */
static const char *talk_n(const void *bytes, size_t n)
{
	static char bufs[4][4 * MOTE_GDB_OUT_MAX];
	static int k;
	char *b = bufs[k++ % 4];
	size_t blen = 0;
	const uint8_t *p = bytes;
	last_action = MOTE_GDB_NONE;
	while (n > 0) {
		size_t used = 0;
		enum mote_gdb_action a = mote_gdb_feed(&S, p, n, &used, &OUT);
		if (OUT.len > MOTE_GDB_OUT_MAX || OUT.truncated || used > n) {
			TEST_FAILF("output overflowed or input overrun");
			break;
		}
		if (blen + OUT.len >= sizeof(bufs[0])) {
			TEST_FAILF("more output than the test expects");
			break;
		}
		memcpy(b + blen, OUT.data, OUT.len);
		blen += OUT.len;
		if (used == 0 && a == MOTE_GDB_NONE && OUT.len == 0) {
			TEST_FAILF("no progress");
			break;
		}
		OUT.len = 0;
		if (last_action == MOTE_GDB_NONE)
			last_action = a;
		p += used;
		n -= used;
	}
	b[blen] = 0;
	return b;
}

static const char *talk(const char *bytes)
{
	return talk_n(bytes, strlen(bytes));
}

/* Sends one packet; returns what came back. */
static const char *ask(const char *data)
{
	return talk(pkt(data));
}

static void hex_le(char *dst, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++, v >>= 8)
		sprintf(dst + 2 * i, "%02x", (unsigned)(v & 0xff));
}

static void hex_bytes(char *dst, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(dst + 2 * i, "%02x", p[i]);
}

/* Checks that out holds only acks and well-formed packets no longer than PacketSize. */
static bool well_formed(const uint8_t *p, size_t n, size_t *npackets)
{
	size_t i = 0, count = 0;
	while (i < n) {
		if (p[i] == '+' || p[i] == '-') {
			i++;
			continue;
		}
		if (p[i] != '$')
			return false;
		size_t j = i + 1;
		unsigned sum = 0;
		while (j < n && p[j] != '#') {
			if (p[j] == '$')
				return false;
			sum += p[j++];
		}
		if (j + 2 >= n)
			return false;
		if (j - i - 1 > MOTE_GDB_PACKET_MAX)
			return false;
		char cs[3];
		snprintf(cs, sizeof(cs), "%02x", sum & 0xff);
		if (p[j + 1] != (uint8_t)cs[0] || p[j + 2] != (uint8_t)cs[1])
			return false;
		i = j + 3;
		count++;
	}
	if (npackets)
		*npackets = count;
	return true;
}

/* ---- Framing ---- */

TEST(framing_good_packet)
{
	setup();
	/* Known checksums, to check the helper too. */
	CHECK_EQ_STR(pkt("g"), "$g#67");
	CHECK_EQ_STR(pkt("OK"), "$OK#9a");
	CHECK_EQ_STR(pkt(""), "$#00");
	CHECK_EQ_STR(talk("$qC#b4"), "+$QC1#c5");
	CHECK_EQ_STR(talk("$qC#B4"), "+$QC1#c5"); /* either case of hex */
	CHECK_EQ_INT(last_action, MOTE_GDB_NONE);
}

TEST(framing_bad_checksum)
{
	setup();
	CHECK_EQ_STR(talk("$qC#00"), "-");
	CHECK_EQ_STR(talk("$qC#b5"), "-");
	CHECK_EQ_STR(talk("$qC#zz"), "-");	/* not hex: lost */
	CHECK_EQ_STR(talk("$qC#b$qC#b4"), "-+$QC1#c5"); /* a '$' in the checksum starts anew */
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	/* A bad packet has no effect on the target. */
	CHECK_EQ_STR(talk("$M200000,1:ff#00"), "-");
	CHECK_EQ_INT(F.write_calls, 0);
	CHECK_EQ_INT(F.mem[0], 0);
}

TEST(framing_garbage_between_packets)
{
	setup();
	char in[64];
	snprintf(in, sizeof(in), "xyz\x01\x03+++#12%s}}**%s", pkt("qC"), pkt("qfThreadInfo"));
	char want[64];
	snprintf(want, sizeof(want), "%s%s", ack("QC1"), ack("m1"));
	CHECK_EQ_STR(talk(in), want);
	CHECK_EQ_INT(last_action, MOTE_GDB_NONE); /* 0x03 while stopped: nothing to interrupt */
}

TEST(framing_split_across_feeds)
{
	setup();
	const char *p = pkt("qOffsets");
	size_t n = strlen(p);
	for (size_t i = 0; i + 1 < n; i++) {
		size_t used = 9;
		CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)p + i, 1, &used, &OUT),
			     MOTE_GDB_NONE);
		CHECK_EQ_INT(used, 1);
		CHECK_EQ_INT(OUT.len, 0);
	}
	CHECK_EQ_STR(talk(p + n - 1), ack("Text=0;Data=0;Bss=0"));
	/* In three uneven pieces. */
	CHECK_EQ_STR(talk("$qfTh"), "");
	CHECK_EQ_STR(talk("readInfo#b"), "");
	CHECK_EQ_STR(talk("b"), "+$m1#9e");
}

TEST(framing_two_packets_in_one_feed)
{
	setup();
	char in[64], want[128];
	snprintf(in, sizeof(in), "%s%s", pkt("qC"), pkt("?"));
	snprintf(want, sizeof(want), "%s%s", ack("QC1"), ack("T05thread:1;"));
	size_t used = 0;
	CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)in, strlen(in), &used, &OUT),
		     MOTE_GDB_NONE);
	CHECK_EQ_INT(used, strlen(in));
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, want);
}

TEST(framing_escapes)
{
	setup();
	/* X with } # $ * in the data, each sent as '}' and the byte XOR 0x20. */
	const uint8_t x[] = {'X', '2', '0', '0', '0', '0', '0', ',', '5', ':', '}', 0x5d, '}', 0x03,
			     '}', 0x04, '}', 0x0a, 0x03};
	CHECK_EQ_STR(talk_n(frame(x, sizeof(x)), sizeof(x) + 4), ack("OK"));
	CHECK_EQ_INT(F.mem[0], 0x7d);
	CHECK_EQ_INT(F.mem[1], 0x23);
	CHECK_EQ_INT(F.mem[2], 0x24);
	CHECK_EQ_INT(F.mem[3], 0x2a);
	CHECK_EQ_INT(F.mem[4], 0x03); /* a raw 0x03 inside a packet is data */
	/* Run-length encoding ('*') is refused, as is a '}' with nothing after it. */
	CHECK_EQ_STR(ask("m200000,4*!"), ack("E01"));
	CHECK_EQ_STR(ask("qC}"), ack("E01"));
	/* X with a length that does not match the data. */
	CHECK_EQ_STR(ask("X200000,2:a"), ack("E01"));
	CHECK_EQ_STR(ask("X200000,0:"), ack("OK")); /* gdb's probe for X */
	CHECK_EQ_INT(F.write_calls, 1);
}

TEST(framing_noack_mode)
{
	setup();
	CHECK_EQ_STR(ask("QStartNoAckMode"), ack("OK"));
	/* gdb acks that reply; from now on nothing is acked either way. */
	CHECK_EQ_STR(talk("+"), "");
	CHECK_EQ_STR(ask("qC"), pkt("QC1"));
	CHECK_EQ_STR(talk("-"), ""); /* no retransmission */
	/* The checksum may be ignored without acks: better an answer than a gdb waiting forever. */
	CHECK_EQ_STR(talk("$qC#00"), pkt("QC1"));
	CHECK_EQ_STR(talk("$qC#zz"), ""); /* not a checksum at all: dropped, silently */
	CHECK_EQ_STR(ask("qsThreadInfo"), pkt("l"));
}

TEST(framing_nak_retransmits)
{
	setup();
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	CHECK_EQ_STR(talk("-"), pkt("QC1"));
	CHECK_EQ_STR(talk("--"), "$QC1#c5$QC1#c5");
	CHECK_EQ_STR(talk("+"), "");
	setup();
	CHECK_EQ_STR(talk("-"), ""); /* nothing sent yet */
}

TEST(framing_oversized_packet)
{
	static char big[2 * MOTE_GDB_PACKET_MAX + 16];
	setup();
	/* One byte too long, checksum right: acked and refused; then business as usual. */
	memset(big, 'a', MOTE_GDB_PACKET_MAX + 1);
	big[MOTE_GDB_PACKET_MAX + 1] = 0;
	CHECK_EQ_STR(talk(pkt(big)), ack("E01"));
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	/* Far too long, checksum wrong: nak'd. */
	big[0] = '$';
	memset(big + 1, 'a', 2 * MOTE_GDB_PACKET_MAX);
	strcpy(big + 1 + 2 * MOTE_GDB_PACKET_MAX, "#01"); /* 0x61 * 32768 sums to 0 */
	CHECK_EQ_STR(talk(big), "-");
	/* Exactly PacketSize is accepted: an M of 8185 bytes. */
	int hdr = sprintf(big, "M0200000,%x:", (MOTE_GDB_PACKET_MAX - 14) / 2);
	CHECK_EQ_INT(hdr, 14);
	memset(big + hdr, '5', MOTE_GDB_PACKET_MAX - 14);
	big[MOTE_GDB_PACKET_MAX] = 0;
	CHECK_EQ_STR(ask(big), ack("OK"));
	CHECK_EQ_INT(F.mem[0], 0x55);
	CHECK_EQ_INT(F.mem[(MOTE_GDB_PACKET_MAX - 14) / 2 - 1], 0x55);
	/* Two digits more: over PacketSize, refused before any parsing. */
	int writes = F.write_calls;
	sprintf(big, "M0200000,%x:", (MOTE_GDB_PACKET_MAX - 12) / 2);
	memset(big + 14, '6', MOTE_GDB_PACKET_MAX - 12);
	big[MOTE_GDB_PACKET_MAX + 2] = 0;
	CHECK_EQ_STR(ask(big), ack("E01"));
	CHECK_EQ_INT(F.write_calls, writes);
}

TEST(framing_resync_after_cut_packet)
{
	static char big[MOTE_GDB_PACKET_MAX + 64];
	setup();
	/* A packet cut short (and one too long, cut short): the next '$' starts over. */
	CHECK_EQ_STR(talk("$m2000"), "");
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	big[0] = '$';
	memset(big + 1, 'z', MOTE_GDB_PACKET_MAX + 10);
	big[MOTE_GDB_PACKET_MAX + 11] = 0;
	CHECK_EQ_STR(talk(big), "");
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
}

TEST(framing_endless_packet)
{
	static uint8_t big[100000];
	setup();
	big[0] = '$';
	for (size_t i = 1; i < sizeof(big); i++)
		big[i] = (uint8_t)('a' + i % 26);
	size_t used = 0;
	CHECK_EQ_INT(mote_gdb_feed(&S, big, sizeof(big), &used, &OUT), MOTE_GDB_NONE);
	CHECK_EQ_INT(used, sizeof(big));
	CHECK_EQ_INT(OUT.len, 0);
	/* And again: still inside it, still nothing stored or sent. */
	CHECK_EQ_INT(mote_gdb_feed(&S, big + 1, sizeof(big) - 1, &used, &OUT), MOTE_GDB_NONE);
	CHECK_EQ_INT(OUT.len, 0);
	CHECK_EQ_STR(talk("#zz"), "-");
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
}

TEST(output_room_is_respected)
{
	static char in[10000 * 5 + 1];
	setup();
	for (int i = 0; i < 10000; i++)
		memcpy(in + 5 * i, "$?#3f", 5);
	size_t off = 0, n = 10000 * 5, calls = 0, replies = 0, npk;
	while (off < n) {
		size_t used = 0;
		CHECK_EQ_INT(mote_gdb_feed(&S, (uint8_t *)in + off, n - off, &used, &OUT),
			     MOTE_GDB_NONE);
		REQUIRE(used > 0 && OUT.len <= MOTE_GDB_OUT_MAX && !OUT.truncated);
		REQUIRE(well_formed(OUT.data, OUT.len, &npk));
		replies += npk;
		OUT.len = 0;
		off += used;
		calls++;
	}
	CHECK_EQ_INT(replies, 10000);
	CHECK(calls > 1); /* it stopped when the buffer could not take another reply */
	/* A buffer the caller left full: nothing is taken until it is sent. */
	OUT.len = MOTE_GDB_OUT_MAX - 10;
	size_t used = 7;
	CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)"$?#3f", 5, &used, &OUT), MOTE_GDB_NONE);
	CHECK_EQ_INT(used, 0);
	CHECK_EQ_INT(OUT.len, MOTE_GDB_OUT_MAX - 10);
	OUT.len = 0;
	/* Stop replies into a full buffer are left out whole, and flagged. */
	OUT.len = MOTE_GDB_OUT_MAX - 3;
	mote_gdb_stop_reply(&S, 5, false, &OUT);
	CHECK_EQ_INT(OUT.len, MOTE_GDB_OUT_MAX - 3);
	CHECK(OUT.truncated);
	OUT.len = 0;
	OUT.truncated = false;
}

/* ---- Queries and simple packets ---- */

TEST(packets_queries)
{
	setup();
	CHECK_EQ_STR(ask("qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;"
			 "vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;"
			 "memory-tagging+;xmlRegisters=i386"),
		     ack("PacketSize=4000;qXfer:features:read+;swbreak+;vContSupported+;"
			 "QStartNoAckMode+"));
	CHECK_EQ_STR(ask("qSupported"), ack("PacketSize=4000;qXfer:features:read+;swbreak+;"
					    "vContSupported+;QStartNoAckMode+"));
	CHECK_EQ_STR(ask("?"), ack("T05thread:1;"));
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	CHECK_EQ_STR(ask("qfThreadInfo"), ack("m1"));
	CHECK_EQ_STR(ask("qsThreadInfo"), ack("l"));
	CHECK_EQ_STR(ask("qAttached"), ack("1"));
	CHECK_EQ_STR(ask("qAttached:a410"), ack("1"));
	CHECK_EQ_STR(ask("qOffsets"), ack("Text=0;Data=0;Bss=0"));
	CHECK_EQ_STR(ask("qSymbol::"), ack("OK"));
	CHECK_EQ_STR(ask("vCont?"), ack("vCont;c;C;s;S"));
	CHECK_EQ_STR(ask("Hg0"), ack("OK"));
	CHECK_EQ_STR(ask("Hgp0.0"), ack("OK"));
	CHECK_EQ_STR(ask("Hc-1"), ack("OK"));
	CHECK_EQ_STR(ask("Hg5"), ack("OK"));
	CHECK_EQ_STR(ask("T1"), ack("OK"));
	CHECK_EQ_STR(ask("Tp1.1"), ack("OK"));
	CHECK_EQ_STR(ask("T2"), ack("E01"));
	CHECK_EQ_STR(ask("T-1"), ack("E01"));
	CHECK_EQ_STR(ask("T"), ack("E01"));
	CHECK_EQ_INT(F.get_calls + F.set_calls + F.read_calls + F.write_calls, 0);
}

TEST(packets_unknown_get_empty_reply)
{
	setup();
	const char *empty = "+$#00";
	CHECK_EQ_STR(ask("vMustReplyEmpty"), empty);
	CHECK_EQ_STR(ask("qTStatus"), empty);
	CHECK_EQ_STR(ask("vFile:setfs:0"), empty);
	CHECK_EQ_STR(ask("vFile:open:6a7573742070726f62696e67,0,1c0"), empty);
	CHECK_EQ_STR(ask("QThreadEvents:1"), empty);
	CHECK_EQ_STR(ask("qXfer:auxv:read::0,1000"), empty);
	CHECK_EQ_STR(ask("qXfer:exec-file:read:1:0,1000"), empty);
	CHECK_EQ_STR(ask("!"), empty);
	CHECK_EQ_STR(ask("qL1200000000000000000"), empty);
	CHECK_EQ_STR(ask("QPassSignals:e;10;14"), empty);
	CHECK_EQ_STR(ask("vRun;"), empty);
	CHECK_EQ_STR(ask("vContX"), empty);
	CHECK_EQ_STR(ask("qCRC:200000,10"), empty);
	CHECK_EQ_STR(ask("kk"), empty);
	CHECK_EQ_STR(ask(""), empty);
	CHECK_EQ_STR(ask("Z1,200670,1"), empty); /* hardware breakpoints and watchpoints */
	CHECK_EQ_STR(ask("Z2,200000,8"), empty);
	CHECK_EQ_STR(ask("z3,200000,8"), empty);
	CHECK_EQ_STR(ask("Z4,200000,8"), empty);
	CHECK_EQ_INT(last_action, MOTE_GDB_NONE);
}

TEST(packets_kill_and_detach)
{
	size_t used;
	setup();
	const char *k = pkt("k");
	CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)k, strlen(k), &used, &OUT), MOTE_GDB_KILL);
	CHECK_EQ_INT(used, strlen(k));
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, "+"); /* k has no reply */
	OUT.len = 0;
	setup();
	CHECK_EQ_STR(ask("vKill;a410"), ack("OK"));
	CHECK_EQ_INT(last_action, MOTE_GDB_KILL);
	setup();
	CHECK_EQ_STR(ask("vKill"), ack("OK"));
	CHECK_EQ_INT(last_action, MOTE_GDB_KILL);
	setup();
	char in[32];
	snprintf(in, sizeof(in), "%s%s", pkt("D"), pkt("qC"));
	CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)in, strlen(in), &used, &OUT),
		     MOTE_GDB_DETACH);
	CHECK_EQ_INT(used, 5); /* the packet after it is left to the caller */
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, ack("OK"));
	OUT.len = 0;
	/* After detaching, the guest is not gdb's: no target access. */
	CHECK_EQ_STR(ask("g"), ack("E01"));
	CHECK_EQ_INT(F.get_calls, 0);
	setup();
	CHECK_EQ_STR(ask("D;a410"), ack("OK"));
	CHECK_EQ_INT(last_action, MOTE_GDB_DETACH);
}

/* ---- Resuming, stopping, exiting ---- */

/* "TssThread:1;06:<rbp>;07:<rsp>;10:<rip>;[swbreak:;]" for F.st, little-endian values. */
static const char *expected_stop(int sig, bool swbreak)
{
	static char b[2][160];
	static int k;
	char *p = b[k++ % 2], r[3][17];
	hex_le(r[0], F.st.gpr[5], 8);
	hex_le(r[1], F.st.gpr[4], 8);
	hex_le(r[2], F.st.rip, 8);
	snprintf(p, 160, "T%02xthread:1;06:%s;07:%s;10:%s;%s", sig, r[0], r[1], r[2],
		 swbreak ? "swbreak:;" : "");
	return p;
}

/* Feeds one packet and returns the action; the session is then running. */
static enum mote_gdb_action resume(const char *data, const char *want_out)
{
	size_t used = 0;
	const char *p = pkt(data);
	char in[256];
	snprintf(in, sizeof(in), "%s%s", p, pkt("g"));
	enum mote_gdb_action a = mote_gdb_feed(&S, (const uint8_t *)in, strlen(in), &used, &OUT);
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, want_out);
	if (a != MOTE_GDB_NONE)
		CHECK_EQ_INT(used, strlen(p)); /* the 'g' after it is not taken */
	OUT.len = 0;
	return a;
}

TEST(resume_packets)
{
	setup();
	CHECK_EQ_INT(resume("c", "+"), MOTE_GDB_CONTINUE);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("s", "+"), MOTE_GDB_STEP);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(F.set_calls, 0);
	CHECK_EQ_INT(resume("c200010", "+"), MOTE_GDB_CONTINUE);
	CHECK_EQ_U64(F.st.rip, 0x200010);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("s200020", "+"), MOTE_GDB_STEP);
	CHECK_EQ_U64(F.st.rip, 0x200020);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("C05", "+"), MOTE_GDB_CONTINUE);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("S0b;200030", "+"), MOTE_GDB_STEP);
	CHECK_EQ_U64(F.st.rip, 0x200030);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("vCont;c", "+"), MOTE_GDB_CONTINUE);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("vCont;s:1;c", "+"), MOTE_GDB_STEP);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("vCont;s:2;c", "+"), MOTE_GDB_CONTINUE); /* s is for another thread */
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("vCont;t:1;S05:-1", "+"), MOTE_GDB_STEP);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("vCont;C0b:p1.-1", "+"), MOTE_GDB_CONTINUE);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(resume("vCont;c:0", "+"), MOTE_GDB_CONTINUE);
	mote_gdb_stop_reply(&S, 5, false, NULL);
	/* Malformed, or nothing to do for thread 1: an error, and no resume. */
	const char *bad[] = {"vCont;", "vCont;t:1", "vCont;c:2", "vCont;x", "vCont;r200000,200010",
			     "vCont;C", "vCont;C100", "vCont;c:", "vCont;c;", "vCont;cc", "cz",
			     "c200000x", "C", "C100", "S05;", "S05x", "C05;zz", "c-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got = talk(pkt(bad[i]));
		if (strcmp(got, ack("E01")) != 0)
			TEST_FAILF("%s: got \"%s\"", bad[i], got);
		CHECK_EQ_INT(last_action, MOTE_GDB_NONE);
	}
	/* A failing target: no resume either. */
	F.fail_regs = true;
	CHECK_EQ_STR(ask("c200000"), ack("E01"));
	CHECK_EQ_INT(last_action, MOTE_GDB_NONE);
}

TEST(running_takes_only_interrupts)
{
	size_t used;
	setup();
	CHECK_EQ_INT(resume("c", "+"), MOTE_GDB_CONTINUE);
	int calls = F.get_calls;
	/* gdb sends nothing but 0x03 while the guest runs: the rest is dropped, the target
	 * untouched. */
	const char *g = "$g#67$m200000,4#8d-+";
	CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)g, strlen(g), &used, &OUT), MOTE_GDB_NONE);
	CHECK_EQ_INT(used, strlen(g));
	CHECK_EQ_INT(OUT.len, 0);
	CHECK_EQ_INT(F.get_calls, calls);
	const char *in = "xx\x03yy";
	CHECK_EQ_INT(mote_gdb_feed(&S, (const uint8_t *)in, 5, &used, &OUT), MOTE_GDB_INTERRUPT);
	CHECK_EQ_INT(used, 3);
	CHECK_EQ_INT(OUT.len, 0);
	/* The caller stops the guest and says so. */
	mote_gdb_stop_reply(&S, 2, false, &OUT);
	OUT.data[OUT.len] = 0;
	const char *want = expected_stop(2, false);
	CHECK_EQ_STR(want, "T02thread:1;06:0d07060504030261;07:0c07060504030251;"
			   "10:7006200000000000;");
	CHECK_EQ_STR((const char *)OUT.data, pkt(want));
	OUT.len = 0;
	/* Stopped again: packets are answered. */
	CHECK_EQ_STR(ask("?"), ack(want));
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
}

TEST(stop_replies)
{
	setup();
	mote_gdb_stop_reply(&S, 5, true, &OUT);
	OUT.data[OUT.len] = 0;
	const char *want = expected_stop(5, true);
	CHECK_EQ_STR((const char *)OUT.data, pkt(want));
	OUT.len = 0;
	CHECK_EQ_STR(ask("?"), ack(want));
	/* Registers that cannot be read: the stop reply goes out without them. */
	F.fail_regs = true;
	mote_gdb_stop_reply(&S, 11, false, &OUT);
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, pkt("T0bthread:1;"));
	OUT.len = 0;
	/* Recorded only (before gdb asked), then '?'. */
	F.fail_regs = false;
	F.st.rip = 0x1234;
	mote_gdb_stop_reply(&S, 5, false, NULL);
	CHECK_EQ_INT(OUT.len, 0);
	CHECK_EQ_STR(ask("?"), ack(expected_stop(5, false)));
	CHECK_CONTAINS(ask("?"), ";10:3412000000000000;");
}

TEST(exit_replies)
{
	setup();
	CHECK_EQ_INT(resume("c", "+"), MOTE_GDB_CONTINUE);
	mote_gdb_exit_reply(&S, 0, &OUT);
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, "$W00#b7");
	OUT.len = 0;
	/* The call is over: what needs the guest fails, '?' repeats the exit. */
	int calls = F.get_calls + F.read_calls;
	CHECK_EQ_STR(ask("?"), ack("W00"));
	CHECK_EQ_STR(ask("g"), ack("E01"));
	CHECK_EQ_STR(ask("m200000,4"), ack("E01"));
	CHECK_EQ_STR(ask("Z0,200670,1"), ack("E01"));
	CHECK_EQ_STR(ask("c"), ack("E01"));
	CHECK_EQ_STR(ask("vCont;c"), ack("E01"));
	CHECK_EQ_INT(F.get_calls + F.read_calls, calls);
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	CHECK_EQ_STR(ask("vKill;1"), ack("OK"));
	CHECK_EQ_INT(last_action, MOTE_GDB_KILL);
	setup();
	mote_gdb_exit_reply(&S, -11, &OUT);
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, pkt("X0b"));
	OUT.len = 0;
	mote_gdb_exit_reply(&S, 3, &OUT);
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, pkt("W03"));
	OUT.len = 0;
}

/* ---- Registers ---- */

/* What 'g' must say for F.st: gdb's order, written out field by field. */
static void expected_g(char *dst)
{
	static const int gpr[16] = {0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15};
	const uint8_t *fx = F.st.fxsave;
	char *p = dst;
	for (int i = 0; i < 16; i++, p += 16)
		hex_le(p, F.st.gpr[gpr[i]], 8);
	hex_le(p, F.st.rip, 8), p += 16;
	hex_le(p, F.st.rflags | 2, 4), p += 8;
	hex_le(p, MOTE_SEL_UCODE, 4), p += 8;
	for (int i = 0; i < 5; i++, p += 8)
		hex_le(p, MOTE_SEL_UDATA, 4);
	for (int i = 0; i < 8; i++, p += 20)
		hex_bytes(p, fx + 32 + 16 * i, 10);
	hex_le(p, fx[0] | fx[1] << 8, 4), p += 8;	/* fctrl */
	hex_le(p, fx[2] | fx[3] << 8, 4), p += 8;	/* fstat */
	hex_le(p, 0xffff, 4), p += 8;			/* ftag: setup() leaves all empty */
	hex_le(p, fx[12] | fx[13] << 8, 4), p += 8;	/* fiseg */
	hex_bytes(p, fx + 8, 4), p += 8;		/* fioff */
	hex_le(p, fx[20] | fx[21] << 8, 4), p += 8;	/* foseg */
	hex_bytes(p, fx + 16, 4), p += 8;		/* fooff */
	hex_le(p, (fx[6] | fx[7] << 8) & 0x7ff, 4), p += 8; /* fop */
	for (int i = 0; i < 16; i++, p += 32)
		hex_bytes(p, fx + 160 + 16 * i, 16);
	hex_bytes(p, fx + 24, 4), p += 8;
	hex_le(p, F.st.fs_base, 8), p += 16;
	hex_le(p, F.st.gs_base, 8), p += 16;
	*p = 0;
}

TEST(registers_g)
{
	static char want[2 * MOTE_GDB_REGS_SIZE + 1];
	setup();
	expected_g(want);
	CHECK_EQ_INT(strlen(want), 2 * MOTE_GDB_REGS_SIZE);
	CHECK_EQ_STR(ask("g"), ack(want));
	CHECK_EQ_STR(ask("gx"), ack("E01"));
	F.fail_regs = true;
	CHECK_EQ_STR(ask("g"), ack("E01"));
}

TEST(registers_G_round_trip)
{
	static char g[2 * MOTE_GDB_REGS_SIZE + 8];
	setup();
	/* A different state A: its 'g' image, written with G into a zeroed guest, reads back
	 * identically and lands in the right fields. */
	struct mote_cpu_state a = F.st;
	for (int i = 0; i < 16; i++)
		a.gpr[i] = ~a.gpr[i] ^ (uint64_t)i << 40;
	a.rip = 0x2006ab;
	a.rflags = 0x0cd5 & MOTE_RFLAGS_GUEST;
	a.fs_base = 0x1111;
	a.gs_base = 0x2222;
	for (int i = 32; i < 416; i++)
		a.fxsave[i] = (uint8_t)(i * 13 + 5);
	a.fxsave[4] = 0x5a;
	F.st = a;
	strcpy(g, ask("g"));
	memset(&F.st, 0, sizeof(F.st));
	char G[2 * MOTE_GDB_REGS_SIZE + 8];
	snprintf(G, sizeof(G), "G%.*s", 2 * MOTE_GDB_REGS_SIZE, g + 2); /* skip "+$" */
	CHECK_EQ_STR(ask(G), ack("OK"));
	CHECK_EQ_STR(ask("g"), g);
	CHECK(memcmp(F.st.gpr, a.gpr, sizeof(a.gpr)) == 0);
	CHECK_EQ_U64(F.st.rip, a.rip);
	CHECK_EQ_U64(F.st.rflags, a.rflags);
	CHECK_EQ_U64(F.st.fs_base, 0x1111);
	CHECK_EQ_U64(F.st.gs_base, 0x2222);
	CHECK_EQ_INT(F.st.fxsave[4], 0x5a);
	CHECK(memcmp(F.st.fxsave + 160, a.fxsave + 160, 256) == 0);
	CHECK_EQ_INT(memcmp(F.st.fxsave + 24, a.fxsave + 24, 4), 0);
	for (int i = 0; i < 8; i++)
		CHECK(memcmp(F.st.fxsave + 32 + 16 * i, a.fxsave + 32 + 16 * i, 10) == 0);
	/* Lengths and digits are checked exactly; nothing reaches the target otherwise. */
	int sets = F.set_calls;
	G[2 * MOTE_GDB_REGS_SIZE] = 0; /* one digit short: odd */
	CHECK_EQ_STR(ask(G), ack("E01"));
	G[2 * MOTE_GDB_REGS_SIZE - 1] = 0; /* one byte short */
	CHECK_EQ_STR(ask(G), ack("E01"));
	snprintf(G, sizeof(G), "G%.*s00", 2 * MOTE_GDB_REGS_SIZE - 1, g + 2); /* one too many */
	CHECK_EQ_STR(ask(G), ack("E01"));
	snprintf(G, sizeof(G), "G%.*s", 2 * MOTE_GDB_REGS_SIZE, g + 2);
	G[100] = 'x';
	CHECK_EQ_STR(ask(G), ack("E01"));
	CHECK_EQ_STR(ask("G"), ack("E01"));
	CHECK_EQ_INT(F.set_calls, sets);
}

TEST(registers_G_ignores_selectors_masks_flags)
{
	static char G[2 * MOTE_GDB_REGS_SIZE + 2];
	setup();
	expected_g(G + 1);
	G[0] = 'G';
	/* eflags at byte 136 with IF and IOPL set; cs at 140 written as 0x33. */
	memcpy(G + 1 + 2 * 136, "46320000", 8);
	memcpy(G + 1 + 2 * 140, "33000000", 8);
	CHECK_EQ_STR(ask(G), ack("OK"));
	CHECK_EQ_U64(F.st.rflags, 0x0044); /* IF, IOPL and bit 1 are not the guest's to set */
	CHECK_EQ_STR(ask("p12"), ack("23000000"));
}

TEST(registers_p_P)
{
	setup();
	/* P of rip (16 = 0x10), then p. */
	CHECK_EQ_STR(ask("P10=8877665544332211"), ack("OK"));
	CHECK_EQ_U64(F.st.rip, 0x1122334455667788);
	CHECK_EQ_STR(ask("p10"), ack("8877665544332211"));
	/* gdb's numbers vs gpr[]'s hardware order. */
	char want[32];
	hex_le(want, F.st.gpr[0], 8);
	CHECK_EQ_STR(ask("p0"), ack(want));
	hex_le(want, F.st.gpr[3], 8);
	CHECK_EQ_STR(ask("p1"), ack(want)); /* rbx */
	hex_le(want, F.st.gpr[4], 8);
	CHECK_EQ_STR(ask("p7"), ack(want)); /* rsp */
	hex_le(want, F.st.gpr[5], 8);
	CHECK_EQ_STR(ask("p6"), ack(want)); /* rbp */
	hex_le(want, F.st.gpr[15], 8);
	CHECK_EQ_STR(ask("pf"), ack(want));
	CHECK_EQ_STR(ask("P4=0100000000000000"), ack("OK"));
	CHECK_EQ_U64(F.st.gpr[6], 1); /* rsi */
	CHECK_EQ_STR(ask("p11"), ack("46000000")); /* rflags 0x44, and bit 1 */
	CHECK_EQ_STR(ask("p12"), ack("23000000"));
	CHECK_EQ_STR(ask("p13"), ack("1b000000"));
	CHECK_EQ_STR(ask("p17"), ack("1b000000"));
	CHECK_EQ_STR(ask("P12=33000000"), ack("OK")); /* accepted, ignored */
	CHECK_EQ_STR(ask("p12"), ack("23000000"));
	CHECK_EQ_STR(ask("P39=efcdab8967452301"), ack("OK"));
	CHECK_EQ_U64(F.st.fs_base, 0x0123456789abcdef);
	CHECK_EQ_STR(ask("p3a"), ack("efcdab0070000000"));
	/* Numbers out of range, wrong sizes, junk. */
	CHECK_EQ_STR(ask("p3b"), ack("E01"));
	CHECK_EQ_STR(ask("p100000000"), ack("E01"));
	CHECK_EQ_STR(ask("pffffffffffffffffff"), ack("E01"));
	CHECK_EQ_STR(ask("p-1"), ack("E01"));
	CHECK_EQ_STR(ask("p"), ack("E01"));
	CHECK_EQ_STR(ask("p1x"), ack("E01"));
	CHECK_EQ_STR(ask("P3b=00000000"), ack("E01"));
	CHECK_EQ_STR(ask("P10=88776655443322"), ack("E01"));
	CHECK_EQ_STR(ask("P10=887766554433221100"), ack("E01"));
	CHECK_EQ_STR(ask("P10=887766554433221"), ack("E01"));
	CHECK_EQ_STR(ask("P10=88776655443322zz"), ack("E01"));
	CHECK_EQ_STR(ask("P10"), ack("E01"));
	CHECK_EQ_U64(F.st.rip, 0x1122334455667788);
}

TEST(registers_fxsave_mapping)
{
	setup();
	uint8_t *fx = F.st.fxsave;
	char want[64];
	/* st0 (24): the 10 bytes at 32; a write leaves the slot's other 6 bytes alone. */
	hex_bytes(want, fx + 32, 10);
	CHECK_EQ_STR(ask("p18"), ack(want));
	uint8_t tail[6];
	memcpy(tail, fx + 42, 6);
	CHECK_EQ_STR(ask("P18=0000000000000080ff3f"), ack("OK")); /* 1.0 */
	CHECK_EQ_U64(fx[39], 0x80);
	CHECK_EQ_U64(fx[40] | fx[41] << 8, 0x3fff);
	CHECK(memcmp(fx + 42, tail, 6) == 0);
	/* st7 (31) at 32 + 112. */
	hex_bytes(want, fx + 144, 10);
	CHECK_EQ_STR(ask("p1f"), ack(want));
	/* xmm3 (43) at 160 + 48. */
	CHECK_EQ_STR(ask("P2b=00112233445566778899aabbccddeeff"), ack("OK"));
	for (int i = 0; i < 16; i++)
		CHECK_EQ_INT(fx[208 + i], i * 0x11);
	CHECK_EQ_STR(ask("p2b"), ack("00112233445566778899aabbccddeeff"));
	hex_bytes(want, fx + 160, 16);
	CHECK_EQ_STR(ask("p28"), ack(want));
	hex_bytes(want, fx + 160 + 15 * 16, 16);
	CHECK_EQ_STR(ask("p37"), ack(want));
	/* mxcsr (56) at 24. */
	CHECK_EQ_STR(ask("p38"), ack("801f0000"));
	CHECK_EQ_STR(ask("P38=a01f0000"), ack("OK"));
	CHECK_EQ_U64(fx[24] | fx[25] << 8, 0x1fa0);
	/* fctrl fstat fiseg fioff foseg fooff fop (32, 33, 35-39). */
	st_le(fx + 12, 0x0033, 2);
	st_le(fx + 8, 0xdeadbeef, 4);
	st_le(fx + 20, 0x002b, 2);
	st_le(fx + 16, 0x12345678, 4);
	st_le(fx + 6, 0xf9d8, 2); /* only 11 bits are an opcode */
	CHECK_EQ_STR(ask("p20"), ack("7f030000"));
	CHECK_EQ_STR(ask("p21"), ack("00380000"));
	CHECK_EQ_STR(ask("p23"), ack("33000000"));
	CHECK_EQ_STR(ask("p24"), ack("efbeadde"));
	CHECK_EQ_STR(ask("p25"), ack("2b000000"));
	CHECK_EQ_STR(ask("p26"), ack("78563412"));
	CHECK_EQ_STR(ask("p27"), ack("d8010000"));
	CHECK_EQ_STR(ask("P20=7f020000"), ack("OK"));
	CHECK_EQ_U64(fx[0] | fx[1] << 8, 0x027f);
	CHECK_EQ_STR(ask("P27=db070000"), ack("OK"));
	CHECK_EQ_U64(fx[6] | fx[7] << 8, 0x07db);
	CHECK_EQ_STR(ask("P23=23010000"), ack("OK"));
	CHECK_EQ_U64(fx[12] | fx[13] << 8, 0x0123);
}

static void put_st(uint8_t *fx, int i, uint64_t mant, unsigned exp)
{
	st_le(fx + 32 + 16 * i, mant, 8);
	st_le(fx + 40 + 16 * i, exp, 2);
}

TEST(registers_ftag_conversion)
{
	setup();
	uint8_t *fx = F.st.fxsave;
	/* TOP = 6: physical register r is ST((r - 6) mod 8). */
	st_le(fx + 2, 6u << 11, 2);
	put_st(fx, 0, 0x8000000000000000ull, 0x3fff); /* R6 = ST0: 1.0, valid (0) */
	put_st(fx, 1, 0, 0);			      /* R7 = ST1: zero (1) */
	put_st(fx, 2, 0x8000000000000000ull, 0x7fff); /* R0 = ST2: infinity, special (2) */
	put_st(fx, 3, 1, 0);			      /* R1 = ST3: denormal, special (2) */
	put_st(fx, 4, 0x4000000000000000ull, 0x3fff); /* R2 = ST4: unnormal, special (2) */
	put_st(fx, 5, 0x8000000000000000ull, 0x3fff); /* R3 = ST5 */
	put_st(fx, 6, 0, 0);			      /* R4 = ST6 */
	put_st(fx, 7, 0, 0);			      /* R5 = ST7 */
	fx[4] = 0xc7; /* R0 R1 R2 R6 R7 in use; R3-R5 empty (3) whatever they hold */
	/* R7..R0 = 01 00 11 11 11 10 10 10 */
	CHECK_EQ_STR(ask("p22"), ack("ea4f0000"));
	/* The sign bit is not part of the exponent: -1.0 is valid. */
	fx[4] = 0x08;
	put_st(fx, 5, 0x8000000000000000ull, 0xbfff);
	CHECK_EQ_STR(ask("p22"), ack("3fff0000"));
	/* TOP moves the mapping: with TOP 0, R3 is ST3, the denormal. */
	st_le(fx + 2, 0, 2);
	CHECK_EQ_STR(ask("p22"), ack("bfff0000"));
	/* Empty ones. */
	fx[4] = 0;
	CHECK_EQ_STR(ask("p22"), ack("ffff0000"));
	/* Writes keep only "empty or not" (what FXSAVE holds). */
	CHECK_EQ_STR(ask("P22=ea4f0000"), ack("OK"));
	CHECK_EQ_INT(fx[4], 0xc7);
	CHECK_EQ_STR(ask("P22=00000000"), ack("OK"));
	CHECK_EQ_INT(fx[4], 0xff);
	CHECK_EQ_STR(ask("P22=ff3f0000"), ack("OK")); /* R7 in use */
	CHECK_EQ_INT(fx[4], 0x80);
}

/* ---- Memory ---- */

TEST(memory_m)
{
	static char want[MOTE_GDB_PACKET_MAX + 1];
	setup();
	hex_bytes(want, F.mem, 16);
	CHECK_EQ_STR(ask("m200000,10"), ack(want));
	hex_bytes(want, F.mem + 0x1234, 3);
	CHECK_EQ_STR(ask("m201234,3"), ack(want));
	/* Capped so the reply fits PacketSize: 8192 bytes, 16384 hex digits. */
	hex_bytes(want, F.mem, MOTE_GDB_PACKET_MAX / 2);
	CHECK_EQ_STR(ask("m200000,ffffffff"), ack(want));
	CHECK_EQ_INT(F.last_read_len, MOTE_GDB_PACKET_MAX / 2);
	/* Up to the first unreadable page: a short reply. */
	hex_bytes(want, F.mem + MEM_SIZE - 0x10, 0x10);
	CHECK_EQ_STR(ask("m20fff0,40"), ack(want));
	hex_bytes(want, F.mem + MEM_SIZE - 0x1010, 0x1010);
	CHECK_EQ_STR(ask("m20eff0,2000"), ack(want));
	/* Nothing readable: an error. */
	CHECK_EQ_STR(ask("m210000,1"), ack("E14"));
	CHECK_EQ_STR(ask("m0,8"), ack("E14"));
	CHECK_EQ_STR(ask("m1fffff,2"), ack("E14"));
	/* The top of the address space: the length is clipped, never wrapped to 0. */
	CHECK_EQ_STR(ask("mffffffffffffffff,ffffffff"), ack("E14"));
	CHECK_EQ_U64(F.last_read_addr, 0xffffffffffffffffull);
	CHECK_EQ_INT(F.last_read_len, 1);
	CHECK_EQ_STR(ask("mfffffffffffffff0,100"), ack("E14"));
	CHECK_EQ_INT(F.last_read_len, 0x10);
	CHECK(!F.wrapped);
	/* Zero bytes: zero hex digits. */
	int reads = F.read_calls;
	CHECK_EQ_STR(ask("m200000,0"), "+$#00");
	/* Malformed. */
	CHECK_EQ_STR(ask("m200000"), ack("E01"));
	CHECK_EQ_STR(ask("m200000,"), ack("E01"));
	CHECK_EQ_STR(ask("m,10"), ack("E01"));
	CHECK_EQ_STR(ask("m200000,-1"), ack("E01"));
	CHECK_EQ_STR(ask("m-200000,1"), ack("E01"));
	CHECK_EQ_STR(ask("m200000,10x"), ack("E01"));
	CHECK_EQ_STR(ask("m10000000000000000,1"), ack("E01")); /* 65 bits */
	CHECK_EQ_STR(ask("m200000,10000000000000000"), ack("E01"));
	CHECK_EQ_STR(ask("m 200000,4"), ack("E01"));
	CHECK_EQ_INT(F.read_calls, reads);
	/* Leading zeros are fine. */
	hex_bytes(want, F.mem, 1);
	CHECK_EQ_STR(ask("m00000000000000000000200000,0001"), ack(want));
}

TEST(memory_M)
{
	setup();
	CHECK_EQ_STR(ask("M200000,4:0102a0FF"), ack("OK"));
	CHECK_EQ_INT(F.mem[0], 1);
	CHECK_EQ_INT(F.mem[1], 2);
	CHECK_EQ_INT(F.mem[2], 0xa0);
	CHECK_EQ_INT(F.mem[3], 0xff);
	CHECK_EQ_STR(ask("M20fffe,2:abcd"), ack("OK"));
	CHECK_EQ_INT(F.mem[MEM_SIZE - 1], 0xcd);
	int writes = F.write_calls;
	CHECK_EQ_STR(ask("M200000,0:"), ack("OK")); /* nothing to write */
	CHECK_EQ_INT(F.write_calls, writes);
	/* Odd digits, lengths that do not match, bad digits, no colon: E01, nothing written. */
	CHECK_EQ_STR(ask("M200000,2:010"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,2:01"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,1:0102"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,1:0g"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,1"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,1;01"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,ffffffffffffffff:01"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,-1:01"), ack("E01"));
	CHECK_EQ_STR(ask("Mffffffffffffffff,2:0102"), ack("E01")); /* would wrap */
	CHECK_EQ_INT(F.write_calls, writes);
	CHECK_EQ_INT(F.mem[0], 1);
	/* The target refuses: E14. */
	CHECK_EQ_STR(ask("M20ffff,2:0102"), ack("E14"));
	CHECK_EQ_STR(ask("Mffffffffffffffff,1:01"), ack("E14"));
	/* X too. */
	CHECK_EQ_STR(ask("X200010,3:abc"), ack("OK"));
	CHECK_EQ_INT(F.mem[0x10], 'a');
	CHECK_EQ_INT(F.mem[0x12], 'c');
	CHECK_EQ_STR(ask("X210000,1:a"), ack("E14"));
	CHECK_EQ_STR(ask("X200000,4:abc"), ack("E01"));
}

/* ---- Breakpoints ---- */

TEST(breakpoints)
{
	setup();
	CHECK_EQ_STR(ask("Z0,200670,1"), ack("OK"));
	CHECK_EQ_INT(F.nbps, 1);
	CHECK_EQ_U64(F.bps[0], 0x200670);
	CHECK_EQ_STR(ask("Z0,200680,1"), ack("OK"));
	CHECK_EQ_INT(F.nbps, 2);
	CHECK_EQ_STR(ask("z0,200670,1"), ack("OK"));
	CHECK_EQ_INT(F.nbps, 1);
	CHECK_EQ_U64(F.bps[0], 0x200680);
	CHECK_EQ_STR(ask("z0,200670,1"), ack("E01")); /* the target said no */
	CHECK_EQ_STR(ask("Z0,300000,1"), ack("E01"));
	CHECK_EQ_STR(ask("Z0,200670,2"), ack("E01")); /* an int3 is one byte */
	CHECK_EQ_STR(ask("Z0,200670"), ack("E01"));
	CHECK_EQ_STR(ask("Z0,200670,1;X2,0a"), ack("E01")); /* conditions were not offered */
	CHECK_EQ_STR(ask("Z0"), ack("E01"));
	CHECK_EQ_STR(ask("Z"), ack("E01"));
	CHECK_EQ_STR(ask("Zx,1,1"), ack("E01"));
	CHECK_EQ_STR(ask("Z0,-1,1"), ack("E01"));
	CHECK_EQ_INT(F.nbps, 1);
}

/* ---- The target description ---- */

/* Unescapes a qXfer reply's data after its 'm'/'l'. */
static size_t xfer_data(const char *reply, char *dst, size_t cap)
{
	size_t n = 0;
	for (const char *p = reply; *p && *p != '#' && n < cap; p++)
		dst[n++] = *p == '}' ? (char)(*++p ^ 0x20) : *p;
	return n;
}

TEST(target_xml_chunks)
{
	static char whole[MOTE_GDB_PACKET_MAX], pieces[MOTE_GDB_PACKET_MAX];
	setup();
	/* One big read: everything, marked last. */
	const char *r = ask("qXfer:features:read:target.xml:0,3fff");
	REQUIRE(strncmp(r, "+$l", 3) == 0);
	REQUIRE(well_formed((const uint8_t *)r, strlen(r), NULL));
	size_t nwhole = xfer_data(r + 3, whole, sizeof(whole) - 1);
	whole[nwhole] = 0;
	CHECK_EQ_STR(whole, mote_gdb_target_xml());
	/* 100-byte pieces: 'm' until the last, then 'l'; the same text. */
	size_t n = 0;
	for (size_t off = 0;; off += 100) {
		char q[64];
		snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,64", off);
		r = ask(q);
		REQUIRE(r[0] == '+' && r[1] == '$' && (r[2] == 'm' || r[2] == 'l'));
		size_t got = xfer_data(r + 3, pieces + n, sizeof(pieces) - 1 - n);
		CHECK(got == 100 || r[2] == 'l');
		n += got;
		if (r[2] == 'l')
			break;
		REQUIRE(n < sizeof(pieces) - 200);
	}
	pieces[n] = 0;
	CHECK_EQ_INT(n, nwhole);
	CHECK_EQ_STR(pieces, whole);
	/* Past the end, at the end: 'l' and nothing. */
	char q[64];
	snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,100", nwhole);
	CHECK_EQ_STR(ask(q), ack("l"));
	CHECK_EQ_STR(ask("qXfer:features:read:target.xml:ffffffffffffffff,100"), ack("l"));
	/* Other annexes, malformed requests. */
	CHECK_EQ_STR(ask("qXfer:features:read:64bit-core.xml:0,100"), ack("E00"));
	CHECK_EQ_STR(ask("qXfer:features:read::0,100"), ack("E00"));
	CHECK_EQ_STR(ask("qXfer:features:read:target.xml:0"), ack("E01"));
	CHECK_EQ_STR(ask("qXfer:features:read:target.xml:0,0"), ack("E01"));
	CHECK_EQ_STR(ask("qXfer:features:read:target.xml:0,-1"), ack("E01"));
	CHECK_EQ_STR(ask("qXfer:features:read:target.xml:,10"), ack("E01"));
}

TEST(target_xml_content)
{
	static const char *names[MOTE_GDB_NREGS] = {
		"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
		"r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
		"st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7", "fctrl", "fstat", "ftag",
		"fiseg", "fioff", "foseg", "fooff", "fop", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
		"xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
		"xmm15", "mxcsr", "fs_base", "gs_base"};
	/* The sizes g uses, in bytes. */
	static const int sizes[MOTE_GDB_NREGS] = {
		8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4,
		10, 10, 10, 10, 10, 10, 10, 10, 4, 4, 4, 4, 4, 4, 4, 4,
		16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 4, 8, 8};
	const char *x = mote_gdb_target_xml();
	CHECK(strncmp(x, "<?xml version=\"1.0\"?>", 21) == 0);
	CHECK_CONTAINS(x, "<target version=\"1.0\">");
	CHECK_CONTAINS(x, "<architecture>i386:x86-64</architecture>");
	const char *core = strstr(x, "<feature name=\"org.gnu.gdb.i386.core\">");
	const char *sse = strstr(x, "<feature name=\"org.gnu.gdb.i386.sse\">");
	const char *seg = strstr(x, "<feature name=\"org.gnu.gdb.i386.segments\">");
	CHECK(core && sse && seg && core < sse && sse < seg);
	size_t len = strlen(x);
	CHECK(len > 20 && strcmp(x + len - 10, "</target>\n") == 0);
	/* Tags balance; every '<' closes before the next opens. */
	int depth = 0, opens = 0, closes = 0;
	for (const char *p = x; *p; p++) {
		if (*p == '<')
			depth++, opens++;
		if (*p == '>')
			depth--, closes++;
		CHECK(depth == 0 || depth == 1);
	}
	CHECK_EQ_INT(opens, closes);
	CHECK(!strpbrk(x, "$#}*")); /* nothing to escape, though escaping works */
	/* Each <reg has a name and a bitsize; the names come in g's order. */
	int n = 0, total = 0;
	for (const char *p = strstr(x, "<reg "); p; p = strstr(p + 1, "<reg ")) {
		const char *end = strchr(p, '>');
		REQUIRE(end && n < MOTE_GDB_NREGS);
		char tag[256];
		snprintf(tag, sizeof(tag), "%.*s", (int)(end - p), p);
		const char *nm = strstr(tag, " name=\""), *bs = strstr(tag, " bitsize=\"");
		const char *ty = strstr(tag, " type=\"");
		REQUIRE(nm && bs && ty);
		char want[64];
		snprintf(want, sizeof(want), " name=\"%s\"", names[n]);
		if (strncmp(nm, want, strlen(want)) != 0)
			TEST_FAILF("register %d: %s, want %s", n, tag, names[n]);
		int bits = atoi(bs + 10);
		CHECK_EQ_INT(bits, 8 * sizes[n]);
		total += bits / 8;
		n++;
	}
	CHECK_EQ_INT(n, MOTE_GDB_NREGS);
	CHECK_EQ_INT(total, MOTE_GDB_REGS_SIZE);
	/* Register numbers the description pins: 0, 40 (xmm0), 57 (fs_base). */
	CHECK_CONTAINS(x, "name=\"xmm0\" bitsize=\"128\" type=\"vec128\" regnum=\"40\"");
	CHECK_CONTAINS(x, "name=\"fs_base\" bitsize=\"64\" type=\"int\" regnum=\"57\"");
	CHECK_CONTAINS(x, "name=\"st0\" bitsize=\"80\" type=\"i387_ext\"");
	CHECK_CONTAINS(x, "name=\"eflags\" bitsize=\"32\" type=\"i386_eflags\"");
	CHECK_CONTAINS(x, "<flags id=\"i386_eflags\" size=\"4\">");
	CHECK_CONTAINS(x, "<union id=\"vec128\">");
	CHECK_CONTAINS(x, "type=\"i386_mxcsr\"");
	/* And g's reply is exactly that long. */
	const char *g = ask("g");
	CHECK_EQ_INT(strlen(g), 2 + 2 * MOTE_GDB_REGS_SIZE + 3);
}

/* ---- Hostile input ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Runs a stream through a session as the stub would, checking every output; a resumed guest
 * runs for a random number of feeds before it stops. */
static void run_stream(const uint8_t *in, size_t n, size_t *packets, size_t *actions)
{
	size_t off = 0;
	bool running = false;
	while (off < n) {
		size_t chunk = 1 + next_rand() % 4096, used = 0, npk = 0;
		if (chunk > n - off)
			chunk = n - off;
		enum mote_gdb_action a = mote_gdb_feed(&S, in + off, chunk, &used, &OUT);
		REQUIRE(used > 0 && used <= chunk);
		REQUIRE(OUT.len <= MOTE_GDB_OUT_MAX && !OUT.truncated);
		REQUIRE(well_formed(OUT.data, OUT.len, &npk));
		*packets += npk;
		OUT.len = 0;
		off += used;
		if (a != MOTE_GDB_NONE)
			(*actions)++;
		if (a == MOTE_GDB_CONTINUE || a == MOTE_GDB_STEP)
			running = true;
		if (a == MOTE_GDB_INTERRUPT)
			REQUIRE(running);
		if (a == MOTE_GDB_KILL || a == MOTE_GDB_DETACH) {
			mote_gdb_session_init(&S, &fake_ops, &F); /* a new connection */
			running = false;
		}
		if (running && (a == MOTE_GDB_INTERRUPT || next_rand() % 2)) {
			mote_gdb_stop_reply(&S, 5, next_rand() & 1, &OUT);
			REQUIRE(well_formed(OUT.data, OUT.len, &npk) && npk == 1);
			OUT.len = 0;
			running = false;
		}
		REQUIRE(F.nbps <= MAX_BPS && !F.wrapped);
	}
}

TEST(hostile_random_bytes)
{
	static uint8_t in[1 << 20];
	setup();
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)next_rand();
	size_t packets = 0, actions = 0;
	run_stream(in, sizeof(in), &packets, &actions);
	CHECK(S.pkt_len <= MOTE_GDB_PACKET_MAX);
	setup();
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
}

TEST(hostile_random_packets)
{
	static uint8_t in[1 << 20];
	static const char alpha[] = "gGmMpPXZzcsCSvqQHTkD?!0123456789abcdefABCDEF,:;=-.}*$#\x03+"
				    "xfeaturesread:target.xmlCont;Kill";
	static const char *heads[] = {"m", "M", "p", "P", "G", "X", "Z0,", "z0,", "c", "s",
				      "C", "S", "vCont;", "qXfer:features:read:target.xml:",
				      "H", "T", "qSupported:", "vKill;", "QStartNoAckMode", "?",
				      "g", "k", "D"};
	setup();
	size_t n = 0;
	while (n < sizeof(in) - 64) {
		/* A packet with a random body, its checksum right most of the time, and some
		 * raw bytes between packets. */
		uint8_t body[512];
		const char *h = heads[next_rand() % (sizeof(heads) / sizeof(heads[0]))];
		size_t blen = strlen(h);
		memcpy(body, h, blen);
		size_t extra = next_rand() % 48;
		if (next_rand() % 16 == 0)
			extra = next_rand() % (sizeof(body) - blen);
		for (size_t i = 0; i < extra; i++)
			body[blen++] = next_rand() % 8
					       ? (uint8_t)alpha[next_rand() % (sizeof(alpha) - 1)]
					       : (uint8_t)next_rand();
		if (n + blen + 8 >= sizeof(in))
			break;
		unsigned sum = 0;
		in[n++] = '$';
		for (size_t i = 0; i < blen; i++)
			sum += in[n++] = body[i];
		if (next_rand() % 8 == 0)
			sum++;
		n += (size_t)sprintf((char *)in + n, "#%02x", sum & 0xff);
		for (size_t k = next_rand() % 4; k > 0 && n < sizeof(in) - 64; k--)
			in[n++] = (uint8_t)next_rand();
	}
	size_t packets = 0, actions = 0;
	run_stream(in, n, &packets, &actions);
	CHECK(packets > 1000);
	CHECK(actions > 10);
	/* Memory outside the fake's buffer was never touched (it would have crashed under ASan),
	 * and the session still works. */
	setup();
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
}

TEST(hostile_numbers)
{
	setup();
	CHECK_EQ_STR(ask("mffffffffffffffff,ffffffff"), ack("E14"));
	CHECK_EQ_STR(ask("mffffffffffffffff,ffffffffffffffff"), ack("E14"));
	CHECK_EQ_STR(ask("m0,ffffffffffffffff"), ack("E14"));
	CHECK_EQ_INT(F.last_read_len, 4096); /* a page at a time after the whole failed */
	CHECK_EQ_STR(ask("pffffffff"), ack("E01"));
	CHECK_EQ_STR(ask("p7fffffffffffffff"), ack("E01"));
	CHECK_EQ_STR(ask("Pffffffff=00"), ack("E01"));
	CHECK_EQ_STR(ask("m200000,-10"), ack("E01"));
	CHECK_EQ_STR(ask("M200000,-10:00"), ack("E01"));
	CHECK_EQ_STR(ask("Mffffffffffffffff,ffffffffffffffff:00"), ack("E01"));
	CHECK_EQ_STR(ask("Xffffffffffffffff,ffffffffffffffff:0"), ack("E01"));
	CHECK_EQ_STR(ask("Z0,ffffffffffffffff,1"), ack("E01"));
	CHECK_EQ_STR(ask("Zffffffffffffffffff,0,1"), ack("E01"));
	CHECK_EQ_STR(ask("Z0,1ffffffffffffffff,1"), ack("E01"));
	CHECK_EQ_STR(ask("C1ffffffffffffffff"), ack("E01"));
	CHECK_EQ_STR(ask("Tp1ffffffffffffffff.1"), ack("E01"));
	CHECK_EQ_STR(ask("Tp7fffffffffffffff.1"), ack("E01"));
	CHECK_EQ_STR(ask("vCont;c:p10000000000000000.1"), ack("E01"));
	CHECK(!F.wrapped);
	CHECK_EQ_STR(ask("qXfer:features:read:target.xml:ffffffffffffffff,ffffffffffffffff"),
		     ack("l"));
	const char *r = ask("qXfer:features:read:target.xml:10,ffffffffffffffff");
	CHECK(strncmp(r, "+$l", 3) == 0); /* the rest, capped to fit */
	CHECK_EQ_INT(strlen(r), 3 + strlen(mote_gdb_target_xml()) - 16 + 3);
}

TEST(missing_target_ops)
{
	struct mote_gdb_target_ops none = {0};
	mote_gdb_session_init(&S, &none, NULL);
	OUT.len = 0;
	CHECK_EQ_STR(ask("g"), ack("E01"));
	CHECK_EQ_STR(ask("m200000,4"), ack("E01"));
	CHECK_EQ_STR(ask("c"), ack("E01"));
	CHECK_EQ_STR(ask("qC"), ack("QC1"));
	mote_gdb_stop_reply(&S, 5, false, &OUT);
	OUT.data[OUT.len] = 0;
	CHECK_EQ_STR((const char *)OUT.data, pkt("T05thread:1;"));
	OUT.len = 0;
	mote_gdb_session_init(&S, NULL, NULL);
	CHECK_EQ_STR(ask("g"), ack("E01"));
	CHECK_EQ_INT(mote_gdb_feed(&S, NULL, 5, NULL, &OUT), MOTE_GDB_NONE);
}

TEST_MAIN()
