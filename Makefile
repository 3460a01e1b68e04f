# Two commands do all the setup on a fresh machine:
#   make run    - the service on the embedded default (SQLite, local Ray, no external servers)
#   make test   - the whole test suite (needs PostgreSQL and Redis on 127.0.0.1 for its integration tests)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install browser cluster-tools bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/conductor up

test: install browser cluster-tools
	$(BIN)/python -m pytest -q -ra

# The web page's browser tests (tests/acceptance/test_web.py) drive Debian's Chromium, never a
# browser that Playwright downloads: install it when it is missing and we may (root, as CI is).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

# The two-host tests (tests/cluster) make hosts from network namespaces, each with its own sshd,
# and reach PostgreSQL and Redis through socat: install what is missing when we may (root, as CI is).
CLUSTER_TOOLS := /usr/sbin/sshd:openssh-server /usr/bin/ssh:openssh-client /usr/sbin/ip:iproute2 \
	/usr/bin/rsync:rsync /usr/bin/socat:socat /usr/bin/unshare:util-linux
cluster-tools:
	@missing=""; for pair in $(CLUSTER_TOOLS); do [ -x "$${pair%%:*}" ] || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

clean:
	rm -rf $(VENV) .pytest_cache
