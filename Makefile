# parlae — build, test, demo, install.
#   make                  build ./parlae (and .build/libparlae.a)
#   make check            build and run every test; ends with "N passed, N failed"
#   make check SANITIZE=1 the same under ASan + UBSan
#   make fuzz FUZZ_SECONDS=60  libFuzzer harnesses of tests/fuzz/ (clang, ASan + UBSan), each that long
#   make demo             onboard a practice against a local PostgreSQL and the bundled sandbox
#   make sandbox          after the demo: start its PostgreSQL and sandbox in the background and
#                         write .demo/env (`. .demo/env`, then parlae works against them)
#   make sandbox-stop     stop them
#   make install PREFIX=/usr/local DESTDIR=
# Missing Debian packages are installed first (apt-get; the CI machine is root).

VERSION = 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
CC ?= cc
CFLAGS ?= -O2 -g

PKGS = libcurl jansson libpq openssl readline libmicrohttpd
DEBIAN_PACKAGES = pkg-config libcurl4-openssl-dev libjansson-dev libpq-dev libssl-dev \
	libreadline-dev libmicrohttpd-dev bats bats-assert bats-support postgresql python3 jq bsdextrautils curl openssl man-db groff-base \
	strace clang-format parallel

ifeq ($(SANITIZE),1)
BUILD = .build/san
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
BIN = $(BUILD)/parlae
else
BUILD = .build/default
SAN =
BIN = parlae
endif

WARN = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-format-truncation
# Recursive (=) so that pkg-config runs after the deps step has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN) -MMD -MP \
	-DPARLAE_VERSION='"$(VERSION)"' $(PKG_CFLAGS)

LIB_SRC = $(wildcard lib/*.c)
CMD_SRC = $(wildcard cmd/*.c)
MIGRATIONS = $(sort $(wildcard sql/[0-9][0-9][0-9][0-9]-*.sql))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/lib/migrations.o
CMD_OBJ = $(CMD_SRC:%.c=$(BUILD)/%.o)
DEPS_STAMP = .build/deps.stamp

# Short lines ("CC lib/x.o"), as git and the kernel print them; V=1 shows the full commands.
ifeq ($(V),1)
Q =
QUIET_CC =
QUIET_AR =
QUIET_LINK =
QUIET_GEN =
else
Q = @
QUIET_CC = @echo "  CC      $<";
QUIET_AR = @echo "  AR      $@";
QUIET_LINK = @echo "  LINK    $@";
QUIET_GEN = @echo "  GEN     $@";
endif

# make check and make demo build with one job per core by default (on 2 cores ~10 s, not ~20 s);
# a -j on the command line wins (make -j2 check).
ifneq ($(filter check demo,$(MAKECMDGOALS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif

all: $(BIN)

$(BIN): $(CMD_OBJ) $(BUILD)/libparlae.a
	$(QUIET_LINK)$(CC) $(CFLAGS) $(SAN) -o $@ $(CMD_OBJ) $(BUILD)/libparlae.a $(PKG_LIBS)

$(BUILD)/libparlae.a: $(LIB_OBJ)
	$(Q)rm -f $@
	$(QUIET_AR)ar rcs $@ $^

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/lib/migrations.c: lib/gen-migrations.sh $(MIGRATIONS)
	@mkdir -p $(dir $@)
	$(QUIET_GEN)sh lib/gen-migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/lib/migrations.o: $(BUILD)/lib/migrations.c | $(DEPS_STAMP)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -Ilib -c -o $@ $<

# Install what is missing, once per clone. Not root or no apt: say what to install.
$(DEPS_STAMP):
	@mkdir -p .build
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages:$$missing (apt-get; this takes a minute or two)"; \
			apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q install -y $$missing || exit 1; \
		else \
			echo "missing Debian packages:$$missing (install them, e.g. sudo apt-get install$$missing)"; exit 1; \
		fi; \
	fi
	@touch $@

deps: $(DEPS_STAMP)

check: $(BIN)
	$(Q)PARLAE_BIN=$(abspath $(BIN)) tests/run

demo: $(BIN)
	$(Q)PARLAE_BIN=$(abspath $(BIN)) tests/demo

sandbox: $(BIN)
	$(Q)PARLAE_BIN=$(abspath $(BIN)) tests/sandbox start

sandbox-stop:
	$(Q)tests/sandbox stop

bench: $(BIN)
	PARLAE_BIN=$(abspath $(BIN)) tests/bench/run

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/parlae
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 completions/parlae.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/parlae
	install -m 644 completions/_parlae $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_parlae
	install -m 644 completions/parlae.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/parlae.fish

format:
	clang-format -i lib/*.c lib/*.h cmd/*.c cmd/*.h

clean:
	rm -rf .build/default .build/san .build/fuzz parlae

# Fuzzing: the library again, built by clang with coverage and ASan + UBSan, one binary per
# tests/fuzz/fuzz_*.c; tests/fuzz/run runs each on a copy of its corpus. clang is needed here only.
FUZZ_SECONDS ?= 60
FUZZ_PACKAGES = clang libclang-rt-14-dev
FUZZ_BUILD = .build/fuzz
FUZZ_DEPS = .build/fuzz-deps.stamp
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c17 -D_GNU_SOURCE -g -O1 $(FUZZ_SAN) -Ilib -DPARLAE_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
FUZZ_BIN = $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_BIN)

# The deps recipe again, for clang's packages and its own stamp.
$(FUZZ_DEPS): | $(DEPS_STAMP)
	@$(MAKE) --no-print-directory $@ DEBIAN_PACKAGES="$(FUZZ_PACKAGES)" DEPS_STAMP=$@ FUZZ_DEPS=

$(FUZZ_BUILD)/%.o: %.c | $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/lib/migrations.o: $(BUILD)/lib/migrations.c | $(FUZZ_DEPS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libparlae.a: $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/lib/migrations.o
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libparlae.a
	clang $(FUZZ_CFLAGS) -Wall -Wextra -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libparlae.a $(PKG_LIBS)

# fuzz_err includes the commands' error printer.
$(FUZZ_BUILD)/fuzz_err: cmd/output.c cmd/cmd.h

.PHONY: fuzz
-include $(wildcard $(FUZZ_BUILD)/lib/*.d)

.PHONY: all deps check demo sandbox sandbox-stop bench install format clean

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d)
