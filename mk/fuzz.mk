# mk/fuzz.mk: libFuzzer targets. `make fuzz` builds every tests/fuzz/fuzz_*.c with clang
# against shared/*/*.c and workers/*.c; `make fuzz-smoke` runs each for FUZZ_TIME seconds
# over its seed corpus (tests/fuzz/corpus/<target>/) and fails on a crash, or says it
# skipped when clang's libFuzzer runtime is missing. Include it after the `all` rule:
# it uses BUILD, PKG_CFLAGS and PKG_LIBS from the Makefile.

FUZZ_CC    ?= clang
FUZZ_BUILD ?= $(BUILD)/fuzz
FUZZ_TIME  ?= 10
# The top-level makefile, so that the recursive `make fuzz` below sees these rules too.
FUZZ_TOP   := $(firstword $(MAKEFILE_LIST))

# Objects get coverage hooks (fuzzer-no-link); only the targets link the fuzzer main.
# No -Werror here: the gcc build enforces warnings, clang-only ones must not block fuzzing.
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -MMD -MP \
               -Iinclude $(PKG_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link

FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_DEP_SRC := $(wildcard shared/*/*.c) $(wildcard workers/*.c)
FUZZ_DEP_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_DEP_SRC))
# An archive, not loose objects: a target links only the members it needs, so code
# it does not use (and whatever that code needs) stays out.
FUZZ_DEP_LIB := $(FUZZ_BUILD)/libfuzzdeps.a

.PHONY: fuzz fuzz-smoke
fuzz: $(FUZZ_BINS)

fuzz-smoke:
	@if sh tests/fuzz/run-smoke.sh --probe "$(FUZZ_CC)"; then \
	    $(MAKE) --no-print-directory -f $(FUZZ_TOP) fuzz && \
	    sh tests/fuzz/run-smoke.sh "$(FUZZ_BUILD)" "$(FUZZ_TIME)"; \
	else \
	    echo "fuzz-smoke: skipped (clang libFuzzer not available)"; \
	fi

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_DEP_LIB): $(FUZZ_DEP_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_DEP_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_DEP_LIB) $(PKG_LIBS)

-include $(wildcard $(FUZZ_BUILD)/obj/*/*.d $(FUZZ_BUILD)/obj/*/*/*.d $(FUZZ_BUILD)/obj/tests/fuzz/*.d)
