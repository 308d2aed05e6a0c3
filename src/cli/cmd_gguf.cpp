// zephyr export-gguf / quantize / export-hf / merge: models to GGUF (llama.cpp, ollama), GGUFs
// re-quantized, GGUFs back to HF model directories (to fine-tune them), LoRA adapters merged in.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/json_file.h"
#include "model/gguf_model.h"
#include "model/lora.h"
#include "model/trainable.h"

namespace zephyr::cli {

namespace {

const std::map<std::string, ExportOptions> kTypes = {
    {"f32", {DType::F32, {}}},   {"f16", {DType::F16, {}}},   {"bf16", {DType::BF16, {}}},
    {"q8_0", {DType::Q8_0, {}}}, {"q4_0", {DType::Q4_0, {}}}, {"q4_1", {DType::Q4_1, {}}},
    {"q4_k", {DType::Q4_K, {}}}, {"q6_k", {DType::Q6_K, {}}}, {"q4_k_m", {DType::Q4_K, DType::Q6_K}}};

std::vector<std::string> type_names() {
  std::vector<std::string> v;
  for (auto& [k, o] : kTypes) v.push_back(k);
  return v;
}

int convert(const std::string& in, const std::string& out, const std::string& type) {
  const auto t0 = std::chrono::steady_clock::now();
  if (std::filesystem::exists(out) && std::filesystem::is_directory(out)) fail(out, "is a directory; give the output file name");
  refuse_output_over_input(out, in);
  export_gguf(in, out, kTypes.at(type));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s (%s, %.1f MB) in %.1f s\n", out.c_str(), type.c_str(),
               double(std::filesystem::file_size(out)) / 1e6, s);
  return 0;
}

}  // namespace

Run add_export_gguf(CLI::App& app) {
  auto* cmd = app.add_subcommand("export-gguf", "Write an HF model directory as a GGUF file (for llama.cpp, ollama and zephyr)");
  struct Args {
    std::string in, out, type = "f16";
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->in, "HF model directory")->required();
  cmd->add_option("output", a->out, "GGUF file to write")->required();
  cmd->add_option("--type", a->type,
                  "weight type: f16 (default), bf16, f32, q8_0, q4_0, q4_1, q4_k, q6_k, or q4_k_m (Q4_K with Q6_K for "
                  "output, attn_v and ffn_down); norms stay F32")
      ->transform(CLI::IsMember(type_names(), CLI::ignore_case));
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    return convert(a->in, a->out, a->type);
  };
}

Run add_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Convert a model (HF directory or GGUF) to a GGUF of another weight type");
  struct Args {
    std::string in, out, type;
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("input", a->in, "HF model directory or GGUF file")->required();
  cmd->add_option("output", a->out, "GGUF file to write")->required();
  cmd->add_option("--type", a->type, "q8_0, q4_0, q4_1, q4_k, q6_k, q4_k_m, f16, bf16 or f32")
      ->required()
      ->transform(CLI::IsMember(type_names(), CLI::ignore_case));
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    return convert(a->in, a->out, a->type);
  };
}

Run add_export_hf(CLI::App& app) {
  auto* cmd = app.add_subcommand("export-hf",
                                 "Write a GGUF as an HF model directory (weights dequantized; tokenizer and chat template from "
                                 "the GGUF), so sft and dpo can start from it and transformers loads it");
  struct Args {
    std::string in, out, dtype = "f32";
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("gguf", a->in, "GGUF file")->required();
  cmd->add_option("output", a->out, "model directory to write (new)")->required();
  cmd->add_option("--dtype", a->dtype, "weight type: f32 (default) or bf16; norms stay F32")
      ->transform(CLI::IsMember({"f32", "bf16"}, CLI::ignore_case));
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    if (!is_gguf_file(a->in)) fail(a->in, "is not a GGUF file");
    const auto t0 = std::chrono::steady_clock::now();
    export_hf(a->in, a->out, a->dtype == "f32" ? DType::F32 : DType::BF16);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "wrote %s (%s, %.1f MB of weights) in %.1f s\n", a->out.c_str(), a->dtype.c_str(),
                 double(std::filesystem::file_size(std::filesystem::path(a->out) / "model.safetensors")) / 1e6, s);
    return 0;
  };
}

Run add_merge(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "Merge a LoRA adapter into its base model: an HF model directory (F32) with the "
                                          "adapted weights W + (alpha/r)·B·A, or a GGUF with --gguf");
  struct Args {
    std::string base, adapter, out, gguf;
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("base", a->base, "the base model: HF model directory or GGUF file")->required();
  cmd->add_option("adapter", a->adapter, "LoRA adapter directory (adapter_config.json + adapter_model.safetensors)")->required();
  cmd->add_option("output", a->out, "model directory to write (new), or GGUF file with --gguf")->required();
  cmd->add_option("--gguf", a->gguf, "write a GGUF of this weight type instead (as export-gguf --type)")
      ->transform(CLI::IsMember(type_names(), CLI::ignore_case));
  a->threads.add(cmd);
  return [a] {
    namespace fs = std::filesystem;
    a->threads.apply();
    const auto t0 = std::chrono::steady_clock::now();
    const PeftAdapter adapter = PeftAdapter::load(a->adapter);
    for (const std::string& in : {a->base, a->adapter}) refuse_output_over_input(a->out, in);
    if (a->gguf.empty() && fs::exists(a->out) && !(fs::is_directory(a->out) && fs::is_empty(a->out)))
      fail(a->out, "exists; give a new directory for the merged model");
    // Intermediate HF directories beside the output, removed whatever happens.
    const fs::path parent = fs::absolute(a->out).parent_path();
    std::vector<fs::path> scratch;
    struct Cleanup {
      std::vector<fs::path>& dirs;
      ~Cleanup() {
        std::error_code ec;
        for (auto& d : dirs) fs::remove_all(d, ec);
      }
    } cleanup{scratch};
    auto scratch_dir = [&](const char* what) {
      scratch.push_back(parent / ("." + fs::path(a->out).filename().string() + "." + what + ".tmp"));
      fs::remove_all(scratch.back());
      return scratch.back();
    };
    fs::path base = a->base;
    if (is_gguf_file(base)) {
      const fs::path hf = scratch_dir("base");
      export_hf(base, hf, DType::F32);
      base = hf;
    }
    TrainableModel model = TrainableModel::load(base);
    model.merge(adapter);
    const fs::path merged = scratch_dir("merged");
    model.save(merged, base);
    if (a->gguf.empty()) {
      fs::remove_all(a->out);
      fs::rename(merged, a->out);
    } else {
      export_gguf(merged, a->out, kTypes.at(a->gguf));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "merged %s (r %lld, %zu modules) into %s: wrote %s in %.1f s\n", a->adapter.c_str(),
                 (long long)adapter.config.r, adapter.modules.size(), a->base.c_str(), a->out.c_str(), s);
    return 0;
  };
}

}  // namespace zephyr::cli
