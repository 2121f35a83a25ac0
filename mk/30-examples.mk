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
