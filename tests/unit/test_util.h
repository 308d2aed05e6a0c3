// Helpers the unit tests share.
#pragma once
#include <functional>
#include <string>

#include "core/error.h"

namespace zephyr::test {

// The message of the zephyr::Error fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace zephyr::test
