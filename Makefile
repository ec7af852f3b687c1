# The two commands of a fresh machine: `make up` and `make test` (see README).
SHELL := /bin/bash
NODES ?= 1
NODE := node_modules/.bin/node

.PHONY: deps up down status test test-unit typecheck upstream bench install uninstall

deps:
	@bash cluster/install-deps.sh

upstream: deps
	@bash cluster/upstream/build.sh >/dev/null

up: deps
	@$(NODE) cmd/nodelet.ts up --nodes $(NODES)

down: deps
	@$(NODE) cmd/nodelet.ts down

status: deps
	@$(NODE) cmd/nodelet.ts status

typecheck: deps
	@node_modules/.bin/tsc --noEmit -p .

test-unit: deps
	@$(NODE) test/run.ts unit

# Unit, then integration against a sandboxed cluster of its own (profile "test").
test: deps
	@node_modules/.bin/tsc --noEmit -p . && echo "typecheck: ok"
	@$(NODE) test/run.ts unit integration

# Benchmarks: each in its own sandbox, against the upstream/plain-Docker floor in
# the same run; tables on stdout, JSON under bench/results/.
bench: deps
	@$(NODE) bench/cri.ts
	@$(NODE) bench/pods.ts
	@# The prober in-process, with the agent's V8 young-generation limit (lib/nodeflags.ts).
	@$(NODE) --max-semi-space-size=1 bench/probes.ts
	@$(NODE) bench/proxy.ts
	@$(NODE) bench/nftables.ts
	@$(NODE) bench/kubelet-api.ts
	@$(NODE) bench/rollout.ts

# Install on a Linux VM that joins an existing cluster (then `nodelet join ...`,
# see README). DESTDIR stages into another root (packaging, tests).
PREFIX ?= /usr/local/lib/nodelet
BINDIR ?= /usr/local/bin
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/nodelet
INSTALL_TREES := bin cmd agent cri proxy lib cluster node_modules package.json package-lock.json README.md
UNITS := nodelet.service nodelet-proxy.service
# systemctl only where systemd runs (not in containers or chroots).
SYSTEMD_RUNNING = $(shell [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && echo yes)

install: deps
	install -d -m 0755 $(DESTDIR)$(PREFIX) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	install -d -m 0700 $(DESTDIR)$(CONFDIR)
	tar -cf - $(INSTALL_TREES) | tar -C $(DESTDIR)$(PREFIX) -xf - --no-same-owner
	ln -sfn $(PREFIX)/bin/nodelet $(DESTDIR)$(BINDIR)/nodelet
	for u in $(UNITS); do \
	  sed -e 's|/usr/local/lib/nodelet|$(PREFIX)|g' -e 's|/etc/nodelet|$(CONFDIR)|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	@# The config is the admin's once written: never overwritten.
	@[ -e $(DESTDIR)$(CONFDIR)/nodelet.env ] || install -m 0600 systemd/nodelet.env $(DESTDIR)$(CONFDIR)/nodelet.env
	@[ -e $(DESTDIR)$(CONFDIR)/config.yaml ] || install -m 0644 systemd/config.yaml $(DESTDIR)$(CONFDIR)/config.yaml
	@# Verified as installed; under DESTDIR, copies whose paths point into it (so the executable check is real).
	@if command -v systemd-analyze >/dev/null; then \
	  tmp=$$(mktemp -d) && for u in $(UNITS); do sed -e 's|$(PREFIX)|$(DESTDIR)$(PREFIX)|g' $(DESTDIR)$(UNITDIR)/$$u > $$tmp/$$u; done && \
	  systemd-analyze verify $(addprefix $$tmp/,$(UNITS)) && echo "units: systemd-analyze verify ok"; rc=$$?; rm -rf $$tmp; exit $$rc; \
	else echo "units: systemd-analyze not available, not verified"; fi
	@# Warm the cache the units use (lib/compilecache.ts); under DESTDIR the paths would not match.
	@[ -n "$(DESTDIR)" ] || NODE_COMPILE_CACHE=/var/cache/nodelet/compile-cache $(PREFIX)/node_modules/.bin/node $(PREFIX)/lib/compilecache.ts || true
	@if [ "$(SYSTEMD_RUNNING)" = yes ]; then systemctl daemon-reload; fi
	@echo "installed. Next: nodelet join --server HOST:PORT --token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX --bootstrap-only"
	@echo "          then: systemctl enable --now nodelet nodelet-proxy"

# Removes what install put there. The credentials `nodelet join` wrote under
# $(CONFDIR) stay unless PURGE=1.
uninstall:
	@if [ "$(SYSTEMD_RUNNING)" = yes ]; then systemctl disable --now $(UNITS) 2>/dev/null || true; fi
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(CONFDIR)/nodelet.env $(DESTDIR)$(CONFDIR)/config.yaml
	@[ "$$(readlink $(DESTDIR)$(BINDIR)/nodelet)" != "$(PREFIX)/bin/nodelet" ] || rm -f $(DESTDIR)$(BINDIR)/nodelet
	rm -rf $(DESTDIR)$(PREFIX) $(DESTDIR)/var/cache/nodelet/compile-cache
	@if [ "$(PURGE)" = 1 ]; then rm -rf $(DESTDIR)$(CONFDIR); fi
	@if [ "$(SYSTEMD_RUNNING)" = yes ]; then systemctl daemon-reload; fi
