# Examples: built with the in-tree mote-cc and libmote, like a user would.

EXAMPLES := $(BUILD)/examples/hello.elf $(BUILD)/examples/hostcall.elf $(BUILD)/examples/embed
ALL_TARGETS += $(EXAMPLES)

$(BUILD)/examples/hello.elf: examples/hello/hello.c $(MOTE_CC) $(LIBGUEST)
	@mkdir -p $(@D)
	$(MOTE_CC) -Wall -Wextra -Werror -o $@ $<

$(BUILD)/examples/hostcall.elf: examples/hostcall/guest.c $(MOTE_CC) $(LIBGUEST)
	@mkdir -p $(@D)
	$(MOTE_CC) -Wall -Wextra -Werror -o $@ $<

$(BUILD)/examples/embed: examples/embed/host.c $(LIBMOTE_A)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -o $@ $< $(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)

# The WebAssembly embedding example and its module.
EXAMPLES_WASM := $(BUILD)/examples/wasm-host $(BUILD)/examples/pricing.wasm \
		 $(BUILD)/examples/fib.wasm
ALL_TARGETS += $(EXAMPLES_WASM)

$(BUILD)/examples/%.wasm: examples/wasm/%.c
	@mkdir -p $(@D)
	clang --target=wasm32 -nostdlib -Wl,--no-entry -Wl,--export-all -O2 -o $@ $<

$(BUILD)/examples/wasm-host: examples/wasm/host.c $(LIBMOTE_A)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -o $@ $< $(LIBMOTE_A) $(HOST_LDFLAGS) $(HOST_LIBS)
