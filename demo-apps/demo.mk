# Build fragment for the demo workloads, included by the top-level Makefile
# (which defines BUILD, CC, CFLAGS and CFLAGS_COMMON; make runs from the
# repository root).  Each program is one demo-apps/<name>.c linked with the
# shared helpers it needs; they are small enough to compile in one step.

DEMO_NAMES := rs-echo-epoll rs-echo-threads rs-echo-uring rs-legacy rs-loadgen \
              rs-httpd rs-filetool rs-prefork rs-pingpong
DEMO_BINS  := $(addprefix $(BUILD)/demo/,$(DEMO_NAMES))
DEMO_HDRS  := $(wildcard demo-apps/*.h)

demo-apps: $(DEMO_BINS)

# Shared sources beyond common.c, per program.
$(BUILD)/demo/rs-echo-epoll $(BUILD)/demo/rs-prefork: demo-apps/epoll_echo.c
$(BUILD)/demo/rs-loadgen $(BUILD)/demo/rs-pingpong: demo-apps/histogram.c

# Only the native io_uring server talks to io_uring itself.
$(BUILD)/demo/rs-echo-uring: DEMO_LIBS := -l:liburing.a

$(BUILD)/demo/%: demo-apps/%.c demo-apps/common.c $(DEMO_HDRS) demo-apps/demo.mk
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS) -o $@ $(filter %.c,$^) $(LDFLAGS) $(DEMO_LIBS) $(SAN_LDFLAGS)
