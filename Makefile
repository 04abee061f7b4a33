# logocap_mm developer entry points. Both targets create .venv from tools/install_env.sh
# when it is missing (a second run reuses it).
#   make test            run the test-suite (mmcv-lite environment by default)
#   make demo            synthetic crowd benchmark: generate data, mim train a tiny LOGO-CAP on
#                        CPU, mim test the 3 adaptation levels, KEM upper bound, drawings
#                        (DEMO_SCHEDULE=short: 6 training epochs instead of 8)
#   make peers           synthetic training ablations and the CID peer on a normal and a
#                        crowded split (tools/peers.sh; ~2 h on CPU, not part of demo)
#   MMCV=full make ...   build mmcv 2.1.0 with its CPU ops instead (~10 min; needed by DEKR)
VENV ?= .venv
MMCV ?= lite
PY := $(VENV)/bin/python
STAMP := $(VENV)/.logocap_env_$(MMCV)
PYTEST_ARGS ?= -q

.PHONY: env test demo peers clean-env

$(STAMP):
	VENV=$(VENV) MMCV=$(MMCV) bash tools/install_env.sh

env: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: $(STAMP)
	VENV=$(VENV) MMCV=$(MMCV) bash tools/synthetic_demo.sh

peers: $(STAMP)
	VENV=$(VENV) bash tools/peers.sh

clean-env:
	rm -rf $(VENV)
