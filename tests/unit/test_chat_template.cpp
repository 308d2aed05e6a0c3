#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/chat_template.h"

using namespace zephyr;

namespace {

std::string render(const std::string& tmpl, const ordered_json& vars = ordered_json::object()) { return ChatTemplate(tmpl).render(vars); }

std::string error_of(const std::string& tmpl, const ordered_json& vars = ordered_json::object()) {
  try {
    ChatTemplate(tmpl).render(vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(ChatTemplate, python_semantics_of_values) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ 1.0 }} {{ 2.5 }} {{ [1, 'a', none] }} {{ {'k': \"it's\"} }}"),
            "None True 1.0 2.5 [1, 'a', None] {'k': \"it's\"}");
  EXPECT_EQ(render("{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 'ab' ~ 1 }}"), "-4 2 3.5 ab1");
  EXPECT_EQ(render("{{ 'x' if 0 else 'y' }}{{ '' or 'z' }}{{ 0 and 1 }}"), "yz0");
}

// Python's exact integers where int64 holds the result (no detour through double), an error where
// it does not; the one quotient that traps in C.
TEST(ChatTemplate, integer_arithmetic_is_exact_or_an_error) {
  EXPECT_EQ(render("{{ 2 ** 62 }} {{ 3 ** 39 }} {{ (-2) ** 63 }} {{ 9007199254740993 + 0 }}"),
            "4611686018427387904 4052555153018976267 -9223372036854775808 9007199254740993");
  EXPECT_EQ(render("{{ (-9223372036854775807 - 1) % -1 }} {{ 9007199254740993 == 9007199254740992 }}"), "0 False");
  EXPECT_EQ(render("{{ 'ab' * 3 }}|{{ 'ab' * -2 }}|{{ range(9223372036854775800, 9223372036854775807, 5)|list }}"),
            "ababab||[9223372036854775800, 9223372036854775805]");
  for (const char* bad : {"{{ 2 ** 63 }}", "{{ -(-9223372036854775807 - 1) }}", "{{ 4611686018427387904 * 2 }}",
                          "{{ (-9223372036854775807 - 1) - 1 }}", "{{ (-9223372036854775807 - 1) // -1 }}"})
    EXPECT_NE(error_of(bad).find("integer overflow"), std::string::npos) << bad;
}

TEST(ChatTemplate, trim_blocks_and_lstrip_blocks_as_transformers_sets_them) {
  EXPECT_EQ(render("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(render("a\n    {% if true %}b{% endif %}"), "a\nb");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(render("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // no trim after expressions
}

TEST(ChatTemplate, loops_scopes_and_namespaces) {
  const ordered_json vars = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", vars), "1a,2b,3c");
  EXPECT_EQ(render("{% set n = 0 %}{% for x in xs %}{% set n = n + 1 %}{% endfor %}{{ n }}", vars), "0");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", vars), "3");
  EXPECT_EQ(render("{% for x in xs[::-1] if x != 'b' %}{{ x }}{% else %}empty{% endfor %}", vars), "ca");
  EXPECT_EQ(render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"), "empty");
}

TEST(ChatTemplate, syntax_errors_report_line_and_column) {
  EXPECT_EQ(error_of("line one\n{% if x %}\nno end"),
            "chat template: line 2, column 1: unexpected end of template: expected {% elif %} or {% else %} or {% endif %}");
  EXPECT_EQ(error_of("ok\n  {{ 1 + }}"), "chat template: line 2, column 10: expected an expression (found end of tag)");
  EXPECT_EQ(error_of("{% frobnicate %}"), "chat template: line 1, column 1: unknown tag \"frobnicate\"");
  EXPECT_EQ(error_of("{{ 'abc }}"), "chat template: line 1, column 1: unclosed tag: expected \"}}\"");
}

TEST(ChatTemplate, runtime_errors_carry_the_template_message_and_position) {
  EXPECT_EQ(error_of("\n{{ raise_exception('roles must alternate') }}"),
            "chat template: line 2, column 4: raise_exception: roles must alternate");
  EXPECT_EQ(error_of("{{ missing.attr }}"), "chat template: line 1, column 4: \"missing\" is undefined, so it has no attribute \"attr\"");
  EXPECT_EQ(error_of("{{ 1 | nosuchfilter }}"), "chat template: line 1, column 8: unknown filter \"nosuchfilter\"");
}
