/* The bare-KVM floor every mote benchmark is compared with, measured with the
 * same KVM backend but none of mote's sandbox machinery: no ELF, no CPUID
 * trimming, no guest runtime, a two-instruction guest. */
#include "bench/floor.h"

#include <string.h>
#include <sys/mman.h>

#include "host/elf.h"
#include "host/internal.h"
#include "host/kvm/kvm.h"

#define FLOOR_MEM (MOTE_IMAGE_BASE + 128 * 1024)

struct floor_vm {
	struct mote_vm vm;
	uint8_t *mem;
};

/* Guest: out %al, $DONE ; jmp back to the out. */
static const uint8_t floor_code[] = {0xe6, MOTE_PORT_DONE, 0xeb, 0xfc};

static int floor_boot(struct floor_vm *f)
{
	f->mem = mmap(NULL, FLOOR_MEM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (f->mem == MAP_FAILED)
		return -MOTE_ENOMEM;
	memcpy(f->mem + MOTE_IMAGE_BASE, floor_code, sizeof(floor_code));
	struct mote_elf_image img = {.entry = MOTE_IMAGE_BASE, .nsegments = 1};
	img.segments[0] = (struct mote_elf_segment){MOTE_IMAGE_BASE, 4096, 0, 4096,
						    MOTE_SEG_R | MOTE_SEG_X};
	struct mote_config cfg;
	mote_config_defaults(&cfg);
	cfg.stack_size = 16384;
	cfg.input_size = cfg.output_size = cfg.log_size = 4096;
	cfg.heap_size = 4096;
	struct mote_layout lay;
	uint64_t end;
	if (mote_layout_compute(&cfg, MOTE_IMAGE_BASE + 4096, &lay, NULL, 0) ||
	    lay.mem_size > FLOOR_MEM || mote_layout_write_system(f->mem, &lay, &img, &end, NULL, 0))
		return -MOTE_EINVAL;
	int rc = mote_vm_create(&f->vm, f->mem, FLOOR_MEM, false, false, NULL, 0);
	if (rc)
		return rc;
	struct mote_cpu_state cpu;
	struct mote_vcpu_state st;
	mote_layout_initial_state(&lay, MOTE_IMAGE_BASE, &cpu);
	mote_kvm_full_state(&cpu, &st);
	if (mote_vm_set_state(&f->vm, &st))
		return -MOTE_EKVM;
	struct mote_exit ex;
	if (mote_vm_run(&f->vm, &ex) || ex.kind != MOTE_EXIT_IO || ex.port != MOTE_PORT_DONE)
		return -MOTE_EKVM;
	return 0;
}

static void floor_free(struct floor_vm *f)
{
	mote_vm_destroy(&f->vm);
	munmap(f->mem, FLOOR_MEM);
}

int bench_floor_coldstart(double *us)
{
	struct floor_vm f;
	memset(&f, 0, sizeof(f));
	double t0 = bench_now_us();
	int rc = floor_boot(&f);
	*us = bench_now_us() - t0;
	floor_free(&f);
	return rc;
}

int bench_floor_exit(int iterations, double *us_per_exit)
{
	struct floor_vm f;
	memset(&f, 0, sizeof(f));
	int rc = floor_boot(&f);
	if (rc) {
		floor_free(&f);
		return rc;
	}
	double t0 = bench_now_us();
	for (int i = 0; i < iterations; i++) {
		struct mote_exit ex;
		if (mote_vm_run(&f.vm, &ex) || ex.kind != MOTE_EXIT_IO) {
			floor_free(&f);
			return -MOTE_EKVM;
		}
	}
	*us_per_exit = (bench_now_us() - t0) / iterations;
	floor_free(&f);
	return 0;
}

double bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}
