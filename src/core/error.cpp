#include "rlhf/core/error.h"

namespace rlhf {

static std::string compose(const std::string& what, const std::string& where,
                           const std::string& hint) {
    std::string line = where.empty() ? what : where + ": " + what;
    if (!hint.empty()) line += " (hint: " + hint + ")";
    return line;
}

Error::Error(std::string what, std::string where, std::string hint)
    : std::runtime_error(compose(what, where, hint)),
      what_(std::move(what)),
      where_(std::move(where)),
      hint_(std::move(hint)) {}

std::string Error::one_line() const { return std::runtime_error::what(); }

}  // namespace rlhf
