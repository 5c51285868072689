#include "support/greetings.h"

namespace rlhf::test {

const char* const kGreetNames[10] = {"Anna", "Ben", "Clara", "David", "Ella", "Finn", "Grace", "Hugo", "Iris", "Jack"};

std::string greeting_demos(int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        const std::string name = kGreetNames[i % 10];
        out += "{\"prompt\": \"Greet " + name + "\", \"response\": \"Hello " + name + ".\"}\n";
    }
    return out;
}

std::string ranked_greetings(int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        const std::string name = kGreetNames[i % 10];
        if (i % 2 == 0) {
            out += "{\"prompt\": \"Greet " + name + "\", \"responses\": [\"Hello " + name + ".\", \"Hello.\", \"Go away.\"]}\n";
        } else {
            out += "{\"prompt\": \"Greet " + name + "\", \"responses\": [\"Go away.\", \"Hello " + name +
                   ".\", \"Bye.\", \"Hello.\"], \"ranks\": [2, 0, 2, 1]}\n";
        }
    }
    return out;
}

}  // namespace rlhf::test
