# Guest ELF validator: unit test and libFuzzer target. test_elf links
# libmote.a like the other host tests (the rule in mk/00-core.mk) and reads
# the real test guests, but starts no sandbox, so it needs no /dev/kvm. The
# fuzzer compiles the validator and the allocator (common.c) directly with
# the sanitizers.

ELF_DEPS := src/host/elf.h src/host/internal.h src/host/backend.h src/common/abi.h include/mote.h \
	    include/mote/types.h

TESTS += $(BUILD)/tests/test_elf

FUZZ_CC ?= clang
ELF_FUZZ_CFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 \
		   -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -DMOTE_VERSION=\"fuzz\"

build-fuzz/fuzz_elf: fuzz/fuzz_elf.c src/host/elf.c src/host/common.c $(ELF_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ELF_FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

FUZZERS += build-fuzz/fuzz_elf
