# The two commands of the README. Each does its own set-up first (idempotent, fast once done).
.PHONY: demo test test-fast lint setup schema sdk bench clean-local

demo: setup            ## run the iperf3 example on the local testbed: preview, up, outputs, destroy
	scripts/demo.sh

test: setup            ## everything CI runs: lint (ruff, mypy), then every test
	scripts/lint.sh
	scripts/test.sh

test-fast: setup       ## the fast lane: unit, plugin and schema tests (under two minutes)
	scripts/test.sh -m fast

lint: setup            ## ruff (lint and format check) and mypy, as `make test` runs them
	scripts/lint.sh

setup:                 ## Debian packages, the Pulumi engine (cached), the virtualenv
	scripts/setup.sh

schema: setup          ## regenerate schema.json and docs/ from the typed definitions, then sdk/python
	scripts/gen-schema.sh

sdk: setup             ## regenerate sdk/python from schema.json
	scripts/gen-sdk.sh

bench: setup           ## time to SSH-ready, plugin start; Command fan-out vs ssh/ansible; Play vs ansible-playbook; g5k 100 nodes; Monitoring deploy, overhead, backup
	scripts/bench.sh
