# zephyr.cpp — `make demo` runs the main job end to end; `make test` builds and runs every test.
BUILD ?= build
JOBS ?= 2
REF := .ref
APT_PACKAGES := build-essential cmake ninja-build pkg-config git \
  libpcre2-dev libutf8proc-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev libbenchmark-dev libopenblas-openmp-dev python3-torch

.PHONY: deps apt-deps refs build test demo bench clean

deps: apt-deps refs

# Installs only what is missing, so a second run is quick and needs no network.
apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	python3 -m venv --help >/dev/null 2>&1 || missing="$$missing python3 python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	else echo "Debian packages: all present"; fi

# Reference implementations for tests and benchmarks only (never used by the product).
refs: $(REF)/.stamp
$(REF)/.stamp: tests/ref/setup.sh
	bash tests/ref/setup.sh $(REF)
	@touch $@

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build refs
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

demo: build refs
	bash scripts/demo.sh $(BUILD)/bin/zephyr $(REF)

bench: build refs
	bash bench/run.sh $(BUILD) $(REF)

clean:
	rm -rf $(BUILD)
