// Tokenizer throughput: encodes a text file line by line on one thread and prints MB/s.
// Usage: tokenizer_throughput TOKENIZER TEXTFILE
#include <chrono>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER TEXTFILE\n", argv[0]);
    return 2;
  }
  try {
    const auto tok = zephyr::Tokenizer::load(argv[1]);
    const std::string text = zephyr::read_file(argv[2]);
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
    size_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& l : lines) tokens += tok.encode(l, false).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"impl\": \"zephyr.cpp\", \"mb\": %.2f, \"seconds\": %.3f, \"mb_per_s\": %.2f, \"tokens\": %zu}\n",
                static_cast<double>(text.size()) / 1e6, s, static_cast<double>(text.size()) / 1e6 / s, tokens);
  } catch (const zephyr::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
