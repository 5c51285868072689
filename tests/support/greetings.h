// The "Greet NAME" task the stage tests train on: short enough for the tiny model's 32-token
// window, and learnable in a few dozen steps from a tiny pre-trained model.
#pragma once

#include <string>

namespace rlhf::test {

// The ten names of the task, in the order the generated rows cycle through them.
extern const char* const kGreetNames[10];

// n demonstrations, JSONL: {"prompt": "Greet NAME", "response": "Hello NAME."}.
std::string greeting_demos(int n);

// n ranked groups, JSONL: a polite greeting with the name beats one without it, which beats a
// rude one. Even rows: K = 3 in order; odd rows: K = 4 with explicit ranks where the two rude
// answers tie (5 ordered pairs, not 6).
std::string ranked_greetings(int n);

}  // namespace rlhf::test
