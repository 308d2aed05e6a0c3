// zephyr generate: one completion of a prompt (raw, or through the chat template), streamed.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "generate/generator.h"
#include "tokenizer/conversation.h"

namespace zephyr::cli {

namespace {

struct GenerateArgs {
  ModelFlags model;
  std::string prompt, system;
  bool chat = false;
  int64_t max_new_tokens = 256;
  std::vector<std::string> stops;
  std::string json_schema;
  bool json = false;
  SamplingFlags sampling;
  ThreadsFlag threads;
};

}  // namespace

Run add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Complete a prompt with a model, streaming the answer to stdout");
  auto a = std::make_shared<GenerateArgs>();
  a->model.add(cmd);
  cmd->add_option("-p,--prompt", a->prompt, "the prompt text")->required();
  cmd->add_flag("--chat", a->chat, "send the prompt as a user message through the model's chat template");
  cmd->add_option("--system", a->system, "system message (with --chat)");
  cmd->add_option("-n,--max-new-tokens", a->max_new_tokens, "most tokens to generate (default 256)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop", a->stops, "stop before this text (repeatable)");
  cmd->add_flag("--json", a->json, "answer with a JSON object (constrained decoding; ends when the object is complete)");
  cmd->add_option("--json-schema", a->json_schema,
                  "answer with a JSON value valid against the schema in FILE (the subset of OpenAI's structured outputs; "
                  "see README)");
  a->sampling.add(cmd);
  a->threads.add(cmd);
  return [a] {
    if (!a->system.empty() && !a->chat) fail("--system", "needs --chat (the system message goes through the chat template)");
    if (a->json && !a->json_schema.empty()) fail("--json", "give --json or --json-schema, not both");
    std::shared_ptr<const StructuredOutput> structured;
    if (a->json) structured = StructuredOutput::from(JsonGrammar::any_object());
    if (!a->json_schema.empty()) {
      const ordered_json schema = parse_ordered_json(read_file(a->json_schema), "--json-schema " + a->json_schema);
      try {
        structured = StructuredOutput::from(JsonGrammar::from_schema(schema));
      } catch (const Error& e) {
        fail("--json-schema " + a->json_schema, e.reason());
      }
    }
    a->threads.apply();
    const Model model = a->model.load();
    const Tokenizer tok = model_tokenizer(model);
    std::vector<int> prompt;
    if (a->chat) {
      ordered_json row = {{"messages", ordered_json::array()}};
      if (!a->system.empty()) row["messages"].push_back({{"role", "system"}, {"content", a->system}});
      row["messages"].push_back({{"role", "user"}, {"content", a->prompt}});
      prompt = chat_ids(chat_template_of(tok, a->model.path()), tok, row, true);
    } else {
      prompt = tok.encode(a->prompt, true);
    }
    GenerationOptions opt;
    opt.sampling = a->sampling.resolve(model);
    opt.max_new_tokens = a->max_new_tokens;
    opt.eos_ids = model.eos_token_ids();
    opt.stop_strings = a->stops;
    opt.structured = structured;
    Generator gen(model, tok);
    GenerationResult r;
    try {
      r = gen.generate(prompt, opt, [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
      });
    } catch (const Error& e) {
      if (e.field() != "max_tokens") throw;
      fail("--max-new-tokens", e.reason());
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    const int64_t n = int64_t(r.tokens.size());
    std::fprintf(stderr, "prompt: %lld tokens, %.2f tokens/s | generation: %lld tokens, %.2f tokens/s | %s | seed %llu\n",
                 (long long)r.prompt_tokens, r.prompt_seconds > 0 ? double(r.prompt_evaluated) / r.prompt_seconds : 0.0,
                 (long long)n, r.generation_seconds > 0 ? double(n) / r.generation_seconds : 0.0,
                 r.finish_reason.c_str(), (unsigned long long)opt.sampling.seed);
    return 0;
  };
}

}  // namespace zephyr::cli
