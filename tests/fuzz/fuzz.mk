# The differential fuzzer (tests/fuzz): built with the tests; `make fuzz
# SECONDS=N` runs new random programs for N seconds (default 60), tests/run
# runs a fixed set of seeds and the saved regressions.
FUZZ_BIN := $(BUILD)/tests/fuzz

tests: $(FUZZ_BIN)

$(FUZZ_BIN): tests/fuzz/fuzz.c tests/integ/check.h
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Itests/integ -o $@ $< $(SAN_LDFLAGS)

SECONDS ?= 60
fuzz: lib tests
	@tests/fuzz/run-fuzz --seconds $(SECONDS) --build $(BUILD)
