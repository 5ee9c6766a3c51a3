# busgate build. `make` builds everything; `make test` installs what is missing,
# then builds and runs the whole suite twice (plain and ASan+UBSan).

PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
DESTDIR  ?=
SANITIZE ?= 0
CC       ?= cc

ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD    ?= build
SANFLAGS :=
endif

PKGS      := hiredis hiredis_ssl jansson inih libbsd libseccomp
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lssl -lcrypto -lpthread
CRIT_LIBS  = $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -MMD -MP \
            -Iinclude $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# The layers, lowest first (docs/layout.md; scripts/check-layers.sh checks the includes).
# Each is an archive, and each binary links only the layers it uses, highest first: a
# call from a lower layer into a higher one does not link.
LAYERS      := core proto config bus routing metrics
layer_src    = $(wildcard shared/$(1)/*.c)
CONTROL_SRC := $(wildcard master/control/*.c)
WORKER_SRC  := $(wildcard workers/*.c)
MASTER_SRC  := $(filter-out master/main.c,$(wildcard master/*.c))
SDK_SRC     := $(wildcard sdk/*.c)
CTL_SRC     := $(wildcard ctl/*.c)
HARNESS_SRC := $(wildcard tests/harness/*.c)
TEST_SRC    := $(wildcard tests/test_*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)
BENCH_SRC   := $(wildcard bench/*.c)

lib          = $(BUILD)/libbg$(1).a
LIB_CONTROL := $(call lib,control)
LIB_WORKER  := $(call lib,worker)
LIB_MASTER  := $(call lib,master)
# The SDK archive and shared object carry the shared layers they use, so that
# `make install` installs one library and one header.
SDK_DEPS    := core proto config bus
SDK_OBJ      = $(call obj,$(SDK_SRC) $(foreach l,$(SDK_DEPS),$(call layer_src,$(l))))
LIB_SDK     := $(BUILD)/libbusgate-service.a
SO_SDK      := $(BUILD)/libbusgate-service.so
LAYER_LIBS  := $(foreach l,$(LAYERS),$(call lib,$(l)))
ALL_LIBS    := $(LIB_MASTER) $(LIB_WORKER) $(LIB_CONTROL) $(LIB_SDK) $(LAYER_LIBS)

# Link lists, highest layer first.
rev          = $(if $(1),$(call rev,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
LINK_GATEWAY = $(LIB_MASTER) $(LIB_WORKER) $(LIB_CONTROL) $(call rev,$(LAYER_LIBS)) $(PKG_LIBS)
LINK_CTL     = $(foreach l,bus config proto core,$(call lib,$(l))) $(PKG_LIBS)
LINK_SDK     = $(LIB_SDK) $(PKG_LIBS)
# Tests and benchmarks reach into every layer.
LINK_ALL     = -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(PKG_LIBS)

BINS     := $(BUILD)/busgated $(if $(CTL_SRC),$(BUILD)/busgatectl)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/%,$(EXAMPLE_SRC))
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.SECONDARY:
.PHONY: all deps test check tests demo bench install clean format fuzz deb rpm check-layers
all: $(ALL_LIBS) $(SO_SDK) $(BINS) $(EXAMPLES)

deps:
	@sh scripts/setup-deps.sh

# The README's test command: dependencies, then both builds of the suite.
test:
	@sh scripts/setup-deps.sh
	@rm -f .test-results
	@sh scripts/check-layers.sh .test-results
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory SANITIZE=1 check
	$(MAKE) --no-print-directory chaos CHAOS_SECONDS=5 CHAOS_CLIENTS=16 CHAOS_RESULTS=.test-results
	$(MAKE) --no-print-directory test-ha HA_RESULTS=.test-results
	$(MAKE) --no-print-directory SANITIZE=1 test-ha HA_RESULTS=.test-results
	$(MAKE) --no-print-directory fuzz-smoke FUZZ_TIME=5
	-@sh tests/package/test_package.sh .test-results
	@sh tests/summary.sh .test-results

check: all tests
	@sh tests/run.sh $(BUILD) .test-results

tests: $(TESTS)

check-layers:
	@sh scripts/check-layers.sh

demo:
	@sh scripts/setup-deps.sh
	$(MAKE) --no-print-directory all
	@sh scripts/demo.sh $(BUILD)

bench: all $(BENCHES)
	@sh bench/run.sh $(BUILD)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

define mklib
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,ar rcs $@ $^,ar rcs $@)
endef

$(foreach l,$(LAYERS),$(eval $(call lib,$(l)): $(call obj,$(call layer_src,$(l))) ; $$(mklib)))
$(LIB_CONTROL): $(call obj,$(CONTROL_SRC)) ; $(mklib)
$(LIB_WORKER): $(call obj,$(WORKER_SRC)) ; $(mklib)
$(LIB_MASTER): $(call obj,$(MASTER_SRC)) ; $(mklib)
$(LIB_SDK):    $(SDK_OBJ) ; $(mklib)

$(SO_SDK): $(SDK_OBJ)
	$(CC) -shared -Wl,-soname,libbusgate-service.so.0 $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/busgated: $(call obj,master/main.c) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(LINK_GATEWAY)

$(BUILD)/busgatectl: $(call obj,$(CTL_SRC)) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(CTL_SRC)) $(LINK_CTL)

$(BUILD)/%: $(BUILD)/obj/examples/%.o $(LIB_SDK)
	$(CC) $(LDFLAGS) -o $@ $< $(LINK_SDK)

# Tests and benchmarks may include any layer's private headers and the harness.
$(BUILD)/obj/tests/%.o $(BUILD)/obj/bench/%.o: CFLAGS += -Itests/harness -Iworkers

# Tests run the binaries (busgated -t, examples), so those come first.
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(call obj,$(HARNESS_SRC)) $(ALL_LIBS) | $(BINS) $(EXAMPLES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(call obj,$(HARNESS_SRC)) $(LINK_ALL) $(CRIT_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(call obj,$(HARNESS_SRC)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(call obj,$(HARNESS_SRC)) $(LINK_ALL)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include/busgate \
	    $(DESTDIR)/etc/busgate $(DESTDIR)$(PREFIX)/share/doc/busgate
	install -m 755 $(BUILD)/busgated $(DESTDIR)$(PREFIX)/sbin/
	$(if $(CTL_SRC),install -m 755 $(BUILD)/busgatectl $(DESTDIR)$(PREFIX)/bin/)
	install -m 644 $(LIB_SDK) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SO_SDK) $(DESTDIR)$(LIBDIR)/libbusgate-service.so.0
	ln -sf libbusgate-service.so.0 $(DESTDIR)$(LIBDIR)/libbusgate-service.so
	install -m 644 include/busgate/service.h include/busgate/common.h $(DESTDIR)$(PREFIX)/include/busgate/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' sdk/busgate-service.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/busgate-service.pc
	install -m 644 etc/busgate.ini $(DESTDIR)/etc/busgate/busgate.ini
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/busgate/
	for page in docs/man/*.[0-9]; do \
	    sect=$${page##*.}; \
	    install -D -m 644 $$page $(DESTDIR)$(PREFIX)/share/man/man$$sect/$${page##*/}; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san .test-results

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

include mk/fuzz.mk
include mk/chaos.mk
include mk/ha.mk
include mk/packaging.mk
