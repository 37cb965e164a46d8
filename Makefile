# connfs — build, test, demo, bench. `make` builds ./connfs.
#   make check        unit + emulator + integration tests
#   make check SAN=1  the same under AddressSanitizer + UBSan
#   make tsan         the threaded parts under ThreadSanitizer (build/tsan)
#   make WERROR=1     warnings are errors (CI)

VERSION    := 0.1.0
PYTHON     := /usr/bin/python3
PREFIX     ?= /usr/local
DESTDIR    ?=
PKGS       := fuse3 libcurl libcjson sqlite3 libcrypto hiredis zlib
DEB_PKGS   := build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev \
              libcjson-dev python3 python3-pytest rsync attr jq clang \
              libsqlite3-dev sqlite3 libssl-dev openssl valgrind \
              libhiredis-dev zlib1g-dev redis-tools

CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wwrite-strings -Wvla
ifeq ($(WERROR),1)
WARN       += -Werror
endif
BUILD      := build
ifeq ($(SAN),1)
SANFLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
BUILD      := build/san
endif
ifeq ($(TSAN),1)
SANFLAGS   := -fsanitize=thread -fno-omit-frame-pointer
BUILD      := build/tsan
endif
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS  = -std=gnu11 $(CFLAGS) $(WARN) $(SANFLAGS) -MMD -MP \
              -D_GNU_SOURCE -DFUSE_USE_VERSION=312 \
              -DCONNFS_VERSION='"$(VERSION)"' -Iproviders -Icache -Ifs \
              $(PKG_CFLAGS)
LDLIBS      = $(PKG_LIBS) -lpthread -lm

LIB_SRCS   := $(wildcard providers/*.c providers/aws/*.c cache/*.c) \
              $(filter-out fs/main.c,$(wildcard fs/*.c))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all check unit integration emulator-test demo undemo bench fuzz stress \
        install uninstall format clean deps tsan
all: connfs

connfs: $(BUILD)/fs/main.o $(LIB_OBJS)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJS) $(LDLIBS)

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do (cd tests/unit && ../../$$t) || fail=1; done; \
	exit $$fail

emulator-test:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/emulator

integration: connfs
	$(PYTHON) -m pytest -q -p no:cacheprovider --basetemp=$(BUILD)/pytest tests/integration

check: connfs unit
	$(PYTHON) -m pytest -q -p no:cacheprovider --basetemp=$(BUILD)/pytest \
	  tests/emulator tests/integration tests/stress/stress.py

# ThreadSanitizer over the unit tests and the integration tests that drive
# the pager, the cache, the notifier, the fleet tier, refreshes from many
# threads, and stopping while all of them run.
TSAN_TESTS := tests/integration/test_coherence.py \
              tests/integration/test_faults.py \
              tests/integration/test_operations.py \
              tests/integration/test_fleet.py \
              tests/integration/test_stop.py
tsan:
	@$(MAKE) -s clean
	@$(MAKE) -s TSAN=1 connfs unit
	TSAN_OPTIONS="halt_on_error=0 exitcode=66 $(TSAN_OPTIONS)" \
	  $(PYTHON) -m pytest -q -p no:cacheprovider \
	  --basetemp=$(BUILD)/pytest-tsan $(TSAN_TESTS)
	@$(MAKE) -s clean

# The long soak: 16 processes against random API faults (default 300 s).
stress: connfs
	$(PYTHON) tests/stress/stress.py --seconds $(or $(STRESS_SECONDS),300)

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq $$missing >/dev/null; fi

demo: deps connfs
	@tests/demo.sh start

undemo:
	@tests/demo.sh stop

bench: connfs
	$(PYTHON) tests/bench/bench.py

fuzz:
	@$(MAKE) -s -C tests/fuzz run

install: connfs
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 connfs $(DESTDIR)$(PREFIX)/bin/connfs
	install -m 0644 man/connfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/connfs.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/connfs \
	      $(DESTDIR)$(PREFIX)/share/man/man1/connfs.1

format:
	clang-format -i $(wildcard fs/*.[ch] providers/*.[ch] providers/aws/*.[ch] \
	  cache/*.[ch] \
	  tests/unit/*.[ch] tests/fuzz/*.c)

clean:
	rm -rf build connfs

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
