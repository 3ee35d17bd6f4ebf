# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
UV_VERSION := 0.13.9
UV := .uv/bin/uv
PY := .venv/bin/python
OSTEOSCAN := .venv/bin/osteoscan
DEMO := demo

.PHONY: demo test test-fast lint bench clean chromium

$(UV):
	python3 -m venv .uv
	.uv/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	touch $@

demo: .venv/.synced
	$(OSTEOSCAN) synth --out $(DEMO)/train --n 300 --seed 0 --size 256
	$(OSTEOSCAN) synth --out $(DEMO)/test --n 120 --seed 1 --size 256
	$(OSTEOSCAN) audit $(DEMO)/train --out $(DEMO)/audit
	$(OSTEOSCAN) train --data $(DEMO)/train --out $(DEMO)/bundle --model resnet18 --mode scratch \
		--image-size 128 --epochs 12 --patience 6 --batch-size 32 --threshold youden \
		--cache-dir $(DEMO)/.cache --no-progress --overwrite
	$(OSTEOSCAN) evaluate $(DEMO)/bundle --data $(DEMO)/test --cache-dir $(DEMO)/.cache
	$(OSTEOSCAN) train --data $(DEMO)/train --out $(DEMO)/bundle-lite0-frozen \
		--model efficientnet_lite0 --mode frozen --image-size 128 --epochs 30 --patience 10 \
		--batch-size 32 --threshold youden --cache-dir $(DEMO)/.cache --no-progress --overwrite
	$(OSTEOSCAN) evaluate $(DEMO)/bundle-lite0-frozen --data $(DEMO)/test --cache-dir $(DEMO)/.cache
	@echo
	@echo "bundle:  $(DEMO)/bundle (resnet18 from scratch: metadata.json, model.safetensors, logs/)"
	@echo "bundle:  $(DEMO)/bundle-lite0-frozen (EfficientNet-Lite0, frozen ImageNet backbone)"
	@echo "audit:   $(DEMO)/audit/audit.html"
	@echo "metrics: $(OSTEOSCAN) evaluate $(DEMO)/bundle --data $(DEMO)/test --json"

# The browser test drives Debian's chromium (Playwright never downloads a browser here).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; }

test: .venv/.synced chromium
	$(PY) -m pytest -q

test-fast: .venv/.synced
	$(PY) -m pytest -q -m "not slow"

lint: .venv/.synced
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

bench: .venv/.synced
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/audit_speed.py

clean:
	rm -rf $(DEMO) .venv .uv
