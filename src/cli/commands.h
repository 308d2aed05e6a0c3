// Each subcommand registers its flags on the CLI11 app and returns the function that runs it.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace zephyr::cli {

using Run = std::function<int()>;

Run add_tokenize(CLI::App& app);
Run add_detokenize(CLI::App& app);
Run add_template(CLI::App& app);
Run add_generate(CLI::App& app);
Run add_chat(CLI::App& app);
Run add_perplexity(CLI::App& app);
Run add_init(CLI::App& app);
Run add_debug(CLI::App& app);
Run add_bench(CLI::App& app);
Run add_sft(CLI::App& app);
Run add_pretrain(CLI::App& app);
Run add_dpo(CLI::App& app);
Run add_export_gguf(CLI::App& app);
Run add_quantize(CLI::App& app);
Run add_export_hf(CLI::App& app);
Run add_merge(CLI::App& app);
Run add_serve(CLI::App& app);
Run add_feedback(CLI::App& app);
Run add_eval(CLI::App& app);
Run add_data(CLI::App& app);
Run add_recipe(CLI::App& app);

}  // namespace zephyr::cli
