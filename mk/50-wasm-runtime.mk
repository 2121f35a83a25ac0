# Wasm sandboxes: the runtime guest (mote's WebAssembly engine, src/wasm,
# built as a guest around src/guest-wasm/runtime.c and its WASI, wasi.c),
# embedded into libmote by
# src/host/wasm_sandbox.c with .incbin; the test modules of
# tests/test_wasm_sandbox.c; the cold-start benchmark.

WASMRT_ELF := $(BUILD)/guests-wasm/wasm_runtime.elf
# The translator (aot.c) runs on the host only.
WASMRT_ENGINE_SRCS := $(filter-out src/wasm/aot.c,$(sort $(wildcard src/wasm/*.c)))
WASMRT_ENGINE_HDRS := $(wildcard src/wasm/*.h)
WASMRT_OBJS := $(patsubst src/wasm/%.c,$(BUILD)/guest-wasm/engine/%.o,$(WASMRT_ENGINE_SRCS)) \
	       $(BUILD)/guest-wasm/runtime.o $(BUILD)/guest-wasm/wasi.o
# The engine's own flags (see mk/wasm.mk): -fno-math-errno keeps its float
# helpers inline, which a freestanding guest needs (there is no libm).
WASMRT_CFLAGS := $(GUEST_CFLAGS) -fno-math-errno -Isrc/wasm

$(BUILD)/guest-wasm/engine/%.o: src/wasm/%.c $(WASMRT_ENGINE_HDRS)
	@mkdir -p $(@D)
	$(GUEST_CC) $(WASMRT_CFLAGS) -c $< -o $@

$(BUILD)/guest-wasm/%.o: src/guest-wasm/%.c src/guest-wasm/wasi.h $(WASMRT_ENGINE_HDRS) $(HEADERS)
	@mkdir -p $(@D)
	$(GUEST_CC) $(WASMRT_CFLAGS) -c $< -o $@

$(WASMRT_ELF): $(WASMRT_OBJS) $(LIBGUEST) src/guest/guest.ld
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(WASMRT_OBJS) $(LIBGUEST) -lgcc

# libmote embeds the runtime without its debug information (the ELF above
# keeps it, for gdb): the library object depends on the stripped copy.
WASMRT_EMBED := $(BUILD)/guests-wasm/wasm_runtime.embed.elf
$(WASMRT_EMBED): $(WASMRT_ELF)
	objcopy --strip-debug $< $@

$(BUILD)/host/wasm_sandbox.o: $(WASMRT_EMBED)
$(BUILD)/host/wasm_sandbox.o: private HOST_CFLAGS += -DMOTE_WASM_RUNTIME_ELF=\"$(WASMRT_EMBED)\"

ALL_TARGETS += $(WASMRT_ELF) $(WASMRT_EMBED)

# The runtime as a guest library, for modules compiled ahead of time:
# mote_wasm_compile links a module's translation with it (whole, since
# nothing refers to the runtime's guest functions by name).
WASMRT_LIB := $(BUILD)/lib/libmote_wasmrt.a
$(WASMRT_LIB): $(WASMRT_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# The SDK mote_wasm_compile uses (src/host/wasm_compile.c): mote-cc, the
# headers translated code includes, the runtime library. `make install`
# installs the same layout as $(PREFIX)/share/mote/sdk.
WASM_SDK := $(BUILD)/sdk
WASM_SDK_STAMP := $(WASM_SDK)/.stamp
$(WASM_SDK_STAMP): $(WASMRT_LIB) $(MOTE_CC) src/wasm/aot_abi.h src/wasm/fmath.h
	@mkdir -p $(WASM_SDK)/include $(WASM_SDK)/lib
	cp src/wasm/aot_abi.h src/wasm/fmath.h $(WASM_SDK)/include/
	cp $(WASMRT_LIB) $(WASM_SDK)/lib/
	cp $(MOTE_CC) $(WASM_SDK)/mote-cc
	touch $@
ALL_TARGETS += $(WASMRT_LIB) $(WASM_SDK_STAMP)

install: install-wasm-sdk
install-wasm-sdk: $(WASM_SDK_STAMP) $(BUILD)/install/mote-cc
	install -d $(DESTDIR)$(SHAREDIR)/sdk/include $(DESTDIR)$(SHAREDIR)/sdk/lib
	install -m 644 src/wasm/aot_abi.h src/wasm/fmath.h $(DESTDIR)$(SHAREDIR)/sdk/include/
	install -m 644 $(WASMRT_LIB) $(DESTDIR)$(SHAREDIR)/sdk/lib/
	install -m 755 $(BUILD)/install/mote-cc $(DESTDIR)$(SHAREDIR)/sdk/mote-cc
.PHONY: install-wasm-sdk

# The public header is installed next to mote.h.
install: install-wasm-header
install-wasm-header:
	install -d $(DESTDIR)$(INCDIR)/mote
	install -m 644 include/mote/wasm.h $(DESTDIR)$(INCDIR)/mote/
.PHONY: install-wasm-header

# Test modules: tests/wasm-modules/NAME.c -> $(BUILD)/wasm-modules/NAME.wasm
# (clang --target=wasm32, no libc); wasi_NAME.c are WASI commands built
# against Debian's wasi-libc (headers and libraries under /usr; compiler-rt
# for wasm32 is not installed, hence -nodefaultlibs -lc).
WASM_CLANG ?= clang
WASI_SYSROOT ?= /usr
WASM_TEST_MODULE_SRCS := $(sort $(wildcard tests/wasm-modules/*.c))
WASM_TEST_MODULES := $(patsubst tests/wasm-modules/%.c,$(BUILD)/wasm-modules/%.wasm,\
		     $(WASM_TEST_MODULE_SRCS))

$(BUILD)/wasm-modules/%.wasm: tests/wasm-modules/%.c
	@mkdir -p $(@D)
	$(WASM_CLANG) --target=wasm32 -nostdlib -Wl,--no-entry -Wl,--export-all -O2 -o $@ $<

$(BUILD)/wasm-modules/import_%.wasm: tests/wasm-modules/import_%.c
	@mkdir -p $(@D)
	$(WASM_CLANG) --target=wasm32 -nostdlib -Wl,--no-entry -Wl,--export-all -O2 \
		-Wl,--import-memory -Wl,--import-table -o $@ $<

# wasi-libc's sleeps use compiler-rt's 128-bit multiply (libclang-rt-14-dev-wasm32).
WASI_BUILTINS = $(shell $(WASM_CLANG) --target=wasm32-wasi -print-libgcc-file-name)
$(BUILD)/wasm-modules/wasi_%.wasm: tests/wasm-modules/wasi_%.c tests/wasm-modules/errno_names.h
	@mkdir -p $(@D)
	$(WASM_CLANG) --target=wasm32-wasi --sysroot=$(WASI_SYSROOT) -O2 -nodefaultlibs -o $@ $< -lc \
		$(WASI_BUILTINS)

$(BUILD)/tests/test_wasm_sandbox: $(WASM_TEST_MODULES) $(MOTE_BIN) tests/wasm_imports.h
$(BUILD)/tests/test_wasm_aot: $(WASM_TEST_MODULES) $(MOTE_BIN) $(WASM_SDK_STAMP) tests/wasm_imports.h

# Benchmark (not part of `make`): cold start of a Wasm sandbox from a
# snapshot with the module loaded vs creating one and loading the module,
# for a small module and a generated ~1 MiB one. `make wasm-sandbox-bench`.
WASM_SB_BENCH := $(BUILD)/bench/wasm_sandbox_bench
WASM_SB_BENCH_DIR := $(BUILD)/bench/wasm-sandbox
WASM_SB_BENCH_FLAGS := --target=wasm32 -nostdlib -O2 -Wl,--no-entry -Wl,--export=add

$(WASM_SB_BENCH_DIR)/big.c: bench/wasm-sandbox/gen_big.sh
	@mkdir -p $(@D)
	sh $< 4400 > $@

$(WASM_SB_BENCH_DIR)/big.wasm: $(WASM_SB_BENCH_DIR)/big.c
	$(WASM_CLANG) $(WASM_SB_BENCH_FLAGS) -Wl,--export=run -o $@ $<

$(WASM_SB_BENCH_DIR)/small.wasm: bench/wasm-sandbox/small.c
	@mkdir -p $(@D)
	$(WASM_CLANG) $(WASM_SB_BENCH_FLAGS) -Wl,--export=fib -o $@ $<

$(WASM_SB_BENCH_DIR)/padded.elf: bench/wasm-sandbox/padded.c $(MOTE_CC) $(LIBGUEST)
	@mkdir -p $(@D)
	$(MOTE_CC) -Wall -Wextra -Werror -o $@ $<

$(WASM_SB_BENCH): bench/wasm-sandbox/wasm_sandbox_bench.c $(LIBMOTE_A) $(WASM_SDK_STAMP) \
		  $(WASM_SB_BENCH_DIR)/small.wasm $(WASM_SB_BENCH_DIR)/big.wasm \
		  $(WASM_SB_BENCH_DIR)/padded.elf $(BUILD)/examples/hello.elf
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -DWASM_SANDBOX_BENCH_DIR=\"$(WASM_SB_BENCH_DIR)\" \
		-DWASM_SANDBOX_BENCH_GUEST=\"$(BUILD)/examples/hello.elf\" \
		-DWASM_SANDBOX_BENCH_PADDED=\"$(WASM_SB_BENCH_DIR)/padded.elf\" -o $@ $< \
		$(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)

BENCHES += $(WASM_SB_BENCH)

wasm-sandbox-bench: $(WASM_SB_BENCH)
	$(WASM_SB_BENCH) --runs 21
.PHONY: wasm-sandbox-bench

# test_wasm_compiled: tests/test_wasm_sandbox.c again, on every test module
# compiled ahead of time into MODULES/NAME.elf (the cache in test-cache keeps
# rebuilds cheap). A sandbox-level test: `make test` runs it per backend.
WASM_TEST_ELFS := $(WASM_TEST_MODULES:.wasm=.elf)
$(BUILD)/wasm-modules/%.elf: $(BUILD)/wasm-modules/%.wasm $(MOTE_BIN) $(WASM_SDK_STAMP)
	MOTE_CACHE_DIR=$(CURDIR)/$(BUILD)/test-cache $(MOTE_BIN) wasm compile $< -o $@

$(BUILD)/tests/test_wasm_compiled: tests/test_wasm_sandbox.c tests/test.h tests/wasm_imports.h $(LIBMOTE_A) \
		$(TEST_GUESTS) $(WASM_TEST_MODULES) $(WASM_TEST_ELFS) $(MOTE_BIN)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -DMOTE_TEST_COMPILED -DMOTE_BUILD_DIR=\"$(BUILD)\" -o $@ $< \
		$(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)
SANDBOX_TESTS += $(BUILD)/tests/test_wasm_compiled
