# Benchmarks: compiled into the mote binary (`mote bench`); the bench guest is
# embedded with .incbin so an installed mote needs no extra files.

BENCH_GUEST := $(BUILD)/guests-bench/bench_guest.elf
BENCH_SRCS  := bench/bench.c bench/bench_snap.c bench/floor.c bench/floor_proc.c
BENCH_OBJS  := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%.o)

$(BENCH_GUEST): bench/guest/bench_guest.c $(LIBGUEST) src/guest/guest.ld $(HEADERS)
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(LIBGUEST) -lgcc

$(BUILD)/bench/%.o: bench/%.c bench/bench.h bench/bench_int.h bench/floor.h $(HEADERS) $(BENCH_GUEST)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -I. -DMOTE_BENCH_GUEST=\"$(BENCH_GUEST)\" -c $< -o $@

# The process backend's floor child: a static program with no libc,
# embedded into the mote binary (bench/floor_proc.c).
FLOOR_CHILD := $(BUILD)/bench/floor-child
$(FLOOR_CHILD): bench/floor_proc_child.c bench/floor_proc.h src/host/process/syscall.h
	@mkdir -p $(@D)
	$(GUEST_CC) -std=c11 $(WARN) -O2 -ffreestanding -fno-stack-protector -fno-pie -no-pie \
		-fno-asynchronous-unwind-tables -fcf-protection=none -I. -Isrc -nostdlib -static \
		-Wl,--build-id=none -Wl,-z,noexecstack -o $@ $<

$(BUILD)/bench/floor_proc.o: $(FLOOR_CHILD)
$(BUILD)/bench/floor_proc.o: private HOST_CFLAGS += -DMOTE_FLOOR_CHILD=\"$(FLOOR_CHILD)\"
