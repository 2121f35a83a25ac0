# Snapshot file format: libFuzzer target. The library object comes from
# mk/00-core.mk (LIB_SRCS); the fuzzer compiles the parser and the allocator
# (common.c) directly with the sanitizers.

SNAPFILE_DEPS := src/host/snapfile.h src/host/snapfile_int.h src/host/internal.h src/host/backend.h src/common/abi.h \
		 include/mote.h include/mote/types.h

FUZZ_CC ?= clang
SNAPFILE_FUZZ_CFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g \
			-O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -DMOTE_VERSION=\"fuzz\"

build-fuzz/fuzz_snapfile: fuzz/fuzz_snapfile.c src/host/snapfile.c src/host/snapfile_hash.c \
			  src/host/snapfile_cache.c src/host/snapfile_write.c src/host/sha256x16.c src/host/common.c \
			  src/host/cpuid.c \
			  $(SNAPFILE_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(SNAPFILE_FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto -lpthread

FUZZERS += build-fuzz/fuzz_snapfile
