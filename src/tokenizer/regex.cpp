#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdint>

#include "core/error.h"

namespace zephyr {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  std::string pattern;
};

namespace {
// One match-data block and context per thread: allocating them per call costs more than matching
// short words.
struct MatchData {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  ~MatchData() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(context);
  }
};

// A pattern from a tokenizer.json may backtrack catastrophically, and PCRE2's own limit is per
// search, so a pattern that costs O(n) per piece still runs O(n^2) over a text. The work of a whole
// text is bounded instead: each search starts under a small match limit and retries under 4x when
// it runs out, charging the limit it needed (at most 4x its real cost). Real pre-tokenizer patterns
// need well under kFirstLimit per piece; a text may spend kTextBase + kPerByte per byte.
constexpr uint64_t kFirstLimit = 128, kTextBase = 1'000'000, kPerByte = 256;  // a piece is >= 1 byte
}  // namespace

Regex::Regex(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  impl_->pattern = pattern;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("regex " + pattern, "at offset " + std::to_string(offset) + ": " +
                                 reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
}

Regex::~Regex() { pcre2_code_free(impl_->code); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  thread_local MatchData data;
  std::vector<std::pair<size_t, size_t>> out;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  const uint64_t budget = kTextBase + kPerByte * text.size();
  uint64_t spent = 0;
  while (start <= text.size()) {
    int rc = PCRE2_ERROR_MATCHLIMIT;
    for (uint64_t limit = kFirstLimit; rc == PCRE2_ERROR_MATCHLIMIT; limit *= 4) {
      if (spent + limit > budget)
        fail("pre-tokenizer regex " + impl_->pattern.substr(0, 200),
             "backtracks beyond its limit on a text of " + std::to_string(text.size()) +
                 " bytes (a pattern with catastrophic backtracking?)");
      pcre2_set_match_limit(data.context, static_cast<uint32_t>(std::min<uint64_t>(limit, UINT32_MAX)));
      rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.md, data.context);
      if (rc != PCRE2_ERROR_MATCHLIMIT) spent += limit;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("regex", "match failed with PCRE2 error " + std::to_string(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
    const size_t b = ov[0], e = ov[1];
    if (e == b) {
      // An empty match produces no piece; step over one whole character.
      if (b >= text.size()) break;
      size_t n = 1;
      while (b + n < text.size() && (static_cast<unsigned char>(text[b + n]) & 0xC0) == 0x80) ++n;
      start = b + n;
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
  return out;
}

}  // namespace zephyr
