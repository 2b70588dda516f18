# The README's two commands: `make run` and `make test`. Both set up what they need themselves
# (Debian packages, a virtualenv with the pinned Python dependencies, a running Docker engine, the
# base images); a second run reuses all of it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RELEASE ?= bookworm
# Releases the docker tests run on (default: bookworm only).
export DBTLS_RELEASES ?= $(RELEASE)
# `make test-matrix` runs these docker tests once more on each of MATRIX_RELEASES (CI does).
MATRIX_RELEASES ?= trixie
MATRIX_TESTS ?= tests/docker/test_sim_pg.py tests/docker/test_sim_mariadb.py tests/docker/test_pg_enable.py \
	tests/docker/test_mysql_enable.py tests/docker/test_manifest_pg.py tests/docker/test_hardening_tls.py
# `make test-bullseye` runs these on bullseye (OpenSSL 1.1.1, PostgreSQL 13, Pgpool-II 4.1, MariaDB 10.5;
# CI does): the TLS-quality scan, the release whose OpenSSL still lets clients renegotiate.
BULLSEYE_TESTS ?= tests/docker/test_hardening_tls.py

.PHONY: run test test-matrix test-bullseye lint unit docker-tests sysdeps docker venv images clean-sim help bench

help:
	@echo "make run   - build, start the simulated pg-cluster, install the add-on through manifest.jps"
	@echo "make test  - lint, unit tests and docker tests (real PostgreSQL, Pgpool-II, MariaDB)"
	@echo "make bench - benchmarks: downtime, install time, certificates, TLS cost (BENCH_QUICK=1: short runs); results in bench/results/"

sysdeps:
	@bash scripts/install-sysdeps.sh

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

docker: sysdeps
	@bash scripts/ensure-docker.sh

images: venv docker
	$(BIN)/dbtls sim images $(foreach r,$(DBTLS_RELEASES),--release $(r))

lint: venv
	$(BIN)/ruff check .
	$(BIN)/dbtls build --check
	$(BIN)/vermin -t=3.6- --no-tips --violations --eval-annotations --backport typing node-scripts/dbtls_agent

unit: venv sysdeps
	$(BIN)/python -m pytest -q -m "not docker" tests

docker-tests: images
	$(BIN)/python -m pytest -q -m docker tests

test: lint unit docker-tests

test-matrix: venv docker
	$(foreach r,$(MATRIX_RELEASES),DBTLS_RELEASES=$(r) $(BIN)/python -m pytest -q -m docker $(MATRIX_TESTS) &&) true

test-bullseye: venv docker
	$(BIN)/dbtls sim images --release bullseye
	DBTLS_RELEASES=bullseye $(BIN)/python -m pytest -q -m docker $(BULLSEYE_TESTS)

run: venv docker
	$(BIN)/dbtls build
	$(BIN)/dbtls sim up pg-cluster --release $(RELEASE)
	@if docker exec dbtls-pg-cluster-node100 test -s /var/lib/dbtls-sim/addons.json 2>/dev/null && \
	   docker exec dbtls-pg-cluster-node100 grep -q sqldb /var/lib/dbtls-sim/addons.json; then \
	  echo "The add-on is already installed on pg-cluster; current state:"; \
	  $(BIN)/dbtls sim press "Certificate status" --env pg-cluster; \
	else \
	  $(BIN)/dbtls sim install --env pg-cluster; \
	fi
	@docker exec dbtls-pg-cluster-node101 cat /var/lib/jelastic/keys/SSL-TLS/server/root.crt | \
	  docker exec -i dbtls-pg-cluster-node100 sh -c 'cat > /root/root.crt'
	@echo
	@echo "TLS with full verification, through Pgpool-II (the root CA is in the client's /root/root.crt):"
	@echo "  docker exec -it dbtls-pg-cluster-node100 bash -c '. /etc/dbtls-sim/secrets.env; PGPASSWORD=\$$WEBADMIN_PASSWORD psql \"sslmode=verify-full sslrootcert=/root/root.crt host=node103-pg-cluster.vap.test user=webadmin dbname=postgres\"'"
	@echo "Buttons:    $(BIN)/dbtls sim press 'Re-issue certificates' --env pg-cluster --set scope=server"
	@echo "Uninstall:  $(BIN)/dbtls sim uninstall --env pg-cluster"
	@echo "Stop it and remove everything:  $(BIN)/dbtls sim down --env pg-cluster"

# Benchmarks (never part of `make test`): downtime, install time vs size, certificate work, TLS cost.
# matplotlib (plots) is the optional `bench` extra, pinned dependencies kept by the lock file.
BENCH_ARGS := $(if $(BENCH_QUICK),--quick,)
bench: images
	$(BIN)/pip install --quiet -e '.[bench]' -c requirements.lock
	$(BIN)/python -m bench $(BENCH_ARGS)

clean-sim: venv
	$(BIN)/dbtls sim down --all
