/* What a guest sees of CPUID, the same on every backend: the vendor, the
 * extended leaves (long mode, NX, the brand string) and the address sizes.
 * Leaves 1 and 7 read as zero, so guests target baseline x86-64 (SSE2) and
 * build with -mno-avx. The KVM backend gives KVM this table; the process
 * backend answers CPUID itself where the CPU can fault on it. */
#include <cpuid.h>
#include <pthread.h>
#include <string.h>

#include "host/internal.h"

#define BIT(n) (1u << (n))
/* 0x80000001: LAHF, LZCNT, PREFETCHW; SYSCALL, NX, RDTSCP, long mode. */
static const uint32_t ext1_ecx = BIT(0) | BIT(5) | BIT(8);
static const uint32_t ext1_edx = BIT(11) | BIT(20) | BIT(27) | BIT(29);

bool mote_cpuid_filter(uint32_t leaf, uint32_t regs[4])
{
	switch (leaf) {
	case 0:
		if (regs[0] > 7)
			regs[0] = 7;
		return true;
	case 0x80000000:
		if (regs[0] > 0x80000008)
			regs[0] = 0x80000008;
		return true;
	case 0x80000001:
		regs[2] &= ext1_ecx;
		regs[3] &= ext1_edx;
		return true;
	case 0x80000002:
	case 0x80000003:
	case 0x80000004:
	case 0x80000008:
		return true;
	default:
		return false;
	}
}

/* Asked once: CPUID exits to the hypervisor inside a VM (~5 us here), and
 * every start from a snapshot compares vendors. */
static char cpu_vendor[16];
static pthread_once_t cpu_vendor_once = PTHREAD_ONCE_INIT;

static void read_cpu_vendor(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(0, &a, &b, &c, &d)) {
		memcpy(cpu_vendor, "unknown", 7);
		return;
	}
	memcpy(cpu_vendor, &b, 4);
	memcpy(cpu_vendor + 4, &d, 4);
	memcpy(cpu_vendor + 8, &c, 4);
}

void mote_cpu_vendor(char out[16])
{
	pthread_once(&cpu_vendor_once, read_cpu_vendor);
	memcpy(out, cpu_vendor, 16);
}
