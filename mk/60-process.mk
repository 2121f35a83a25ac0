# The process backend's stub (src/host/process/stub.c): a static program with
# no libc, linked far above guest memory, embedded into libmote by
# src/host/process/process.c with .incbin. -mgeneral-regs-only: it must not
# touch the guest's x87/SSE registers; -fpie: it lives above 4 GiB, so all
# its addressing is rip-relative; -fno-reorder-blocks-and-partition: no
# part of a setup function may move out of the setup code's pages.

STUB_ELF := $(BUILD)/process/mote-stub
STUB_SRCS := src/host/process/stub.c src/host/process/stub_x86_64.S
STUB_CFLAGS := -std=c11 $(WARN) -O2 -g -ffreestanding -fpie -fno-stack-protector \
	       -fno-asynchronous-unwind-tables -mgeneral-regs-only -mfsgsbase -fcf-protection=none \
	       -fno-builtin -fno-reorder-blocks-and-partition -Iinclude -Isrc
STUB_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=4096 \
		-Wl,-z,noexecstack -T src/host/process/stub.ld

$(STUB_ELF): $(STUB_SRCS) src/host/process/stub.ld $(HEADERS)
	@mkdir -p $(@D)
	$(GUEST_CC) $(STUB_CFLAGS) $(STUB_LDFLAGS) -o $@ $(STUB_SRCS)

# libmote embeds it without debug information.
STUB_EMBED := $(BUILD)/process/mote-stub.embed
$(STUB_EMBED): $(STUB_ELF)
	objcopy --strip-debug $< $@

$(BUILD)/host/process/process.o: $(STUB_EMBED)
$(BUILD)/host/process/process.o: private HOST_CFLAGS += -DMOTE_STUB_ELF=\"$(STUB_EMBED)\"

ALL_TARGETS += $(STUB_ELF) $(STUB_EMBED)
