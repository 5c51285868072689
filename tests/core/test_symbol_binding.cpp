// The PyPI LibTorch's libtorch.so exports unversioned copies of part of libstdc++ (std::filesystem
// among them); a binary that loads it ahead of libstdc++.so.6 runs those copies, and their
// remove_all crashed on a call to address 0 (TempDir below, checkpoint pruning). CMakeLists.txt
// names libstdc++ first in every link of ours. These tests hold each binary we build to that: every
// libstdc++ symbol it uses binds to libstdc++ itself, whichever LibTorch it runs with.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <fstream>
#include <sstream>

#include "rlhf/core/fs.h"
#include "support/helpers.h"

using namespace rlhf;

namespace {

// One line of LD_DEBUG=bindings output, e.g.
//   1234: binding file /x/rlhf [0] to /usr/lib/libstdc++.so.6 [0]: normal symbol `_ZNSt...' [GLIBCXX_3.4.26]
struct Binding {
    std::string from, to, symbol, version;
};

bool parse_binding(const std::string& line, Binding& b) {
    const auto file_at = line.find("binding file ");
    if (file_at == std::string::npos) return false;
    const auto from_end = line.find(" [", file_at);
    const auto to_at = line.find(" to ", from_end);
    const auto to_end = line.find(" [", to_at + 4);
    const auto sym_at = line.find('`', to_end);
    const auto sym_end = line.find('\'', sym_at);
    if (from_end == std::string::npos || to_at == std::string::npos || to_end == std::string::npos ||
        sym_at == std::string::npos || sym_end == std::string::npos) {
        return false;
    }
    b.from = line.substr(file_at + 13, from_end - file_at - 13);
    b.to = line.substr(to_at + 4, to_end - to_at - 4);
    b.symbol = line.substr(sym_at + 1, sym_end - sym_at - 1);
    const auto ver_at = line.find('[', sym_end);
    const auto ver_end = ver_at == std::string::npos ? ver_at : line.find(']', ver_at);
    b.version = ver_end == std::string::npos ? "" : line.substr(ver_at + 1, ver_end - ver_at - 1);
    return true;
}

// Starts `binary args` with every symbol bound at load (LD_BIND_NOW, so not only those a short run
// calls) and returns the bindings the dynamic linker made for `binary` itself.
std::vector<Binding> bindings_of(const std::string& binary, const std::string& args) {
    test::TempDir dir;
    const auto r = test::run_shell("LD_BIND_NOW=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT=" +
                                   test::shell_quote((dir / "ld").string()) + " " + test::shell_quote(binary) +
                                   " " + args + " > /dev/null");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto self = std::filesystem::canonical(binary).string();
    std::vector<Binding> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        std::ifstream in(entry.path());
        std::string line;
        Binding b;
        while (std::getline(in, line)) {
            if (parse_binding(line, b) && std::filesystem::weakly_canonical(b.from).string() == self) out.push_back(b);
        }
    }
    return out;
}

// Whether libstdc++ itself defines `symbol`. LD_DEBUG prints the version of the definition it
// found, so a reference that went to an unversioned copy shows no GLIBCXX_ tag: ask libstdc++.
bool libstdcxx_defines(const std::string& symbol) {
    static void* libstdcxx = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);  // this test links it
    REQUIRE(libstdcxx != nullptr);
    void* address = dlsym(libstdcxx, symbol.c_str());  // searched from libstdc++ down its own dependencies
    Dl_info info{};
    return address && dladdr(address, &info) && info.dli_fname &&
           std::filesystem::path(info.dli_fname).filename().string().rfind("libstdc++.so", 0) == 0;
}

// The bindings of libstdc++'s own symbols to any library but libstdc++. A binding to the binary
// itself is its copy of a libstdc++ vtable or typeinfo (a copy relocation, filled from libstdc++
// at load), not a stray.
std::string stray_libstdcxx_bindings(const std::vector<Binding>& bindings, const std::string& self) {
    std::ostringstream stray;
    for (const auto& b : bindings) {
        const bool from_libstdcxx = b.version.rfind("GLIBCXX_", 0) == 0 || b.version.rfind("CXXABI_", 0) == 0 ||
                                    libstdcxx_defines(b.symbol);
        const bool to_libstdcxx = std::filesystem::path(b.to).filename().string().rfind("libstdc++.so", 0) == 0;
        const bool to_self = std::filesystem::weakly_canonical(b.to).string() == self;
        if (from_libstdcxx && !to_libstdcxx && !to_self) stray << b.symbol << " [" << b.version << "] -> " << b.to << "\n";
    }
    return stray.str();
}

}  // namespace

TEST_CASE("the rlhf binary binds every libstdc++ symbol to libstdc++", "[integration][core][light]") {
    const auto bindings = bindings_of(RLHF_CLI_PATH, "--version");
    REQUIRE(bindings.size() > 100);  // LD_DEBUG spoke: the check below is not vacuous
    REQUIRE(stray_libstdcxx_bindings(bindings, std::filesystem::canonical(RLHF_CLI_PATH).string()) == "");
}

TEST_CASE("the test binary binds every libstdc++ symbol to libstdc++", "[integration][core][light]") {
    const auto self = std::filesystem::canonical("/proc/self/exe").string();
    const auto bindings = bindings_of(self, "--help");
    REQUIRE(bindings.size() > 100);
    REQUIRE(stray_libstdcxx_bindings(bindings, self) == "");
}

TEST_CASE("a temporary directory is removed with everything in it", "[core]") {
    std::filesystem::path kept;
    {
        test::TempDir dir;
        kept = dir.path();
        ensure_dir(dir / "a" / "b" / "c");
        test::write_text(dir / "a" / "b" / "c" / "deep.txt", "x");
        test::write_text(dir / "top.txt", "y");
        std::filesystem::create_symlink("a/b", dir / "link");
        REQUIRE(std::filesystem::exists(dir / "link" / "c" / "deep.txt"));
    }
    REQUIRE_FALSE(std::filesystem::exists(kept));
}
