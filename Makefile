# The README's two commands: `make run` and `make test`. Both set up what they need themselves
# (Debian packages, a virtualenv with the pinned Python dependencies, a running Docker engine, the
# base images); a second run reuses all of it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RELEASE ?= bookworm
# Extra releases the docker tests cover (CI sets DBTLS_RELEASES="bookworm trixie").
export DBTLS_RELEASES ?= $(RELEASE)

.PHONY: run test lint unit docker-tests sysdeps docker venv images clean-sim help

help:
	@echo "make run   - build, start the simulated pg-cluster, install the add-on through manifest.jps"
	@echo "make test  - lint, unit tests and docker tests (real PostgreSQL, Pgpool-II, MariaDB)"

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

clean-sim: venv
	$(BIN)/dbtls sim down --all
