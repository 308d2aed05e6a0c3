#include "train/sft_data.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/cross_entropy.h"
#include "tokenizer/conversation.h"

namespace zephyr {

namespace {

size_t common_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

std::vector<int> int_list(const ordered_json& v, const std::string& where, const char* key) {
  if (!v.is_array()) fail(where, std::string("\"") + key + "\" must be a list of integers");
  std::vector<int> out;
  for (auto& x : v) {
    const std::optional<int> id = json_int(x);
    if (!id) fail(where, std::string("\"") + key + "\" must be a list of integers (32-bit), got " + x.dump().substr(0, 40));
    out.push_back(*id);
  }
  return out;
}

}  // namespace

TokenizedRow tokenize_conversation(const ChatTemplate& tmpl, const Tokenizer& tok, const ordered_json& row) {
  const ordered_json& messages = row.at("messages");
  TokenizedRow out;
  out.input_ids = chat_ids(tmpl, tok, row, false);
  out.labels.assign(out.input_ids.size(), kIgnoreIndex);
  const std::string& eos = tok.eos_token();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].value("role", std::string()) != "assistant") continue;
    ordered_json before = row, through = row;
    before["messages"] = ordered_json(messages.begin(), messages.begin() + long(i));
    through["messages"] = ordered_json(messages.begin(), messages.begin() + long(i) + 1);
    const std::string prompt = render_chat(tmpl, tok, before, true);
    std::string turn = render_chat(tmpl, tok, through, false);
    // The turn ends with its EOS; whatever the template adds after it (a newline) is not learned.
    const size_t eos_at = eos.empty() ? std::string::npos : turn.rfind(eos);
    if (eos_at != std::string::npos && eos_at >= prompt.size()) turn.resize(eos_at + eos.size());
    const size_t begin = common_prefix(encode_chat_text(tok, prompt), out.input_ids);
    const size_t end = common_prefix(encode_chat_text(tok, turn), out.input_ids);
    for (size_t t = begin; t < end; ++t) out.labels[t] = out.input_ids[t];
  }
  return out;
}

TokenizedRow sft_row(const ordered_json& row, const Tokenizer* tok, const ChatTemplate* tmpl, int64_t max_len,
                     const std::string& where) {
  TokenizedRow out;
  if (!row.is_object()) fail(where, "expected a JSON object");
  if (row.contains("input_ids")) {
    out.input_ids = int_list(row["input_ids"], where, "input_ids");
    out.labels = row.contains("labels") ? int_list(row["labels"], where, "labels") : out.input_ids;
    if (out.labels.size() != out.input_ids.size())
      fail(where, "\"labels\" has " + std::to_string(out.labels.size()) + " entries but \"input_ids\" has " +
                      std::to_string(out.input_ids.size()));
  } else if (row.contains("messages")) {
    if (!tok || !tmpl) fail(where, "conversation rows need a model with a tokenizer and a chat template");
    try {
      out = tokenize_conversation(*tmpl, *tok, row);
    } catch (const Error& e) {
      fail(where, e.what());
    }
  } else {
    fail(where, "expected {\"messages\": [...]} or {\"input_ids\": [...], \"labels\": [...]}");
  }
  if (max_len > 0 && int64_t(out.input_ids.size()) > max_len) {
    out.input_ids.resize(size_t(max_len));
    out.labels.resize(size_t(max_len));
  }
  return out;
}

TokenBatch make_batch(const std::vector<TokenizedRow>& rows, int pad_id) {
  TokenBatch b;
  b.rows = int64_t(rows.size());
  for (auto& r : rows) b.seq = std::max(b.seq, int64_t(r.input_ids.size()));
  b.input_ids.assign(size_t(b.rows * b.seq), pad_id);
  b.labels.assign(size_t(b.rows * b.seq), kIgnoreIndex);
  bool packed = false;
  for (auto& r : rows) packed = packed || !r.positions.empty();
  if (packed) {
    b.positions.assign(size_t(b.rows * b.seq), 0);
    b.seg_start.assign(size_t(b.rows * b.seq), 0);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const long at = long(i) * b.seq;
    std::copy(rows[i].input_ids.begin(), rows[i].input_ids.end(), b.input_ids.begin() + at);
    std::copy(rows[i].labels.begin(), rows[i].labels.end(), b.labels.begin() + at);
    if (!packed) continue;
    for (int64_t t = 0; t < b.seq; ++t) {
      const bool own = !rows[i].positions.empty() && t < int64_t(rows[i].positions.size());
      b.positions[size_t(at + t)] = own ? rows[i].positions[size_t(t)] : t;
      b.seg_start[size_t(at + t)] = own ? rows[i].seg_start[size_t(t)] : 0;
    }
  }
  return b;
}

std::vector<TokenizedRow> pack_rows(const std::vector<TokenizedRow>& rows, int64_t max_len) {
  std::vector<TokenizedRow> packs;
  TokenizedRow cur;
  for (const auto& r : rows) {
    const int64_t n = std::min<int64_t>(int64_t(r.input_ids.size()), max_len);
    if (!cur.input_ids.empty() && int64_t(cur.input_ids.size()) + n > max_len) {
      packs.push_back(std::move(cur));
      cur = TokenizedRow();
    }
    const int64_t start = int64_t(cur.input_ids.size());
    for (int64_t t = 0; t < n; ++t) {
      cur.input_ids.push_back(r.input_ids[size_t(t)]);
      // The first token of a conversation is never a target: nothing before it in its segment.
      cur.labels.push_back(t == 0 ? kIgnoreIndex : r.labels[size_t(t)]);
      cur.positions.push_back(t);
      cur.seg_start.push_back(start);
    }
  }
  if (!cur.input_ids.empty()) packs.push_back(std::move(cur));
  return packs;
}

}  // namespace zephyr
