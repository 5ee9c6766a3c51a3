# mk/chaos.mk: the fault suite (tests/chaos/). `make chaos` runs every scenario with the
# full load (CHAOS_SECONDS, CHAOS_CLIENTS); `make test` runs it in a short form. One test
# at a time: the scenarios measure a whole gateway, they must not share the cores.
# Include it after the `all` rule: it uses BUILD, HARNESS_SRC, ALL_LIBS and the link flags.

CHAOS_SECONDS ?= 10
CHAOS_CLIENTS ?= 24
CHAOS_RESULTS ?= /dev/null
CHAOS_BIN     := $(BUILD)/tests/chaos/test_chaos
CHAOS_OBJ     := $(call obj,tests/chaos/test_chaos.c tests/chaos/chaos_load.c)

.PHONY: chaos
chaos: all $(CHAOS_BIN)
	@CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_CLIENTS=$(CHAOS_CLIENTS) \
	    sh tests/run.sh $(BUILD) $(CHAOS_RESULTS) chaos 1 $(CHAOS_BIN)

$(BUILD)/obj/tests/chaos/%.o: CFLAGS += -Itests/chaos -pthread

$(CHAOS_BIN): $(CHAOS_OBJ) $(call obj,$(HARNESS_SRC)) $(ALL_LIBS) | $(BINS) $(EXAMPLES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -pthread -o $@ $(CHAOS_OBJ) $(call obj,$(HARNESS_SRC)) $(LINK_ALL) $(CRIT_LIBS)
