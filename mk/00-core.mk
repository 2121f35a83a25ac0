# libmote (host library), the guest SDK, the CLI and test guests.

LIB_SRCS := src/host/common.c src/host/config.c src/host/elf.c src/host/kvm/kvm.c \
	    src/host/kvm/kvm_x86_64.c src/host/process/process.c src/host/backend.c \
	    src/host/cpuid.c \
	    src/host/layout.c src/host/sandbox.c src/host/snapshot.c src/host/snapfile.c \
	    src/host/snapfile_hash.c src/host/snapfile_cache.c src/host/snapfile_write.c \
	    src/host/mapping.c src/host/wasm_sandbox.c src/host/sha256x16.c \
	    src/host/wasi_fs.c src/host/wasi_host.c src/host/guest_info.c src/host/symbolize.c \
	    src/host/debug.c src/host/coredump.c \
	    src/host/gdb_stub.c src/host/gdb_proto.c src/host/wasm_compile.c
# The Wasm engine is in the library too, for mote_wasm_compile (validation
# and translation), built with hidden symbols like the rest.
LIB_ENGINE_OBJS := $(patsubst src/wasm/%.c,$(BUILD)/host-wasm/%.o,$(sort $(wildcard src/wasm/*.c)))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/%.o) $(LIB_ENGINE_OBJS)

GUEST_SRCS := src/guest/runtime.c src/guest/malloc.c src/guest/libc.c
GUEST_OBJS := $(GUEST_SRCS:src/%.c=$(BUILD)/guest-obj/%.o)

LIBMOTE_A  := $(BUILD)/lib/libmote.a
LIBMOTE_SO := $(BUILD)/lib/libmote.so
LIBGUEST   := $(BUILD)/lib/libmote_guest.a
MOTE_CC    := $(BUILD)/bin/mote-cc
MOTE_BIN   := $(BUILD)/bin/mote

ALL_TARGETS += $(LIBMOTE_A) $(LIBMOTE_SO) $(LIBGUEST) $(MOTE_CC) $(MOTE_BIN)

HEADERS := $(wildcard include/*.h include/mote/*.h src/common/*.h src/host/*.h src/host/*/*.h \
	     src/guest/*.h)

$(BUILD)/host/%.o: src/host/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/host-wasm/%.o: src/wasm/%.c $(wildcard src/wasm/*.h)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -fno-math-errno -Isrc/wasm -fvisibility=hidden -c $< -o $@

# Where mote_wasm_compile finds its SDK (mk/50-wasm-runtime.mk).
$(BUILD)/host/wasm_compile.o: private HOST_CFLAGS += -Isrc/wasm \
	-DMOTE_WASM_SDK_BUILD=\"$(CURDIR)/$(BUILD)/sdk\" -DMOTE_WASM_SDK_INSTALL=\"$(PREFIX)/share/mote/sdk\"


$(LIBMOTE_A): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIBMOTE_SO): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libmote.so.0 $(HOST_LDFLAGS) -o $@ $^ $(HOST_LIBS)

$(BUILD)/guest-obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(LIBGUEST): $(GUEST_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# In-tree mote-cc: points at this tree's headers, library and linker script.
$(MOTE_CC): tools/mote-cc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@INCLUDE@|$(CURDIR)/include|' -e 's|@LIB@|$(CURDIR)/$(BUILD)/lib|' \
	    -e 's|@LDSCRIPT@|$(CURDIR)/src/guest/guest.ld|' -e 's|@CC@|$(GUEST_CC)|' $< > $@
	chmod +x $@

# Test guests: tests/guests/NAME/*.c -> $(BUILD)/guests/NAME.elf
GUEST_DIRS := $(sort $(dir $(wildcard tests/guests/*/*.c)))
TEST_GUESTS += $(foreach d,$(GUEST_DIRS),$(BUILD)/guests/$(notdir $(patsubst %/,%,$(d))).elf)
ALL_TARGETS += $(TEST_GUESTS)

.SECONDEXPANSION:
$(BUILD)/guests/%.elf: $$(wildcard tests/guests/%/*.c) $(LIBGUEST) src/guest/guest.ld $(HEADERS)
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(filter %.c,$^) $(LIBGUEST) -lgcc

# Host tests: tests/test_*.c linked with libmote.a (test_elf has its own rule).
# Those that start sandboxes go in SANDBOX_TESTS: `make test` runs them once
# per backend (tests/run.sh). FILE_TESTS only read and write files.
CORE_TESTS := $(filter-out tests/test_elf.c,$(wildcard tests/test_*.c))
FILE_TESTS := $(BUILD)/tests/test_snapfile $(BUILD)/tests/test_symbolize \
	      $(BUILD)/tests/test_gdb_proto
TESTS += $(FILE_TESTS)
SANDBOX_TESTS += $(filter-out $(FILE_TESTS),$(CORE_TESTS:tests/%.c=$(BUILD)/tests/%))

$(BUILD)/tests/test_%: tests/test_%.c tests/test.h $(LIBMOTE_A) $(TEST_GUESTS)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -DMOTE_BUILD_DIR=\"$(BUILD)\" -o $@ $< $(LIBMOTE_A) \
		$(HOST_LDFLAGS) $(HOST_LIBS)
