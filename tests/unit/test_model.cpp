// Loading checks and the KV cache: decoding token by token (or in uneven chunks) gives the logits
// of one pass over the whole sequence; bad files are errors naming the file and the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_util.h"
#include "core/rng.h"
#include "generate/generator.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/inference.h"
#include "model/init.h"
#include "model/served_adapter.h"
#include "model/trainable.h"

using namespace zephyr;
using zephyr::test::error_of;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  return test::fresh_temp_path("model-" + name);
}

ModelConfig tiny_config(int64_t window) {
  ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 12;
  c.vocab_size = 97;
  c.sliding_window = window;
  c.max_position_embeddings = 600;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

fs::path tiny_model(const std::string& name, DType dtype, int64_t window, int shards = 1) {
  const fs::path d = fresh_dir(name);
  InitOptions o;
  o.config = tiny_config(window);
  o.dtype = dtype;
  o.seed = 5;
  o.shards = shards;
  init_model(d, o);
  return d;
}

std::vector<int> random_ids(size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(int(rng.next() % uint64_t(vocab)));
  return ids;
}

}  // namespace

TEST(KVCache, IncrementalDecodingMatchesOnePass) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Model m = Model::load(tiny_model("kv", dtype, 7));
    const int64_t V = m.config.vocab_size;
    const auto ids = random_ids(300, int(V), 3);  // crosses the 256-token prefill chunk
    std::vector<float> full(ids.size() * size_t(V));
    InferenceState whole(m);
    forward(m, ids.data(), int64_t(ids.size()), whole, full.data(), true);

    InferenceState step(m);
    std::vector<float> one(static_cast<size_t>(V));
    float worst = 0;
    size_t pos = 0;
    // Uneven pieces: single tokens (GEMV path), small and large chunks (GEMM path).
    for (size_t piece : {1, 1, 5, 3, 40, 1, 250}) {
      piece = std::min(piece, ids.size() - pos);
      forward(m, ids.data() + pos, int64_t(piece), step, one.data(), false);
      pos += piece;
      for (int64_t v = 0; v < V; ++v) worst = std::max(worst, std::fabs(one[size_t(v)] - full[(pos - 1) * size_t(V) + size_t(v)]));
    }
    EXPECT_EQ(pos, ids.size());
    EXPECT_LT(worst, 2e-5f) << dtype_name(dtype);
    EXPECT_EQ(step.size(), int64_t(ids.size()));
  }
}

TEST(KVCache, TruncateRewindsTheConversation) {
  const Model m = Model::load(tiny_model("rewind", DType::F32, 0));
  const int64_t V = m.config.vocab_size;
  const auto a = random_ids(20, int(V), 1), b = random_ids(6, int(V), 2);
  InferenceState s(m), fresh(m);
  std::vector<float> l1(static_cast<size_t>(V)), l2(static_cast<size_t>(V));
  forward(m, a.data(), 20, s, l1.data());
  s.truncate(10);
  forward(m, b.data(), 6, s, l1.data());
  std::vector<int> joined(a.begin(), a.begin() + 10);
  joined.insert(joined.end(), b.begin(), b.end());
  forward(m, joined.data(), int64_t(joined.size()), fresh, l2.data());
  for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(l1[size_t(v)], l2[size_t(v)], 2e-5f);
}

TEST(Model, ShardedAndSingleFilesGiveTheSameLogits) {
  const Model one = Model::load(tiny_model("one", DType::F32, 0));
  const Model three = Model::load(tiny_model("three", DType::F32, 0, 3));
  EXPECT_TRUE(fs::exists(three.dir / "model.safetensors.index.json"));
  const auto ids = random_ids(9, 97, 4);
  std::vector<float> a(9 * 97), b(9 * 97);
  InferenceState s1(one), s3(three);
  forward(one, ids.data(), 9, s1, a.data(), true);
  forward(three, ids.data(), 9, s3, b.data(), true);
  EXPECT_EQ(a, b);
}

TEST(Model, BadFilesAreErrorsNamingFileAndTensor) {
  const fs::path d = tiny_model("bad", DType::F32, 0);
  const fs::path st = d / "model.safetensors";
  // Wrong shape.
  {
    std::vector<float> zeros(97 * 49);
    std::vector<TensorToWrite> t{{"model.embed_tokens.weight", DType::F32, {97, 49}, zeros.data()}};
    write_safetensors(st, t);
    const std::string e = error_of([&] { Model::load(d); });
    EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
    EXPECT_NE(e.find("model.embed_tokens.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("[97, 49]"), std::string::npos) << e;
  }
  // Missing tensor.
  {
    std::vector<float> zeros(97 * 48);
    std::vector<TensorToWrite> t{{"model.embed_tokens.weight", DType::F32, {97, 48}, zeros.data()}};
    write_safetensors(st, t);
    const std::string e = error_of([&] { Model::load(d); });
    EXPECT_NE(e.find("missing tensor 'lm_head.weight'"), std::string::npos) << e;
  }
  // Unsupported dtype.
  {
    std::vector<int64_t> ints(97 * 48);
    const std::string header = R"({"model.embed_tokens.weight":{"dtype":"I64","shape":[97,48],"data_offsets":[0,37248]}})";
    std::string bytes(8, '\0');
    bytes[0] = char(header.size());
    bytes += header + std::string(reinterpret_cast<const char*>(ints.data()), ints.size() * 8);
    write_file_atomic(st, bytes);
    const std::string e = error_of([&] { Model::load(d); });
    EXPECT_NE(e.find("has dtype I64"), std::string::npos) << e;
  }
}

TEST(Safetensors, HostileHeadersAreErrorsNotCrashes) {
  const fs::path d = fresh_dir("hostile");
  fs::create_directories(d);
  const fs::path f = d / "x.safetensors";
  auto with_header = [&](const std::string& header, size_t data_bytes, uint64_t len_override = 0) {
    std::string bytes(8, '\0');
    const uint64_t len = len_override ? len_override : header.size();
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((len >> (8 * i)) & 0xff);
    bytes += header + std::string(data_bytes, '\0');
    write_file_atomic(f, bytes);
    return error_of([&] { SafetensorsFile s(f); });
  };
  EXPECT_NE(with_header("{}", 0, 1ull << 40).find("runs past the end"), std::string::npos);
  EXPECT_NE(with_header("{\"a\":", 0).find("not valid JSON"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8).find("outside"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})", 16).find("need 20"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,16]}})", 16).find("dimension"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"Q9","shape":[4],"data_offsets":[0,16]}})", 16).find("unknown dtype"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16)
                .find("larger than the file"),
            std::string::npos);
  write_file_atomic(f, "abc");
  EXPECT_NE(error_of([&] { SafetensorsFile s(f); }).find("truncated"), std::string::npos);
}

TEST(Safetensors, WriteThenReadRoundTrips) {
  const fs::path d = fresh_dir("roundtrip");
  fs::create_directories(d);
  std::vector<float> a{1.5f, -2.0f, 3.25f};
  std::vector<uint16_t> b{f32_to_bf16(0.1f), f32_to_bf16(-7.0f)};
  write_safetensors(d / "t.safetensors", {{"a", DType::F32, {3}, a.data()}, {"b", DType::BF16, {1, 2}, b.data()}},
                    {{"format", "pt"}});
  SafetensorsFile s(d / "t.safetensors");
  ASSERT_NE(s.find("a"), nullptr);
  EXPECT_EQ(s.find("a")->shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(std::memcmp(s.find("a")->data, a.data(), 12), 0);
  EXPECT_EQ(s.find("b")->dtype, "BF16");
  EXPECT_EQ(bf16_to_f32(reinterpret_cast<const uint16_t*>(s.find("b")->data)[1]), -7.0f);
  EXPECT_EQ(s.metadata().at("format"), "pt");
  EXPECT_FALSE(fs::exists(d / "t.safetensors.tmp"));
}

TEST(DType, ConversionsRoundToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // exactly half way: stays even
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // half way above an odd mantissa: rounds up
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 4096), 0x3c00);  // below half an f16 ulp
}

// 16-bit data at an odd address (a safetensors header need not be padded) widen as aligned data do.
TEST(DType, SixteenBitDataWidenFromAnyAddress) {
  std::vector<uint16_t> h;
  for (float v : {1.0f, -2.5f, 0.333251953125f, 65504.0f, 6.1035156e-05f, 0.0f, 3.0f, -7.25f, 100.0f, 0.5f, 2.0f})
    h.push_back(f32_to_f16(v));
  std::vector<uint8_t> odd(h.size() * 2 + 1);
  std::memcpy(odd.data() + 1, h.data(), h.size() * 2);
  for (DType t : {DType::F16, DType::BF16}) {
    std::vector<float> a(h.size()), b(h.size());
    to_f32(t, h.data(), a.data(), h.size());
    to_f32(t, odd.data() + 1, b.data(), h.size());
    EXPECT_EQ(a, b) << dtype_name(t);
  }
}

// A header padded to an odd length puts every tensor at an odd address, as files MLX writes have
// them (their headers are not padded to 8): inference, training's load and a frozen (quantized)
// base read the same values as from the aligned file. (Under `make test-asan` UBSan would also
// catch a typed read of the misaligned data.)
TEST(Safetensors, TensorsAtOddOffsetsReadAsAligned) {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const std::string name = std::string("odd-") + dtype_name(dtype);
    // Rows that split into quantization blocks (32 values), for the frozen base.
    auto init = [&](const std::string& suffix) {
      const fs::path d = fresh_dir(name + suffix);
      InitOptions o;
      o.config = tiny_config(0);
      o.config.hidden_size = 64, o.config.head_dim = 16, o.config.intermediate_size = 96;
      o.dtype = dtype;
      o.seed = 5;
      init_model(d, o);
      return d;
    };
    const fs::path aligned = init("-a"), odd = init("-o");
    std::ifstream in(aligned / "model.safetensors", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    std::string header = bytes.substr(8, n);
    while (header.back() == ' ') header.pop_back();
    while ((8 + header.size()) % 8 != 1) header += ' ';
    const uint64_t len = header.size();
    std::string out(reinterpret_cast<const char*>(&len), 8);
    out += header + bytes.substr(8 + n);
    std::ofstream(odd / "model.safetensors", std::ios::binary) << out;
    const SafetensorsFile f(odd / "model.safetensors");
    for (const auto& [k, t] : f.tensors()) ASSERT_EQ(reinterpret_cast<uintptr_t>(t.data) % 2, 1u) << k;

    const Model a = Model::load(aligned), o = Model::load(odd);
    const auto ids = random_ids(20, 97, 7);
    std::vector<float> la(20 * 97), lo(20 * 97);
    InferenceState sa(a), so(o);
    forward(a, ids.data(), 20, sa, la.data(), true);
    forward(o, ids.data(), 20, so, lo.data(), true);
    EXPECT_EQ(la, lo) << name;
    EXPECT_EQ(TrainableModel::load(aligned).weights(), TrainableModel::load(odd).weights()) << name;
    for (DType q : {DType::Q8_0, DType::Q4_0}) {
      const TrainableModel fa = TrainableModel::load_frozen(aligned, q), fo = TrainableModel::load_frozen(odd, q);
      for (size_t i : fa.linears()) {
        const Matrix ma = fa.matrix(i), mo = fo.matrix(i);
        ASSERT_EQ(ma.dtype, mo.dtype);
        EXPECT_EQ(0, std::memcmp(ma.data, mo.data, size_t(ma.rows) * row_bytes(ma.dtype, ma.cols))) << name << " " << i;
      }
    }
  }
}

TEST(Generator, SameSeedSameTextAndEosStops) {
  const fs::path d = tiny_model("gen", DType::F32, 0);
  const Model m = Model::load(d);
  // A vocabulary the size of the model whose tokens are plain words, so decoding is predictable.
  json vocab = json::object();
  for (int i = 0; i < 97; ++i) vocab[std::to_string(i).append(".")] = i;
  json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  write_file_atomic(d / "tokenizer.json", tj.dump());
  const Tokenizer tok = Tokenizer::load(d);
  GenerationOptions opt;
  opt.max_new_tokens = 30;
  opt.sampling.seed = 9;
  opt.sampling.top_k = 0;
  opt.sampling.top_p = 1.0;
  opt.sampling.temperature = 1.5;
  Generator g1(m, tok), g2(m, tok);
  std::string streamed;
  const auto r1 = g1.generate({5, 6, 7}, opt, [&](std::string_view s) { streamed += s; return true; });
  const auto r2 = g2.generate({5, 6, 7}, opt, [](std::string_view) { return true; });
  EXPECT_EQ(r1.tokens, r2.tokens);
  EXPECT_EQ(r1.text, streamed);
  EXPECT_EQ(r1.tokens.size(), 30u);
  EXPECT_EQ(r1.finish_reason, "length");
  // With the 4th sampled token declared EOS, generation stops there and leaves it out of the text.
  opt.eos_ids = {r1.tokens[3]};
  Generator g3(m, tok);
  const auto r3 = g3.generate({5, 6, 7}, opt, [](std::string_view) { return true; });
  const size_t first = size_t(std::find(r1.tokens.begin(), r1.tokens.end(), r1.tokens[3]) - r1.tokens.begin());
  EXPECT_EQ(r3.tokens.size(), first + 1);
  EXPECT_EQ(r3.finish_reason, "stop");
  EXPECT_EQ(r3.text, tok.decode(std::vector<int>(r1.tokens.begin(), r1.tokens.begin() + long(first))));
  // A second turn that extends the first reuses the cache: only the new tokens run.
  std::vector<int> longer{5, 6, 7};
  longer.insert(longer.end(), r3.tokens.begin(), r3.tokens.end());
  longer.push_back(11);
  const auto r4 = g3.generate(longer, opt, [](std::string_view) { return true; });
  EXPECT_EQ(r4.prompt_evaluated, 2);  // the EOS (never run) and the new token
}

// The batched pass: a sequence's logits are the same bits alone or beside others, however its
// prompt is cut into passes, and agree with the single-sequence forward to float rounding.
TEST(BatchForward, LogitsAreBitIdenticalWhateverSharesThePass) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Model m = Model::load(tiny_model("batch", dtype, 7));
    const int64_t V = m.config.vocab_size;
    const std::vector<int> a = random_ids(40, int(V), 1), b = random_ids(23, int(V), 2), c = random_ids(5, int(V), 3);
    ForwardScratch scratch;
    // Alone: the whole prompt in one pass, then three decode steps.
    InferenceState sa(m);
    std::vector<std::vector<float>> alone;
    std::vector<float> la(static_cast<size_t>(V));
    std::vector<int> next = {7, 11, 13};
    BatchSequence one{&sa, a.data(), int64_t(a.size()), la.data()};
    forward_batch(m, {&one, 1}, scratch);
    alone.push_back(la);
    for (int id : next) {
      one = {&sa, &id, 1, la.data()};
      forward_batch(m, {&one, 1}, scratch);
      alone.push_back(la);
    }
    // Shared: the prompt in two passes (17 tokens, then 23) beside two other sequences.
    InferenceState s1(m), s2(m), s3(m);
    std::vector<float> l1(static_cast<size_t>(V)), l2(l1), l3(l1);
    std::vector<BatchSequence> batch = {{&s2, b.data(), 12, nullptr}, {&s1, a.data(), 17, nullptr}, {&s3, c.data(), 5, l3.data()}};
    forward_batch(m, batch, scratch);
    batch = {{&s1, a.data() + 17, 23, l1.data()}, {&s2, b.data() + 12, 11, l2.data()}};
    forward_batch(m, batch, scratch);
    std::vector<std::vector<float>> shared = {l1};
    int other = 3;
    for (int id : next) {
      batch = {{&s3, &other, 1, l3.data()}, {&s1, &id, 1, l1.data()}, {&s2, &other, 1, l2.data()}};
      forward_batch(m, batch, scratch);
      shared.push_back(l1);
    }
    for (size_t i = 0; i < alone.size(); ++i)
      ASSERT_EQ(0, std::memcmp(alone[i].data(), shared[i].data(), size_t(V) * sizeof(float))) << dtype_name(dtype) << " step " << i;
    // The single-sequence forward (GEMM paths) agrees to rounding.
    InferenceState sf(m);
    std::vector<float> lf(static_cast<size_t>(V));
    forward(m, a.data(), int64_t(a.size()), sf, lf.data());
    for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(lf[size_t(v)], alone[0][size_t(v)], 1e-4) << v;
  }
}

// Adapters kept beside the base (the server's multi-adapter path): each gives the logits of the
// base with it merged, and a sequence's logits are the same bits whatever adapters share its pass.
TEST(ServedAdapter, MatchesTheMergedModelAndIsBatchInvariantAcrossAdapters) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    const fs::path dir = tiny_model("served-adapter", dtype, 0);
    const Model base = Model::load(dir);
    const ModelConfig& c = base.config;
    const int64_t V = c.vocab_size;
    const PeftAdapter px = test::random_adapter(c, 4, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, true, 11);
    const PeftAdapter py = test::random_adapter(c, 2, {"q_proj", "v_proj"}, false, 12);
    const ServedAdapter x = ServedAdapter::make("x", px, base), y = ServedAdapter::make("y", py, base);
    // The reference: the adapters merged into the weights (zephyr merge's way: W + s·B·A in fp32).
    auto merged = [&](const PeftAdapter& p, const std::string& name) {
      TrainableModel t = TrainableModel::load(dir);
      t.merge(p);
      const fs::path out = fresh_dir("served-adapter-merged-" + name);
      t.save(out, dir);
      return Model::load(out);
    };
    const Model merged_x = merged(px, "x"), merged_y = merged(py, "y");
    const Model own_x = Model::load(dir, &px);  // --lora: x is every sequence's unless it names another
    const std::vector<int> a = random_ids(30, int(V), 4), b = random_ids(9, int(V), 5);
    ForwardScratch scratch;
    // Alone, each through its adapter: the merged model's logits to rounding.
    auto alone = [&](const Model& m, const std::vector<int>& ids, const ServedAdapter* ad) {
      InferenceState st(m);
      std::vector<float> out(static_cast<size_t>(V));
      BatchSequence one{&st, ids.data(), int64_t(ids.size()), out.data(), ad};
      forward_batch(m, {&one, 1}, scratch);
      return out;
    };
    const std::vector<float> ax = alone(base, a, &x), bx = alone(base, b, &x), ay = alone(base, a, &y), a0 = alone(base, a, nullptr);
    const std::vector<float> mx = alone(merged_x, a, nullptr), my = alone(merged_y, a, nullptr);
    double worst = 0, moved = 0;
    for (int64_t v = 0; v < V; ++v) {
      worst = std::max({worst, std::fabs(double(ax[size_t(v)] - mx[size_t(v)])), std::fabs(double(ay[size_t(v)] - my[size_t(v)]))});
      moved = std::max(moved, std::fabs(double(ax[size_t(v)] - a0[size_t(v)])));
    }
    EXPECT_LT(worst, 2e-4) << dtype_name(dtype);
    EXPECT_EQ(0, std::memcmp(alone(own_x, a, nullptr).data(), ax.data(), size_t(V) * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(alone(own_x, a, &y).data(), ay.data(), size_t(V) * sizeof(float)));
    EXPECT_GT(moved, 1e-2) << dtype_name(dtype) << ": the adapter changes nothing";
    // Together: a through x and through y and b through x and the base alone, prompts cut unevenly.
    InferenceState s1(base), s2(base), s3(base), s4(base);
    std::vector<float> l1(static_cast<size_t>(V)), l2(l1), l3(l1), l4(l1);
    std::vector<BatchSequence> batch = {{&s1, a.data(), 13, nullptr, &x}, {&s2, a.data(), 30, l2.data(), &y},
                                        {&s3, b.data(), 9, l3.data(), &x}, {&s4, a.data(), 20, nullptr, nullptr}};
    forward_batch(base, batch, scratch);
    batch = {{&s4, a.data() + 20, 10, l4.data(), nullptr}, {&s1, a.data() + 13, 17, l1.data(), &x}};
    forward_batch(base, batch, scratch);
    for (auto [got, want] : {std::pair{&l1, &ax}, {&l2, &ay}, {&l3, &bx}, {&l4, &a0}})
      EXPECT_EQ(0, std::memcmp(got->data(), want->data(), size_t(V) * sizeof(float))) << dtype_name(dtype);
    // A cache computed with one adapter is not another's prefix, and cannot be extended by it.
    EXPECT_EQ(s1.shared_prefix(a, &x), a.size());
    EXPECT_EQ(s1.shared_prefix(a, &y), 0u);
    EXPECT_EQ(s1.shared_prefix(a), 0u);
    int next = 3;
    BatchSequence wrong{&s1, &next, 1, l1.data(), &y};
    EXPECT_NE(error_of([&] { forward_batch(base, {&wrong, 1}, scratch); }).find("another adapter"), std::string::npos);
    EXPECT_EQ(s1.reuse_prefix(a, &y), 0u);
    forward_batch(base, {&wrong, 1}, scratch);  // a fresh start with y is fine
  }
  // An adapter for another shape or module is an error naming its file and the module.
  const Model base = Model::load(tiny_model("served-adapter", DType::F32, 0));
  PeftAdapter bad = test::random_adapter(base.config, 2, {"q_proj"}, false, 1);
  bad.modules.begin()->second.in += 1;
  EXPECT_NE(error_of([&] { ServedAdapter::make("bad", bad, base); }).find("/tmp/adapter-1/adapter_model.safetensors: module 'model.layers.0.self_attn.q_proj' adapts a [48, 49] weight"),
            std::string::npos);
  bad = test::random_adapter(base.config, 2, {"q_proj"}, false, 1);
  bad.modules["model.layers.7.self_attn.q_proj"] = bad.modules.begin()->second;
  EXPECT_NE(error_of([&] { ServedAdapter::make("bad", bad, base); }).find("adapts 'model.layers.7.self_attn.q_proj', which this model does not have"),
            std::string::npos);
}
