// zephyr-rule-judge: the recipe's rule-based judge as an exec: program (one JSON task on stdin,
// one verdict on stdout; see data/rule_judge.h). Exit 1 with the reason on stderr when it cannot
// judge, which the caller records as a failed judgment.
#include <iostream>
#include <iterator>

#include "data/rule_judge.h"

int main() {
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  zephyr::ordered_json task;
  try {
    task = zephyr::parse_ordered_json(input, "stdin");
  } catch (const zephyr::Error& e) {
    std::cerr << "zephyr-rule-judge: " << e.what() << "\n";
    return 1;
  }
  const zephyr::ordered_json verdict = zephyr::rule_judge(task);
  if (verdict.contains("error")) {
    std::cerr << "zephyr-rule-judge: " << verdict["error"].get<std::string>() << "\n";
    return 1;
  }
  std::cout << zephyr::to_json_line(verdict) << "\n";
  return 0;
}
