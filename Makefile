# ringshim — see README.md. `make demo` and `make test` are the two entry points;
# both install missing Debian packages first (scripts/install-deps).
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build

CC      ?= gcc
WARN     = -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
CFLAGS_COMMON = -std=gnu11 $(WARN) -D_GNU_SOURCE -pthread $(EXTRA_CFLAGS)
SHIM_CFLAGS   = $(CFLAGS_COMMON) -fPIC -fvisibility=hidden -fno-strict-aliasing \
                -ftls-model=initial-exec -Ishim $(CFLAGS)
URING_LIBS    = -l:liburing.a
LDFLAGS ?=

SHIM_SRCS := $(sort $(wildcard shim/*.c))
SHIM_OBJS := $(SHIM_SRCS:shim/%.c=$(BUILD)/shim/%.o)
SHIM_LIB  := $(BUILD)/libringshim.so

.PHONY: all lib demo-apps tests test demo asan asan-build tsan valgrind fuzz install uninstall clean deps test-deps \
        demo-deps check-deps
all: lib demo-apps tests

lib: $(SHIM_LIB)

# `make V=1` shows the commands.
Q = $(if $(V),,@)

$(BUILD)/shim/%.o: shim/%.c Makefile
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(SHIM_CFLAGS) -MMD -c $< -o $@

$(SHIM_LIB): $(SHIM_OBJS) shim/libringshim.map
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $(SHIM_OBJS) -Wl,--version-script=shim/libringshim.map \
	      -Wl,-z,now -Wl,-z,relro -Wl,-Bsymbolic $(LDFLAGS) $(URING_LIBS) -ldl -pthread $(SAN_LDFLAGS)

-include $(SHIM_OBJS:.o=.d)
demo-apps:
include demo-apps/demo.mk
include tests/tests.mk
-include tests/fuzz/fuzz.mk

# Missing Debian packages are installed as root, named (exit 1) otherwise;
# see the groups in scripts/install-deps.  `make check-deps` only reports.
deps:
	@scripts/install-deps build

test-deps:
	@scripts/install-deps build test

demo-deps:
	@scripts/install-deps build demo

check-deps:
	@scripts/install-deps --check build test demo

test: test-deps
	@$(MAKE) --no-print-directory all
	@tests/run $(TEST_ARGS)

demo: demo-deps
	@$(MAKE) --no-print-directory all
	@# Where batching pays: a legacy server's many small writes coalesced.
	@scripts/ringshim ab --preset demo-legacy --demo --out $(BUILD)/demo-report/legacy
	@# Where physics leaves little to win: an epoll echo server, with a
	@# native io_uring server as the speed limit.
	@scripts/ringshim ab --preset demo-echo --demo --out $(BUILD)/demo-report/echo

# Sanitizer builds live in their own build directories so they never mix with
# the normal objects.
asan-build: test-deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    SAN_LDFLAGS="-fsanitize=address,undefined" all

asan: asan-build
	@BUILD=build-asan RINGSHIM_SANITIZER=asan tests/run --sanitizer asan $(TEST_ARGS)

tsan: test-deps
	@$(MAKE) --no-print-directory BUILD=build-tsan \
	    EXTRA_CFLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
	    SAN_LDFLAGS="-fsanitize=thread" all
	@BUILD=build-tsan RINGSHIM_SANITIZER=tsan tests/run --sanitizer tsan --threaded $(TEST_ARGS)

# Memcheck over the integration programs (strict and batch) under the
# normal build: the shim's own memory use and what it hands the program.
# The programs run natively too, for the transcripts; unit tests, faults,
# fuzzer and real servers are left to `make test`. Slow: minutes a program.
VG_PROGS = $(INTEG_SRCS:tests/integ/%.c=%)
VG_EMPTY =
VG_ONLY  = ^($(subst $(VG_EMPTY) $(VG_EMPTY),|,$(strip $(VG_PROGS))))$$
valgrind:
	@scripts/install-deps build test valgrind
	@$(MAKE) --no-print-directory all
	@tests/run --sanitizer valgrind --modes strict,batch --skip-real --skip-scripts \
	    --only '$(VG_ONLY)' $(TEST_ARGS)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	           $(DESTDIR)$(PREFIX)/share/ringshim
	install -m 0755 $(SHIM_LIB) $(DESTDIR)$(PREFIX)/lib/libringshim.so
	install -m 0755 scripts/ringshim $(DESTDIR)$(PREFIX)/bin/ringshim
	cp -r scripts/ringshim_lib scripts/presets $(DESTDIR)$(PREFIX)/share/ringshim/
	install -m 0644 docs/ringshim.1 $(DESTDIR)$(PREFIX)/share/man/man1/ringshim.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libringshim.so $(DESTDIR)$(PREFIX)/bin/ringshim \
	      $(DESTDIR)$(PREFIX)/share/man/man1/ringshim.1
	rm -rf $(DESTDIR)$(PREFIX)/share/ringshim

clean:
	rm -rf build build-asan build-tsan
