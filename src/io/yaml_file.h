// Loading YAML files (recipes, training configs, feedback configs, filter rules): errors name the
// file and line, and what a document may expand to is bounded.
#pragma once
#include <string>
#include <yaml-cpp/yaml.h>

namespace zephyr {

// Aliases let a few lines stand for a tree of billions of nodes ("billion laughs") or for a node
// that contains itself; whatever walks the document would then run out of memory or stack.
constexpr size_t kMaxYamlNodes = 100'000;
constexpr int kMaxYamlDepth = 256;

// Parses PATH; Error "PATH: cannot open", "PATH:LINE: not valid YAML: ...", or, past either bound,
// "PATH: the document expands to ...".
YAML::Node load_yaml_file(const std::string& path);

[[noreturn]] void yaml_error(const std::string& path, const YAML::Exception& e);

// Runs READ (code that interprets a loaded document) and turns yaml-cpp's exceptions — a key that
// is a list, a value of the wrong type — into Error "PATH:LINE: ...".
template <class F>
decltype(auto) reading_yaml(const std::string& path, F&& read) {
  try {
    return read();
  } catch (const YAML::Exception& e) {
    yaml_error(path, e);
  }
}

}  // namespace zephyr
