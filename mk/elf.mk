# Guest ELF validator: unit test and libFuzzer target. The library object
# ($(BUILD)/host/elf.o) is built by the library's own rules, not here; both
# programs below compile src/host/elf.c directly.

ELF_DEPS := src/host/elf.h src/common/abi.h include/mote.h include/mote/types.h

$(BUILD)/tests/test_elf: tests/test_elf.c src/host/elf.c $(ELF_DEPS) tests/test.h
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -o $@ $(filter %.c,$^) $(HOST_LDFLAGS)

TESTS += $(BUILD)/tests/test_elf

FUZZ_CC ?= clang
ELF_FUZZ_CFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 \
		   -std=c11 -D_GNU_SOURCE -Iinclude -Isrc

build-fuzz/fuzz_elf: fuzz/fuzz_elf.c src/host/elf.c $(ELF_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ELF_FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

FUZZERS += build-fuzz/fuzz_elf
