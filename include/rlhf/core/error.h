// rlhf::Error — a user-facing error with context. Thrown anywhere below the CLI; the CLI prints
// it as one line, "error: <where>: <what> (hint: <hint>)", and exits 1. (A config with several
// problems throws one Error whose message holds one such line per problem.)
//
//   RLHF_CHECK(n_embd % n_head == 0, "model.n_embd", "n_embd (" + ... + ") must divide n_head",
//              "pick n_embd as a multiple of n_head");
#pragma once

#include <stdexcept>
#include <string>

namespace rlhf {

class Error : public std::runtime_error {
public:
    // what:  what went wrong, in the user's terms
    // where: file, file:line or config key path ("" if none applies)
    // hint:  how to fix it ("" if there is nothing useful to add)
    Error(std::string what, std::string where = "", std::string hint = "");

    const std::string& message() const { return what_; }
    const std::string& where() const { return where_; }
    const std::string& hint() const { return hint_; }

    // "where: what (hint: ...)" on one line, as the CLI prints it.
    std::string one_line() const;

private:
    std::string what_, where_, hint_;
};

}  // namespace rlhf

#define RLHF_CHECK(cond, where, what, hint)              \
    do {                                                 \
        if (!(cond)) throw ::rlhf::Error((what), (where), (hint)); \
    } while (0)
