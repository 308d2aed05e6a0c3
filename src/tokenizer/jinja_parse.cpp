// Lexer and parser for chat-template Jinja, with the environment transformers uses:
// trim_blocks and lstrip_blocks on, "{%-"/"-%}" whitespace control, loop controls.
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "tokenizer/jinja_ast.h"

namespace zephyr::jinja {
namespace {

[[noreturn]] void syntax_error(int line, int col, const std::string& what) {
  throw Error("line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
}

// ---- Template level: text and tags --------------------------------------------------------

struct Chunk {
  enum class Kind { Text, Var, Block, Comment } kind;
  std::string content;
  int line, col;
  bool strip_left = false;   // "{%-": remove whitespace before the tag
  bool strip_right = false;  // "-%}": remove whitespace after it
  bool keep_left = false;    // "{%+": no lstrip_blocks for this tag
  size_t start = 0;          // offset of the chunk in the source (Text)
};

struct Position {
  const std::string& src;
  std::vector<size_t> line_starts{0};
  explicit Position(const std::string& s) : src(s) {
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n') line_starts.push_back(i + 1);
  }
  std::pair<int, int> at(size_t off) const {
    size_t lo = 0, hi = line_starts.size();
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      (line_starts[mid] <= off ? lo : hi) = mid;
    }
    return {static_cast<int>(lo) + 1, static_cast<int>(off - line_starts[lo]) + 1};
  }
};

// Finds the end of a tag, skipping string literals so "%}" inside quotes does not end it.
size_t find_tag_end(const std::string& src, size_t from, const std::string& close) {
  char quote = 0;
  for (size_t i = from; i < src.size(); ++i) {
    const char c = src[i];
    if (quote) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (src.compare(i, close.size(), close) == 0) {
      return i;
    }
  }
  return std::string::npos;
}

std::vector<Chunk> lex_template(const std::string& src, const Position& pos) {
  std::vector<Chunk> chunks;
  size_t i = 0;
  while (i < src.size()) {
    size_t open = src.find('{', i);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' && src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open == std::string::npos || open + 1 >= src.size()) {
      auto [l, c] = pos.at(i);
      chunks.push_back({Chunk::Kind::Text, src.substr(i), l, c});
      chunks.back().start = i;
      break;
    }
    if (open > i) {
      auto [l, c] = pos.at(i);
      chunks.push_back({Chunk::Kind::Text, src.substr(i, open - i), l, c});
      chunks.back().start = i;
    }
    const char kind_char = src[open + 1];
    const std::string close = kind_char == '{' ? "}}" : kind_char == '%' ? "%}" : "#}";
    auto [line, col] = pos.at(open);
    Chunk ch{kind_char == '{' ? Chunk::Kind::Var : kind_char == '%' ? Chunk::Kind::Block : Chunk::Kind::Comment, "", line, col};
    size_t body = open + 2;
    if (body < src.size() && src[body] == '-') { ch.strip_left = true; ++body; }
    else if (body < src.size() && src[body] == '+') { ch.keep_left = true; ++body; }
    const size_t end = ch.kind == Chunk::Kind::Comment ? src.find(close, body) : find_tag_end(src, body, close);
    if (end == std::string::npos) syntax_error(line, col, "unclosed tag: expected \"" + close + "\"");
    size_t content_end = end;
    if (content_end > body && src[content_end - 1] == '-') { ch.strip_right = true; --content_end; }
    ch.content = src.substr(body, content_end - body);
    chunks.push_back(std::move(ch));
    i = end + 2;
  }
  // Whitespace control, applied to the text between tags.
  for (size_t k = 0; k < chunks.size(); ++k) {
    Chunk& t = chunks[k];
    if (t.kind != Chunk::Kind::Text) continue;
    const Chunk* prev = k > 0 ? &chunks[k - 1] : nullptr;
    const Chunk* next = k + 1 < chunks.size() ? &chunks[k + 1] : nullptr;
    size_t start = t.start;
    if (prev && prev->strip_right) {
      const size_t n = t.content.find_first_not_of(" \t\r\n\f\v");
      start += n == std::string::npos ? t.content.size() : n;
      t.content.erase(0, n);
    } else if (prev && prev->kind != Chunk::Kind::Var && !t.content.empty() && t.content[0] == '\n') {
      t.content.erase(0, 1);  // trim_blocks
      ++start;
    }
    if (next && next->strip_left) {
      const size_t n = t.content.find_last_not_of(" \t\r\n\f\v");
      t.content.erase(n == std::string::npos ? 0 : n + 1);
    } else if (next && next->kind != Chunk::Kind::Var && !next->keep_left) {
      // lstrip_blocks: drop spaces and tabs between the line start and the tag.
      const size_t nl = t.content.rfind('\n');
      const size_t line_start = nl == std::string::npos ? 0 : nl + 1;
      const bool at_line_start = nl != std::string::npos || start == 0 || src[start - 1] == '\n';
      if (at_line_start && t.content.find_first_not_of(" \t", line_start) == std::string::npos)
        t.content.erase(line_start);
    }
  }
  return chunks;
}

// ---- Expressions --------------------------------------------------------------------------

struct Tok {
  enum class Kind { Name, String, Int, Float, Op, End } kind;
  std::string text;
  int line, col;
};

std::vector<Tok> lex_expr(const Chunk& ch) {
  std::vector<Tok> toks;
  const std::string& s = ch.content;
  int line = ch.line, col = ch.col + 2;
  size_t i = 0;
  auto advance = [&](size_t n) {
    for (size_t k = 0; k < n && i < s.size(); ++k, ++i) {
      if (s[i] == '\n') { ++line; col = 1; } else { ++col; }
    }
  };
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) { advance(1); continue; }
    const int tl = line, tc = col;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      toks.push_back({Tok::Kind::Name, s.substr(i, j - i), tl, tc});
      advance(j - i);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      bool is_float = false;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          is_float = true;
          j = k;
          while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      std::string num = s.substr(i, j - i);
      std::erase(num, '_');
      toks.push_back({is_float ? Tok::Kind::Float : Tok::Kind::Int, num, tl, tc});
      advance(j - i);
    } else if (c == '\'' || c == '"') {
      std::string out;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) { out += s[j]; continue; }
        const char e = s[++j];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case '\\': out += '\\'; break;
          case '\'': out += '\''; break;
          case '"': out += '"'; break;
          case '\n': break;
          default: out += '\\'; out += e;  // Python keeps unknown escapes verbatim
        }
      }
      if (j >= s.size()) syntax_error(tl, tc, "unterminated string literal");
      toks.push_back({Tok::Kind::String, out, tl, tc});
      advance(j + 1 - i);
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      std::string op(1, c);
      for (const char* t : two)
        if (s.compare(i, 2, t) == 0) op = t;
      if (op.size() == 1 && std::string("+-*/%~<>=()[]{},.:|").find(c) == std::string::npos)
        syntax_error(tl, tc, std::string("unexpected character '") + c + "'");
      toks.push_back({Tok::Kind::Op, op, tl, tc});
      advance(op.size());
    }
  }
  toks.push_back({Tok::Kind::End, "", line, col});
  return toks;
}

// Deeper nesting of blocks, expressions or parentheses is a syntax error: parsing, evaluating and
// freeing the tree each recurse once per level.
constexpr int kMaxNesting = 100;

// Python's integers are unbounded; a literal beyond int64 is a syntax error rather than a wrap.
int64_t int_literal(const Tok& t) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
  if (ec != std::errc() || end != t.text.data() + t.text.size())
    syntax_error(t.line, t.col, "integer " + t.text.substr(0, 40) + " does not fit in 64 bits");
  return v;
}

// Adds an operand; a tree deeper than kMaxNesting ("1+1+...+1", "x|f|f|...") is a syntax error.
void adopt(Expr& parent, ExprPtr child) {
  if (child) {
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxNesting)
      syntax_error(child->line, child->col, "expression nested deeper than " + std::to_string(kMaxNesting) + " levels");
  }
  parent.args.push_back(std::move(child));
}

class ExprParser {
 public:
  explicit ExprParser(std::vector<Tok> toks) : t_(std::move(toks)) {}

  const Tok& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at_end() const { return peek().kind == Tok::Kind::End; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == Tok::Kind::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == Tok::Kind::Name && peek(k).text == n; }
  Tok next() { return t_[std::min(p_++, t_.size() - 1)]; }
  bool accept_op(const char* op) { if (is_op(op)) { ++p_; return true; } return false; }
  bool accept_name(const char* n) { if (is_name(n)) { ++p_; return true; } return false; }
  [[noreturn]] void error(const std::string& what) const {
    const Tok& t = peek();
    syntax_error(t.line, t.col, what + (t.kind == Tok::Kind::End ? " (found end of tag)" : " (found \"" + t.text + "\")"));
  }
  void expect_op(const char* op) { if (!accept_op(op)) error(std::string("expected \"") + op + "\""); }
  std::string expect_name() {
    if (peek().kind != Tok::Kind::Name) error("expected a name");
    return next().text;
  }
  void expect_end() { if (!at_end()) error("unexpected token"); }

  // `allow_cond` is false where a trailing "if" belongs to the statement ("for x in xs if c").
  ExprPtr expression(bool allow_cond = true) {
    const Nest nest(*this);
    ExprPtr e = or_expr();
    if (allow_cond && is_name("if")) {
      auto c = node(Expr::Kind::Cond);
      next();
      ExprPtr cond = or_expr();
      ExprPtr other = accept_name("else") ? expression() : nullptr;
      adopt(*c, std::move(e));
      adopt(*c, std::move(cond));
      adopt(*c, std::move(other));
      return c;
    }
    return e;
  }

  // An expression or a bare tuple "a, b" (for loops and set).
  ExprPtr tuple_or_expression(bool allow_cond = true) {
    ExprPtr first = expression(allow_cond);
    if (!is_op(",")) return first;
    auto t = node(Expr::Kind::Tuple);
    adopt(*t, std::move(first));
    while (accept_op(",") && !at_end()) adopt(*t, expression(allow_cond));
    return t;
  }

 private:
  // Held by each recursive descent ("((((", "not not not", "- - -"): bounded before the stack is.
  struct Nest {
    ExprParser& p;
    explicit Nest(ExprParser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting) p.error("expression nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~Nest() { --p.nesting_; }
  };

  ExprPtr node(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = peek().line;
    e->col = peek().col;
    return e;
  }
  ExprPtr binary(Expr::Kind k, std::string op, ExprPtr a, ExprPtr b) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = a->line;
    e->col = a->col;
    e->name = std::move(op);
    adopt(*e, std::move(a));
    adopt(*e, std::move(b));
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr a = and_expr();
    while (accept_name("or")) a = binary(Expr::Kind::Or, "or", std::move(a), and_expr());
    return a;
  }
  ExprPtr and_expr() {
    ExprPtr a = not_expr();
    while (accept_name("and")) a = binary(Expr::Kind::And, "and", std::move(a), not_expr());
    return a;
  }
  ExprPtr not_expr() {
    if (is_name("not")) {
      auto e = node(Expr::Kind::Unary);
      next();
      e->name = "not";
      const Nest nest(*this);
      adopt(*e, not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr a = add();
    for (;;) {
      const Tok& t = peek();
      if (t.kind == Tok::Kind::Op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == ">" || t.text == "<=" || t.text == ">=")) {
        const std::string op = next().text;
        a = binary(Expr::Kind::Binary, op, std::move(a), add());
      } else if (is_name("in")) {
        next();
        a = binary(Expr::Kind::Binary, "in", std::move(a), add());
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        a = binary(Expr::Kind::Binary, "not in", std::move(a), add());
      } else {
        return a;
      }
    }
  }
  ExprPtr add() {
    ExprPtr a = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = next().text;
      a = binary(Expr::Kind::Binary, op, std::move(a), concat());
    }
    return a;
  }
  ExprPtr concat() {
    ExprPtr a = mul();
    while (accept_op("~")) a = binary(Expr::Kind::Binary, "~", std::move(a), mul());
    return a;
  }
  ExprPtr mul() {
    ExprPtr a = pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = next().text;
      a = binary(Expr::Kind::Binary, op, std::move(a), pow());
    }
    return a;
  }
  ExprPtr pow() {
    ExprPtr a = unary();
    while (accept_op("**")) a = binary(Expr::Kind::Binary, "**", std::move(a), unary());
    return a;
  }
  ExprPtr unary() {
    if (is_op("-") || is_op("+")) {
      auto e = node(Expr::Kind::Unary);
      e->name = next().text;
      const Nest nest(*this);
      adopt(*e, unary());
      return filters(std::move(e));
    }
    return filters(postfix(primary()));
  }

  void call_args(Expr& e) {
    // "(" already consumed
    while (!accept_op(")")) {
      if (peek().kind == Tok::Kind::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        ExprPtr value = expression();
        e.depth = std::max(e.depth, value->depth + 1);
        e.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        adopt(e, expression());
      }
      if (!accept_op(",")) {
        expect_op(")");
        break;
      }
    }
  }

  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (accept_op("|")) {
        auto f = node(Expr::Kind::Filter);
        f->name = expect_name();
        adopt(*f, std::move(e));
        if (accept_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        next();
        auto t = node(Expr::Kind::Test);
        t->negated = accept_name("not");
        t->name = expect_name();
        adopt(*t, std::move(e));
        if (accept_op("(")) {
          call_args(*t);
        } else if (peek().kind == Tok::Kind::String || peek().kind == Tok::Kind::Int || peek().kind == Tok::Kind::Float ||
                   (peek().kind == Tok::Kind::Name && !is_name("and") && !is_name("or") && !is_name("else") &&
                    !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is"))) {
          adopt(*t, primary());  // "x is divisibleby 3", "x is sameas none"
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        next();
        auto a = node(Expr::Kind::Attr);
        a->line = e->line;
        a->col = e->col;
        if (peek().kind == Tok::Kind::Int) {
          a->kind = Expr::Kind::Index;
          adopt(*a, std::move(e));
          auto lit = node(Expr::Kind::Literal);
          lit->literal = Value::integer(int_literal(next()));
          adopt(*a, std::move(lit));
        } else {
          a->name = expect_name();
          adopt(*a, std::move(e));
        }
        e = std::move(a);
      } else if (is_op("[")) {
        next();
        auto ix = node(Expr::Kind::Index);
        ix->line = e->line;
        ix->col = e->col;
        adopt(*ix, std::move(e));
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = expression();
          if (k < 2 && accept_op(":")) {
            slice = true;
            continue;
          }
          break;
        }
        expect_op("]");
        if (slice) {
          ix->kind = Expr::Kind::Slice;
          for (auto& p : parts) adopt(*ix, std::move(p));
        } else {
          if (!parts[0]) error("expected an index");
          adopt(*ix, std::move(parts[0]));
        }
        e = std::move(ix);
      } else if (is_op("(")) {
        auto c = node(Expr::Kind::Call);
        c->line = e->line;
        c->col = e->col;
        next();
        adopt(*c, std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr primary() {
    const Tok& t = peek();
    auto e = node(Expr::Kind::Literal);
    switch (t.kind) {
      case Tok::Kind::String: {
        std::string s = next().text;
        while (peek().kind == Tok::Kind::String) s += next().text;  // adjacent literals join
        e->literal = Value::string(std::move(s));
        return e;
      }
      case Tok::Kind::Int: e->literal = Value::integer(int_literal(next())); return e;
      case Tok::Kind::Float: e->literal = Value::number(std::strtod(next().text.c_str(), nullptr)); return e;  // 1e999: inf, as Python
      case Tok::Kind::Name: {
        const std::string n = next().text;
        if (n == "true" || n == "True") e->literal = Value::boolean(true);
        else if (n == "false" || n == "False") e->literal = Value::boolean(false);
        else if (n == "none" || n == "None") e->literal = Value::none();
        else { e->kind = Expr::Kind::Name; e->name = n; }
        return e;
      }
      case Tok::Kind::Op:
        if (accept_op("(")) {
          if (accept_op(")")) { e->kind = Expr::Kind::Tuple; return e; }
          ExprPtr inner = expression();
          if (is_op(",")) {
            e->kind = Expr::Kind::Tuple;
            adopt(*e, std::move(inner));
            while (accept_op(",") && !is_op(")")) adopt(*e, expression());
            expect_op(")");
            return e;
          }
          expect_op(")");
          return inner;
        }
        if (accept_op("[")) {
          e->kind = Expr::Kind::List;
          while (!accept_op("]")) {
            adopt(*e, expression());
            if (!accept_op(",")) { expect_op("]"); break; }
          }
          return e;
        }
        if (accept_op("{")) {
          e->kind = Expr::Kind::Dict;
          while (!accept_op("}")) {
            adopt(*e, expression());
            expect_op(":");
            adopt(*e, expression());
            if (!accept_op(",")) { expect_op("}"); break; }
          }
          return e;
        }
        break;
      case Tok::Kind::End: break;
    }
    error("expected an expression");
  }

  std::vector<Tok> t_;
  size_t p_ = 0;
  int nesting_ = 0;  // expression() calls in progress (parentheses, arguments)
};

// ---- Statements ---------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::vector<Chunk> chunks) : c_(std::move(chunks)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, end);
    return body;
  }

 private:
  // Parses until a block tag whose first word is in `stops`; returns that word in `stopped`
  // and leaves the tag's parser positioned after the word.
  Body parse_body(const std::set<std::string>& stops, std::string& stopped) {
    Body body;
    while (i_ < c_.size()) {
      const Chunk& ch = c_[i_];
      if (ch.kind == Chunk::Kind::Comment) { ++i_; continue; }
      if (ch.kind == Chunk::Kind::Text) {
        if (!ch.content.empty()) {
          Node n;
        n.kind = Node::Kind::Text;
          n.text = ch.content;
          body.push_back(std::move(n));
        }
        ++i_;
        continue;
      }
      ExprParser p(lex_expr(ch));
      ++i_;
      if (ch.kind == Chunk::Kind::Var) {
        Node n;
        n.kind = Node::Kind::Output;
        n.line = ch.line;
        n.col = ch.col;
        n.exprs.push_back(p.tuple_or_expression());
        p.expect_end();
        body.push_back(std::move(n));
        continue;
      }
      if (p.at_end()) syntax_error(ch.line, ch.col, "empty block tag");
      const std::string word = p.peek().text;
      if (stops.count(word)) {
        p.next();
        stopped = word;
        tag_ = std::make_unique<ExprParser>(std::move(p));
        return body;
      }
      p.next();
      body.push_back(statement(word, p, ch));
    }
    if (!stops.empty()) {
      std::string want;
      for (const auto& s : stops) want += (want.empty() ? "" : " or ") + ("{% " + s + " %}");
      syntax_error(open_line_, open_col_, "unexpected end of template: expected " + want);
    }
    return body;
  }

  Node statement(const std::string& word, ExprParser& p, const Chunk& ch) {
    Node n;
        n.kind = Node::Kind::Text;
    n.line = ch.line;
    n.col = ch.col;
    if (++depth_ > kMaxNesting) syntax_error(ch.line, ch.col, "blocks nested deeper than " + std::to_string(kMaxNesting) + " levels");
    const int saved_line = open_line_, saved_col = open_col_;
    open_line_ = ch.line;
    open_col_ = ch.col;
    std::string stopped;
    if (word == "if") {
      n.kind = Node::Kind::If;
      ExprPtr cond = p.expression();
      p.expect_end();
      for (;;) {
        Body b = parse_body({"elif", "else", "endif"}, stopped);
        n.branches.emplace_back(std::move(cond), std::move(b));
        if (stopped == "elif") {
          cond = tag_->expression();
          tag_->expect_end();
          continue;
        }
        tag_->expect_end();
        if (stopped == "else") {
          n.else_body = parse_body({"endif"}, stopped);
          tag_->expect_end();
        }
        break;
      }
    } else if (word == "for") {
      n.kind = Node::Kind::For;
      do n.targets.push_back(p.expect_name()); while (p.accept_op(","));
      if (!p.accept_name("in")) p.error("expected \"in\"");
      n.exprs.push_back(p.tuple_or_expression(false));
      if (p.accept_name("if")) n.exprs.push_back(p.expression());
      if (p.accept_name("recursive")) p.error("recursive loops are not supported");
      p.expect_end();
      n.body = parse_body({"else", "endfor"}, stopped);
      tag_->expect_end();
      if (stopped == "else") {
        n.else_body = parse_body({"endfor"}, stopped);
        tag_->expect_end();
      }
    } else if (word == "set") {
      n.text = p.expect_name();
      if (p.accept_op(".")) {
        n.attr = p.expect_name();
      } else {
        n.targets.push_back(n.text);
        while (p.accept_op(",")) n.targets.push_back(p.expect_name());
      }
      if (p.accept_op("=")) {
        n.kind = Node::Kind::Set;
        n.exprs.push_back(p.tuple_or_expression());
        p.expect_end();
      } else {
        p.expect_end();
        if (!n.attr.empty() || n.targets.size() != 1) p.error("a block set takes one name");
        n.kind = Node::Kind::SetBlock;
        n.body = parse_body({"endset"}, stopped);
        tag_->expect_end();
      }
    } else if (word == "macro") {
      n.kind = Node::Kind::Macro;
      n.text = p.expect_name();
      p.expect_op("(");
      while (!p.accept_op(")")) {
        n.targets.push_back(p.expect_name());
        n.exprs.push_back(p.accept_op("=") ? p.expression() : nullptr);
        if (!p.accept_op(",")) { p.expect_op(")"); break; }
      }
      p.expect_end();
      n.body = parse_body({"endmacro"}, stopped);
      tag_->expect_end();
    } else if (word == "break" || word == "continue") {
      n.kind = word == "break" ? Node::Kind::Break : Node::Kind::Continue;
      p.expect_end();
    } else if (word == "generation") {
      // transformers' {% generation %} marks assistant text for masks; it renders its body.
      n.kind = Node::Kind::Generation;
      p.expect_end();
      n.body = parse_body({"endgeneration"}, stopped);
      tag_->expect_end();
    } else {
      syntax_error(ch.line, ch.col, "unknown tag \"" + word + "\"");
    }
    open_line_ = saved_line;
    open_col_ = saved_col;
    --depth_;
    return n;
  }

  std::vector<Chunk> c_;
  size_t i_ = 0;
  std::unique_ptr<ExprParser> tag_;  // the closing tag just reached by parse_body
  int open_line_ = 1, open_col_ = 1;  // the block being parsed, for "unclosed" errors
  int depth_ = 0;                     // blocks open around the statement being parsed
};

}  // namespace

Body parse(const std::string& source) {
  const Position pos(source);
  return Parser(lex_template(source, pos)).parse_all();
}

}  // namespace zephyr::jinja
