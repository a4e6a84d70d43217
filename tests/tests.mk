# Test programs: Check unit tests (tests/unit) and integration programs
# (tests/integ) that tests/run executes natively and preloaded.
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

UNIT_SRCS  := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN   := $(BUILD)/tests/unit-tests
INTEG_SRCS := $(sort $(wildcard tests/integ/*.c))
INTEG_BINS := $(INTEG_SRCS:tests/integ/%.c=$(BUILD)/tests/integ/%)
# Unit tests link the shim's objects directly (without the interposers'
# entry points, which would replace libc inside the test runner).
UNIT_SHIM_OBJS := $(addprefix $(BUILD)/shim/,config.o fault.o log.o fdtable.o stats.o real.o \
                     internal_fds.o)

tests: $(UNIT_BIN) $(INTEG_BINS)

$(UNIT_BIN): $(UNIT_SRCS) $(UNIT_SHIM_OBJS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS) $(CHECK_CFLAGS) -Ishim -o $@ $(UNIT_SRCS) \
	      $(UNIT_SHIM_OBJS) $(CHECK_LIBS) $(URING_LIBS) -ldl $(SAN_LDFLAGS)

$(BUILD)/tests/integ/%: tests/integ/%.c $(wildcard tests/integ/*.h)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS) -o $@ $< $(SAN_LDFLAGS)
