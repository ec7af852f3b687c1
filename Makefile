# The two commands of a fresh machine: `make up` and `make test` (see README).
SHELL := /bin/bash
NODES ?= 1
NODE := node_modules/.bin/node

.PHONY: deps up down status test test-unit typecheck upstream bench

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
