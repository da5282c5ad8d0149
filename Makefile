# GlacierFlow: set-up, tests and the demo on Debian 12 (run as root for the apt step).
#   make setup   apt packages, the venv, the qgis_process fix, a throwaway QGIS profile
#   make test    set-up, then lint (ruff) and the whole test suite (tests/unit without QGIS, then tests/qgis)
#   make demo    set-up, then the velocity job headless on the built-in sample -> demo_output/
#   make package the plugin zip for the QGIS plugin repository -> dist/glacierflow-<version>.zip
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(ROOT)/.build
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis qgis-providers python3-venv python3-pip python3-matplotlib xvfb xauth
PLUGIN := glacierflow
DEMO_OUT ?= $(ROOT)/demo_output

# Everything QGIS needs to run headless with our profile and the venv's packages.
QGIS_ENV = QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR=$(BUILD)/runtime \
	QGIS_CUSTOM_CONFIG_PATH=$(BUILD)/profile QGIS_PLUGINPATH=$(BUILD)/plugins \
	PYTHONPATH=$(ROOT):$(VENV_SITE) QGIS_PROCESS=/usr/bin/qgis_process.bin
VENV_SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

.PHONY: setup apt venv profile lint test demo bench package clean

setup: apt venv profile

apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "Installing $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@# /usr/bin/qgis_process sources /etc/default/qgis, whose --noversioncheck only the desktop accepts.
	@if grep -q "^QGIS_OPTS='--noversioncheck'" /etc/default/qgis 2>/dev/null; then \
		sed -i "s|^QGIS_OPTS='--noversioncheck'|case \"\$$0\" in *qgis_process*) QGIS_OPTS='' ;; *) QGIS_OPTS='--noversioncheck' ;; esac|" /etc/default/qgis; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/runtime.txt requirements/train.txt requirements/dev.txt requirements/worker.txt
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/dev.txt
	@touch $@

profile: venv
	@mkdir -p $(BUILD)/plugins $(BUILD)/profile $(BUILD)/runtime && chmod 700 $(BUILD)/runtime
	@ln -sfn $(ROOT)/$(PLUGIN) $(BUILD)/plugins/$(PLUGIN)
	@$(QGIS_ENV) qgis_process.bin plugins enable $(PLUGIN) >/dev/null 2>&1 || true
	@$(QGIS_ENV) qgis_process.bin plugins 2>/dev/null | grep -q "\* *$(PLUGIN)" \
		|| { echo "The $(PLUGIN) plugin could not be enabled in $(BUILD)/profile"; exit 1; }

# What the QGIS plugin repository checks (Bandit, detect-secrets) runs on the package that ships.
lint: setup
	cd $(ROOT) && $(VENV)/bin/ruff check .
	cd $(ROOT) && $(VENV)/bin/mypy
	cd $(ROOT) && $(VENV)/bin/bandit -q -r $(PLUGIN)
	cd $(ROOT) && $(VENV)/bin/detect-secrets scan $(PLUGIN) | $(PY) -c 'import json, sys; found = json.load(sys.stdin)["results"]; sys.exit(f"detect-secrets: {found}" if found else 0)'

test: lint
	cd $(ROOT) && $(QGIS_ENV) $(PY) -m pytest -q -p no:pytest_qgis tests/unit
	cd $(ROOT) && $(QGIS_ENV) $(PY) -m pytest -q tests/qgis

demo: setup
	cd $(ROOT) && $(QGIS_ENV) $(PY) -m bench.demo --out $(DEMO_OUT)

package:
	cd $(ROOT) && python3 tools/package.py --out $(ROOT)/dist

bench: setup
	cd $(ROOT) && $(QGIS_ENV) $(PY) -m bench.bench_engines

clean:
	rm -rf $(BUILD) $(DEMO_OUT) $(ROOT)/dist
