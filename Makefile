# piwheels developer commands. `make run` and `make test` are the front door:
# each sets up what it needs (Debian packages when root, a virtualenv, the
# Python packages) and then does its job.

DEB_PYTHON := /usr/bin/python3
# The virtualenv's interpreter: Debian's python3, which the Debian packages
# run on (its optimised build counts: "Performance" in docs/master.rst).
PYTHON ?= $(or $(wildcard $(DEB_PYTHON)),python3)
VENV ?= .venv
VBIN := $(VENV)/bin
VAR ?= var
PYTEST_ARGS ?=
BENCH_ARGS ?=
TESTS ?= tests
# Ansible, Molecule and the linters live in their own virtualenv, so the
# project's stays light (molecule/requirements.txt).
DEPLOY_VENV ?= .venv-deploy
DEPLOY_BIN := $(DEPLOY_VENV)/bin
DEPLOY_ENV := PATH=$(CURDIR)/$(DEPLOY_BIN):$$PATH \
	CONTAINERS_CONF=$(CURDIR)/scripts/containers.conf \
	PIWHEELS_DEB_DIR=$(CURDIR)/dist \
	PIWHEELS_WHEELHOUSE=$(CURDIR)/$(DEPLOY_VENV)/wheelhouse

.PHONY: all develop sysdeps debian-python test test-venv test-debian run bench \
	doc deb clean test-deploy test-debs test-molecule lint-ansible

all: develop

sysdeps:
	@scripts/install-deps

$(VENV)/.installed: setup.py
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/install-deps-venv
	$(PYTHON) -m venv $(VENV)
	$(VBIN)/pip install -q --upgrade pip
	$(VBIN)/pip install -q -e '.[master,slave,monitor,test,doc]'
	$(VBIN)/pip download -q -d $(VENV)/wheelhouse setuptools wheel
	touch $@

develop: sysdeps $(VENV)/.installed

# Debian's python3-* packages the .debs depend on, for Debian's python3.
debian-python: sysdeps
	@scripts/install-debian-python

test: test-venv test-debian

test-venv: develop
	$(VBIN)/python -m pytest $(PYTEST_ARGS) $(TESTS)

# The same suite on Debian bookworm's python3-* packages (the .debs' set),
# for every test whose modules exist in Debian. piwheels itself is not
# installed for Debian's python: PYTHONPATH lets the commands the tests start
# in subprocesses import it too.
test-debian: debian-python $(VENV)/.installed
	PIWHEELS_DEPENDENCY_SET=debian PYTHONPATH=$(CURDIR) $(DEB_PYTHON) -m pytest $(PYTEST_ARGS) -m 'not venv_only' $(TESTS)

run: develop
	$(VBIN)/python -m piwheels.devfarm --var $(VAR)

# The build loop's benchmark (bench/build_loop.py) as the .debs run the
# master: on Debian's python3 and python3-* packages.
bench: debian-python
	PYTHONPATH=$(CURDIR) $(DEB_PYTHON) bench/build_loop.py $(BENCH_ARGS)

doc: develop
	$(VBIN)/sphinx-build -W -b html docs docs/_build/html

# The Debian packages, built in a copy of the tree, into dist/ (lintian-checked).
deb:
	scripts/build-debs

$(DEPLOY_VENV)/.installed: molecule/requirements.txt
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/install-deps-venv
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_BIN)/pip install -q --upgrade pip
	$(DEPLOY_BIN)/pip install -q -r molecule/requirements.txt
	$(DEPLOY_BIN)/pip download -q --only-binary :all: -d $(DEPLOY_VENV)/wheelhouse setuptools wheel
	touch $@

# The Ansible roles and playbooks: yamllint and ansible-lint (production).
lint-ansible: $(DEPLOY_VENV)/.installed
	$(DEPLOY_ENV) yamllint -s ansible molecule
	$(DEPLOY_ENV) ANSIBLE_ROLES_PATH=ansible/roles ansible-lint --profile production \
		-c ansible/.ansible-lint ansible $(addprefix molecule/default/,prepare.yml converge.yml verify.yml)

# The Molecule scenario: a master and two slaves in systemd containers,
# converged from the .debs in dist/ with ansible/site.yml, converged again
# (nothing may change), then a fixture package is built, served, installed
# and counted. Each container keeps its apt downloads under build/.
test-molecule: $(DEPLOY_VENV)/.installed deb
	@scripts/install-deps scripts/deploy-apt-packages
	scripts/build-bookworm-image
	mkdir -p $(foreach host,master slave1 slave2,build/deploy-cache/molecule/piwheels-$(host)/partial)
	@# the containers' names are the machine's: one scenario at a time
	flock /tmp/piwheels-molecule.lock env $(DEPLOY_ENV) molecule test

# The .debs in dist/ installed into a fresh bookworm systemd container
# (tests/deploy): commands on Debian's libraries, units, the master on
# PostgreSQL, the slave proving itself and its reboot guard, purge.
test-debs: develop deb
	@scripts/install-deps scripts/deploy-apt-packages
	CONTAINERS_CONF=$(CURDIR)/scripts/containers.conf PIWHEELS_DEPLOY_TESTS=1 \
		PIWHEELS_PREBUILT_DEBS=1 $(VBIN)/python -m pytest $(PYTEST_ARGS) tests/deploy

test-deploy: test-debs test-molecule

clean:
	rm -rf build dist *.egg-info docs/_build .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
