# mk/ha.mk: the high-availability suite (tests/ha/): Valkey Sentinel failover and Valkey
# Cluster on real parts.
# `make test-ha` runs it in the current build (SANITIZE=1 for the sanitizer one); `make
# test` runs it in both, after the fault suite. One test at a time: each starts five
# Valkey processes, a gateway and load.
# Include it after the `all` rule and mk/chaos.mk: it uses their objects and link flags.

HA_RESULTS ?= /dev/null
HA_BIN     := $(BUILD)/tests/ha/test_sentinel
HA_OBJ     := $(call obj,tests/ha/test_sentinel.c tests/chaos/chaos_load.c)
HA_CL_BIN  := $(BUILD)/tests/ha/test_cluster
HA_CL_OBJ  := $(call obj,tests/ha/test_cluster.c tests/chaos/chaos_load.c)

.PHONY: test-ha
test-ha: all $(HA_BIN) $(HA_CL_BIN)
	@sh tests/run.sh $(BUILD) $(HA_RESULTS) ha 1 $(HA_BIN) $(HA_CL_BIN)

$(BUILD)/obj/tests/ha/%.o: CFLAGS += -Itests/chaos -pthread

$(HA_BIN): $(HA_OBJ) $(call obj,$(HARNESS_SRC)) $(ALL_LIBS) | $(BINS) $(EXAMPLES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -pthread -o $@ $(HA_OBJ) $(call obj,$(HARNESS_SRC)) $(LINK_ALL) $(CRIT_LIBS)

$(HA_CL_BIN): $(HA_CL_OBJ) $(call obj,$(HARNESS_SRC)) $(ALL_LIBS) | $(BINS) $(EXAMPLES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -pthread -o $@ $(HA_CL_OBJ) $(call obj,$(HARNESS_SRC)) $(LINK_ALL) $(CRIT_LIBS)
