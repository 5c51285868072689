// Every input kept under tests/fuzz/corpus/<target>/ (seeds, and what the fuzzers found, fixed
// since) runs through its target in the normal suite: each is parsed or refused with rlhf::Error.
#include <catch2/catch.hpp>

#include <filesystem>

#include "rlhf/core/fs.h"
#include "targets.h"

// Every kept fuzz input is parsed or refused with a clear error.
TEST_CASE("every kept fuzz input is parsed or clearly refused", "[fuzz]") {
    const std::filesystem::path root = std::filesystem::path(RLHF_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
    size_t inputs = 0;
    for (const auto& target : rlhf::fuzz::targets()) {
        const auto dir = root / target.name;
        REQUIRE(std::filesystem::is_directory(dir));
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            const std::string bytes = rlhf::read_file(entry.path());
            INFO(target.name << ": " << entry.path().filename().string());
            REQUIRE_NOTHROW(target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
            ++inputs;
        }
    }
    REQUIRE(inputs >= 10);
}
