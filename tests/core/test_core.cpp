#include <catch2/catch.hpp>

#include "rlhf/core/error.h"
#include "rlhf/core/fs.h"
#include "rlhf/core/thread_governor.h"
#include "support/helpers.h"

using namespace rlhf;

TEST_CASE("Error prints where, what and hint on one line", "[core]") {
    Error e("must be > 0 (got -1)", "configs/x.yaml:7: model.n_layer", "use a positive number");
    REQUIRE(e.one_line() == "configs/x.yaml:7: model.n_layer: must be > 0 (got -1) (hint: use a positive number)");
    REQUIRE(Error("boom").one_line() == "boom");
}

// Atomic_write replaces a file's content and leaves no temporary behind.
TEST_CASE("atomic_write replaces a file, leaving no temporary behind", "[core]") {
    test::TempDir dir;
    atomic_write(dir / "f.txt", "first");
    atomic_write(dir / "f.txt", "second");
    REQUIRE(read_file(dir / "f.txt") == "second");
    int entries = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        (void)e;
        ++entries;
    }
    REQUIRE(entries == 1);
}

TEST_CASE("read_text_file strips a BOM and normalises CRLF and CR to LF", "[core]") {
    test::TempDir dir;
    test::write_text(dir / "t.txt", "\xEF\xBB\xBFline one\r\nline two\rline three\n");
    REQUIRE(read_text_file(dir / "t.txt") == "line one\nline two\nline three\n");
}

// Text that is not UTF-8 is refused with file:line:column, not turned into U+FFFD.
TEST_CASE("non-UTF-8 text is refused with file:line:column, not U+FFFD", "[core]") {
    REQUIRE(invalid_utf8_at("plain ASCII\n") == std::string_view::npos);
    REQUIRE(invalid_utf8_at("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF") == std::string_view::npos);
    REQUIRE(invalid_utf8_at("caf\xE9!") == 3);            // Latin-1 é
    REQUIRE(invalid_utf8_at("a\xC0\x80") == 1);          // overlong NUL
    REQUIRE(invalid_utf8_at("ab\xE0\x80\xAF") == 2);    // overlong '/'
    REQUIRE(invalid_utf8_at("\xED\xA0\x80") == 0);      // a UTF-16 surrogate
    REQUIRE(invalid_utf8_at("\xF4\x90\x80\x80") == 0);  // above U+10FFFF
    REQUIRE(invalid_utf8_at("ok\xE2\x82") == 2);         // cut short at the end
    REQUIRE(invalid_utf8_at("\x80") == 0);                // a lone continuation byte

    test::TempDir dir;
    test::write_text(dir / "cr.txt", "old Mac\rline\r\ncaf\xE9\n");  // a lone CR ends a line too
    REQUIRE_THROWS_WITH(read_text_file(dir / "cr.txt"), Catch::Contains("cr.txt:3:4"));
    test::write_text(dir / "latin1.txt", "first line\nna\xEFve\n");
    REQUIRE_THROWS_WITH(read_text_file(dir / "latin1.txt"), Catch::Contains("latin1.txt:2:3") &&
                                                                  Catch::Contains("not UTF-8") && Catch::Contains("0xEF"));
    std::string random(4096, '\0');
    uint64_t state = 7;
    for (auto& c : random) c = static_cast<char>((state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 56);
    test::write_text(dir / "random.bin", random);
    REQUIRE_THROWS_WITH(read_text_file(dir / "random.bin"), Catch::Contains("random.bin:") && Catch::Contains("not UTF-8"));
}

TEST_CASE("read_file names a missing path and refuses a directory", "[core]") {
    REQUIRE_THROWS_WITH(read_file("/nonexistent/file.txt"), Catch::Contains("/nonexistent/file.txt") &&
                                                                 Catch::Contains("not found"));
    test::TempDir dir;
    REQUIRE_THROWS_WITH(read_file(dir.path()), Catch::Contains("is a directory"));
}

TEST_CASE("fnv1a64 matches the published test vectors and chains", "[core]") {
    // FNV-1a 64: "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c, "foobar" -> 85944171f73967e8
    REQUIRE(fnv1a64("", 0) == 0xcbf29ce484222325ULL);
    REQUIRE(fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
    REQUIRE(fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
    REQUIRE(fnv1a64("bar", 3, fnv1a64("foo", 3)) == 0x85944171f73967e8ULL);
    REQUIRE(hex64(0xabcULL) == "0000000000000abc");
}

// The thread policy yields to a busy machine, probes back, and backs off.
TEST_CASE("the thread policy yields to a busy machine and probes back", "[core]") {
    ThreadPolicy::Options o;  // window 0.5 s, busy above 0.15 s of wait per thread-second, probes 10 s then doubling
    ThreadPolicy p(2, o);
    double delay = 0;
    REQUIRE(p.update(0.0, delay) == 2);
    delay += 0.05;  // alone: 0.05 s of waiting over 2 threads x 1 s
    REQUIRE(p.update(1.0, delay) == 2);
    delay += 0.8;  // another process: 0.8 / (2 x 1 s) = 0.4
    REQUIRE(p.update(2.0, delay) == 1);
    REQUIRE_FALSE(p.probing());
    delay += 5;  // whatever happens while reduced is not judged until the probe
    REQUIRE(p.update(11.9, delay) == 1);
    REQUIRE(p.update(12.0, delay) == 2);  // 10 s on: try both threads again
    REQUIRE(p.probing());
    REQUIRE(p.update(12.3, delay + 0.1) == 2);  // a window is at least 0.5 s
    delay += 0.5;
    REQUIRE(p.update(12.6, delay) == 1);  // still busy: 0.5 / (2 x 0.6) > 0.15
    REQUIRE(p.update(31.9, delay) == 1);  // the next probe waits twice as long (20 s)
    REQUIRE(p.update(32.6, delay) == 2);
    REQUIRE(p.update(33.2, delay + 0.01) == 2);  // the other process is gone
    REQUIRE_FALSE(p.probing());
    delay += 0.01;
    REQUIRE(p.update(40.0, delay) == 2);
    // A thread that exits takes its wait with it: the sum falls, which is no wait, not an error.
    REQUIRE(p.update(41.0, delay - 3) == 2);

    ThreadPolicy one(1, o);
    REQUIRE(one.update(0, 0) == 1);
    REQUIRE(one.update(1, 100) == 1);
    REQUIRE(process_run_delay_s() >= 0);  // Linux exposes schedstat
}
