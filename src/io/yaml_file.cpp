#include "io/yaml_file.h"

#include <utility>
#include <vector>

#include "core/error.h"

namespace zephyr {

namespace {
// Counts the nodes as a reader would see them, aliases expanded, without recursion: a node that
// contains itself must end in the error, not in a stack overflow.
void check_expansion(const YAML::Node& root, const std::string& path) {
  std::vector<std::pair<YAML::Node, int>> todo{{root, 1}};
  size_t seen = 0;
  while (!todo.empty()) {
    auto [node, depth] = std::move(todo.back());
    todo.pop_back();
    if (++seen > kMaxYamlNodes || depth > kMaxYamlDepth)
      fail(path, "the document expands to more than " + std::to_string(kMaxYamlNodes) + " nodes or nests deeper than " +
                     std::to_string(kMaxYamlDepth) + " levels (aliases that repeat themselves?)");
    if (node.IsSequence()) {
      for (const auto& child : node) todo.emplace_back(child, depth + 1);
    } else if (node.IsMap()) {
      for (const auto& kv : node) {
        todo.emplace_back(kv.first, depth + 1);
        todo.emplace_back(kv.second, depth + 1);
      }
    }
  }
}
}  // namespace

void yaml_error(const std::string& path, const YAML::Exception& e) {
  fail(e.mark.is_null() ? path : path + ":" + std::to_string(e.mark.line + 1), "unusable YAML: " + e.msg);
}

YAML::Node load_yaml_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(path, "cannot open");
  } catch (const YAML::Exception& e) {
    fail(path + ":" + std::to_string(e.mark.line + 1), "not valid YAML: " + e.msg);
  }
  check_expansion(root, path);
  return root;
}

}  // namespace zephyr
