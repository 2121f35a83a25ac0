# mote build. `make` builds the library, the guest SDK, the CLI, examples and
# test guests; `make test` runs every test; `make SAN=1 test` runs them under
# ASan + UBSan (in build-san/). Parts of the tree add themselves through mk/*.mk.

CC       ?= gcc
PREFIX   ?= /usr/local
VERSION  := 0.2.0

ifeq ($(SAN),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else
BUILD    ?= build
SANFLAGS :=
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT      ?= -O2 -g
HOST_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(SANFLAGS) -fPIC -pthread \
	       -Iinclude -Isrc -DMOTE_VERSION=\"$(VERSION)\"
HOST_LDFLAGS := $(SANFLAGS) -pthread
HOST_LIBS := -lcrypto -lpthread -lm -ldw -lelf

# Guest code: freestanding, static, non-PIE, no red zone assumptions needed
# (exceptions switch stacks), SSE2 only (CPUID hides AVX from the guest).
GUEST_CC     ?= gcc
GUEST_CFLAGS := -std=c11 $(WARN) -O2 -g -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
		-fno-asynchronous-unwind-tables -mno-avx -mno-avx2 -fcf-protection=none \
		-fno-builtin-malloc -Iinclude -Isrc
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=4096 \
		 -Wl,-z,noexecstack -T src/guest/guest.ld

all:

TESTS     :=
SANDBOX_TESTS :=
TEST_GUESTS :=
FUZZERS   :=
BENCHES   :=
ALL_TARGETS :=

include $(sort $(wildcard mk/*.mk))

all: $(ALL_TARGETS)

# The README's two commands. Both first install missing Debian packages.
demo:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh $(BUILD)

# Tests that start sandboxes (SANDBOX_TESTS) run once per backend: on the
# process backend here, and on KVM here where /dev/kvm exists or in a QEMU VM
# that emulates AMD SVM where it is missing, where the process backend also
# runs on Debian 12's kernel (tests/run.sh); `make test-vm` runs both VM
# groups on any machine.
test:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory all $(TESTS) $(SANDBOX_TESTS)
	@sh tests/run.sh $(TESTS) --sandbox $(SANDBOX_TESTS)

test-vm:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory all $(TESTS) $(SANDBOX_TESTS)
	@MOTE_TEST_VM=1 MOTE_TEST_BACKENDS='kvm process-vm' sh tests/run.sh $(TESTS) --sandbox $(SANDBOX_TESTS)

# Every libFuzzer target, each for FUZZ_SECONDS (default 600).
FUZZ_SECONDS ?= 600
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
		mkdir -p build-fuzz/corpus/$$(basename $$f); \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus/$$(basename $$f) \
			$$(test -d fuzz/seeds/$$(basename $$f) && echo fuzz/seeds/$$(basename $$f)) || exit 1; \
	done

bench: all
	$(BUILD)/bin/mote bench

clean:
	rm -rf build build-san build-fuzz

.PHONY: all demo test test-vm fuzz bench clean
.DELETE_ON_ERROR:
