# mote WebAssembly engine (src/wasm): library, spec-test runner, API tests,
# fuzzer and benchmark. Included by the top-level Makefile.

WASM_SRCS := $(sort $(wildcard src/wasm/*.c))
WASM_HDRS := $(wildcard src/wasm/*.h)
WASM_OBJS := $(patsubst src/wasm/%.c,$(BUILD)/wasm/%.o,$(WASM_SRCS))
WASM_LIB  := $(BUILD)/libmotewasm.a
# The engine is freestanding; -fno-math-errno keeps float helpers inline.
WASM_CFLAGS := $(HOST_CFLAGS) -fno-math-errno -Isrc/wasm

$(BUILD)/wasm/%.o: src/wasm/%.c $(WASM_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WASM_CFLAGS) -c $< -o $@

$(WASM_LIB): $(WASM_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $(WASM_OBJS)

$(BUILD)/tests/wasm_spec: tests/wasm/spec_runner.c $(WASM_LIB) $(WASM_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WASM_CFLAGS) $< $(WASM_LIB) -o $@ $(HOST_LDFLAGS)

$(BUILD)/tests/test_wasm_api: tests/wasm/test_wasm_api.c $(WASM_LIB) $(WASM_HDRS) tests/test.h
	@mkdir -p $(@D)
	$(CC) $(WASM_CFLAGS) -Itests $< $(WASM_LIB) -o $@ $(HOST_LDFLAGS)

# The same runner, executing the modules inside mote Wasm sandboxes (a subset).
$(BUILD)/tests/wasm_spec_sandbox: tests/wasm/spec_runner.c $(LIBMOTE_A) $(WASM_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WASM_CFLAGS) -DSPEC_IN_SANDBOX $< -o $@ $(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)

# And with every module compiled ahead of time (--compiled): a subset here,
# the whole suite with `make wasm-spec-compiled`.
$(BUILD)/tests/wasm_spec_compiled: tests/wasm/spec_runner.c $(LIBMOTE_A) $(WASM_HDRS) \
				   $(WASM_SDK_STAMP)
	@mkdir -p $(@D)
	$(CC) $(WASM_CFLAGS) -DSPEC_IN_SANDBOX -DSPEC_COMPILED=1 \
		-DSPEC_CACHE_DIR=\"$(CURDIR)/$(BUILD)/test-cache\" $< -o $@ $(LIBMOTE_A) \
		$(HOST_LDFLAGS) $(HOST_LIBS)

wasm-spec-compiled: $(BUILD)/tests/wasm_spec_compiled
	$(BUILD)/tests/wasm_spec_compiled --all
.PHONY: wasm-spec-compiled

TESTS += $(BUILD)/tests/wasm_spec $(BUILD)/tests/test_wasm_api
SANDBOX_TESTS += $(BUILD)/tests/wasm_spec_sandbox $(BUILD)/tests/wasm_spec_compiled
ALL_TARGETS += $(BUILD)/tests/wasm_spec_compiled
ALL_TARGETS += $(WASM_LIB) $(BUILD)/tests/wasm_spec $(BUILD)/tests/test_wasm_api

# Freestanding compile check of the engine (as it will be built for guests).
WASM_FS_DIR := $(BUILD)/wasm-freestanding
wasm_empty :=
wasm_space := $(wasm_empty) $(wasm_empty)
WASM_RT_SYMS := memcpy memmove memset memcmp strlen malloc calloc realloc free
wasm-freestanding-check: $(WASM_SRCS) $(WASM_HDRS)
	@mkdir -p $(WASM_FS_DIR)
	@set -e; for f in $(WASM_SRCS); do \
		o=$(WASM_FS_DIR)/$$(basename $$f .c).o; \
		echo "  FS   $$f"; \
		gcc -std=c11 $(WARN) -ffreestanding -nostdlib -fno-pic -mno-red-zone -O2 \
			-fno-math-errno -Isrc/wasm -c $$f -o $$o; \
	done
	@ld -r -o $(WASM_FS_DIR)/engine.ro $(WASM_FS_DIR)/*.o
	@bad=$$(nm -u $(WASM_FS_DIR)/engine.ro | awk 'NF==2{print $$2}' | sort -u | \
		grep -vxE '$(subst $(wasm_space),|,$(strip $(WASM_RT_SYMS)))' || true); \
	if [ -n "$$bad" ]; then echo "wasm engine needs undeclared symbols: $$bad"; exit 1; fi; \
	echo "wasm engine: freestanding OK (needs only: $(WASM_RT_SYMS))"

.PHONY: wasm-freestanding-check

# libFuzzer target (clang).
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	      -fno-math-errno -Isrc/wasm
build-fuzz/fuzz_wasm: fuzz/fuzz_wasm.c $(WASM_SRCS) $(WASM_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) fuzz/fuzz_wasm.c $(WASM_SRCS) -o $@
FUZZERS += build-fuzz/fuzz_wasm

# Benchmark: kernels compiled natively and to wasm32 (clang), timed in one run.
WASM_BENCH_KERNELS := $(sort $(wildcard bench/wasm/k_*.c))
WASM_BENCH_WASMS := $(patsubst bench/wasm/%.c,$(BUILD)/bench/wasm/%.wasm,$(WASM_BENCH_KERNELS))
WASM_CLANG ?= clang

$(BUILD)/bench/wasm/%.wasm: bench/wasm/%.c bench/wasm/kernels.h
	@mkdir -p $(@D)
	$(WASM_CLANG) --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry \
		-Wl,--export-all -Wl,-z,stack-size=1048576 -o $@ $<

# libmote has the engine inside (and the Wasm sandboxes the aot-sandbox
# records run in); -rdynamic lets the compiled kernels' shared objects find
# the engine's functions.
$(BUILD)/bench/wasm_bench: bench/wasm/driver.c $(WASM_BENCH_KERNELS) bench/wasm/kernels.h \
		$(LIBMOTE_A) $(WASM_BENCH_WASMS) $(WASM_SDK_STAMP)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude -Isrc/wasm -Ibench/wasm \
		-DWASM_BENCH_DIR=\"$(BUILD)/bench/wasm\" -DWASM_BENCH_INCLUDE=\"$(CURDIR)/src/wasm\" \
		bench/wasm/driver.c $(WASM_BENCH_KERNELS) $(LIBMOTE_A) -o $@ -rdynamic -ldl \
		$(HOST_LIBS)
BENCHES += $(BUILD)/bench/wasm_bench

# The spec tests run through the ahead-of-time compiler: every module of a
# file translated to C, compiled with cc into a shared object, and its
# functions run as native code (mw_module_set_native).
$(BUILD)/tests/wasm_spec_aot: tests/wasm/spec_runner.c $(WASM_LIB) $(WASM_HDRS)
	@mkdir -p $(@D)
	$(CC) $(WASM_CFLAGS) -DSPEC_AOT -DSPEC_AOT_INCLUDE=\"$(CURDIR)/src/wasm\" $< $(WASM_LIB) \
		-o $@ $(HOST_LDFLAGS) -rdynamic -ldl
TESTS += $(BUILD)/tests/wasm_spec_aot
ALL_TARGETS += $(BUILD)/tests/wasm_spec_aot

# The translator's fuzzer (fuzz/fuzz_wasm_aot.c); seeded from the Wasm
# fuzzer's seeds and corpus.
build-fuzz/fuzz_wasm_aot: fuzz/fuzz_wasm_aot.c $(WASM_SRCS) $(WASM_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -DFUZZ_AOT_INCLUDE=\"$(CURDIR)/src/wasm\" fuzz/fuzz_wasm_aot.c \
		$(WASM_SRCS) -o $@
FUZZERS += build-fuzz/fuzz_wasm_aot
