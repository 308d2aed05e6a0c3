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

}  // namespace zephyr
