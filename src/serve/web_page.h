// The web chat page served at / (compiled in): system prompt, sampling settings, streamed
// answers, multi-turn history, a stop button.
#pragma once

namespace zephyr::serve {

extern const char* const kWebChatPage;

}  // namespace zephyr::serve
