# GDB Remote Serial Protocol engine (src/host/gdb_proto.c, in LIB_SRCS in mk/00-core.mk): a
# unit test that starts no sandbox (test_gdb_proto, in FILE_TESTS there) and a libFuzzer target.

FUZZ_CC ?= clang
GDB_FUZZ_CFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 \
		   -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -DMOTE_VERSION=\"fuzz\"

# The engine allocates nothing, so it needs no other library file.
build-fuzz/fuzz_gdb_proto: fuzz/fuzz_gdb_proto.c src/host/gdb_proto.c src/host/gdb_proto.h \
			   src/host/backend.h src/common/abi.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(GDB_FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

FUZZERS += build-fuzz/fuzz_gdb_proto
