// Syntax tree of the Jinja subset that chat templates use; built by jinja_parse.cpp and run
// by chat_template.cpp.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace zephyr::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal, Name, List, Tuple, Dict, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, And, Or, Cond
  };
  Kind kind = Kind::Literal;
  int line = 0, col = 0;
  Value literal;                 // Literal
  std::string name;              // Name, Attr, Filter, Test; operator of Unary/Binary
  std::vector<ExprPtr> args;     // operands, items, call/filter/test arguments (first is the subject)
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;          // Test: "is not"
  int depth = 1;                 // levels of the tree below and including this node
};

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Generation };
  Kind kind = Kind::Text;
  int line = 0, col = 0;
  std::string text;                                 // Text; Set/SetBlock/Macro: target name
  std::string attr;                                 // Set: "ns.attr" assignment
  std::vector<std::string> targets;                 // For / Set: unpacking names; Macro: parameters
  std::vector<ExprPtr> exprs;                       // Output: [value]; Set: [value]; For: [iterable, filter?]; Macro: defaults
  std::vector<std::pair<ExprPtr, Body>> branches;   // If: (condition, body) for if/elif
  Body body, else_body;                             // For / If else / SetBlock / Macro / Generation
};

// Parses a template; throws Error "line L, column C: ..." on syntax errors.
Body parse(const std::string& source);

}  // namespace zephyr::jinja
