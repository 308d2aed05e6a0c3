// zephyr init: a randomly initialised model directory in HF layout.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "model/init.h"

namespace zephyr::cli {

Run add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Create a randomly initialised model (HF layout) for tests, benchmarks and the tiny recipe");
  struct Args {
    std::string out, tokenizer, dtype = "f32", arch = "mistral";
    int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, intermediate = 0, vocab = 0, window = 0, head_dim = 0;
    int64_t max_pos = 32768;
    double rope_theta = 10000.0, eps = 1e-5;
    bool tie = false;
    uint64_t seed = 0;
    int shards = 1;
    ThreadsFlag threads;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("-o,--output", a->out, "directory to create")->required();
  cmd->add_option("--hidden", a->hidden, "hidden size")->required();
  cmd->add_option("--layers", a->layers, "number of layers")->required();
  cmd->add_option("--heads", a->heads, "attention heads")->required();
  cmd->add_option("--kv-heads", a->kv_heads, "key/value heads (grouped-query attention; default = heads)");
  cmd->add_option("--intermediate", a->intermediate, "MLP intermediate size")->required();
  cmd->add_option("--vocab", a->vocab, "vocabulary size (default: the tokenizer's)");
  cmd->add_option("--head-dim", a->head_dim, "per-head size (default hidden / heads)");
  cmd->add_option("--sliding-window", a->window, "attention window in tokens (default: none)");
  cmd->add_option("--max-position", a->max_pos, "max_position_embeddings (default 32768)");
  cmd->add_option("--rope-theta", a->rope_theta, "RoPE base (default 10000)");
  cmd->add_option("--rms-norm-eps", a->eps, "RMSNorm epsilon (default 1e-5)");
  cmd->add_flag("--tie-embeddings", a->tie, "share the embedding and lm_head weights");
  cmd->add_option("--arch", a->arch, "mistral or llama (default mistral)")->check(CLI::IsMember({"mistral", "llama"}));
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json or a model directory; its files are copied in");
  cmd->add_option("--dtype", a->dtype, "bf16, f16 or f32 (default f32)")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--shards", a->shards, "split the weights into this many safetensors files (default 1)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "random seed (default 0)");
  a->threads.add(cmd);
  return [a] {
    a->threads.apply();
    InitOptions o;
    ModelConfig& c = o.config;
    c.architecture = a->arch == "llama" ? "LlamaForCausalLM" : "MistralForCausalLM";
    c.hidden_size = a->hidden;
    c.num_hidden_layers = a->layers;
    c.num_attention_heads = a->heads;
    c.num_key_value_heads = a->kv_heads ? a->kv_heads : a->heads;
    c.intermediate_size = a->intermediate;
    c.head_dim = a->head_dim ? a->head_dim : (a->heads > 0 ? a->hidden / a->heads : 0);
    c.sliding_window = a->arch == "llama" ? 0 : a->window;
    c.max_position_embeddings = a->max_pos;
    c.rope_theta = a->rope_theta;
    c.rms_norm_eps = a->eps;
    c.tie_word_embeddings = a->tie;
    c.vocab_size = a->vocab;
    if (!a->tokenizer.empty()) {
      fill_from_tokenizer(c, a->tokenizer);
    } else if (c.vocab_size == 0) {
      fail("--vocab", "is required without --tokenizer");
    }
    if (a->hidden > 0 && a->heads > 0 && !a->head_dim && a->hidden % a->heads != 0)
      fail("--hidden", "must be a multiple of --heads (or give --head-dim)");
    o.dtype = a->dtype == "bf16" ? DType::BF16 : a->dtype == "f16" ? DType::F16 : DType::F32;
    o.seed = a->seed;
    o.shards = a->shards;
    o.tokenizer = a->tokenizer;
    init_model(a->out, o);
    std::fprintf(stderr, "wrote %s: %.1fM parameters, %s\n", a->out.c_str(), double(c.num_parameters()) / 1e6, a->dtype.c_str());
    return 0;
  };
}

}  // namespace zephyr::cli
