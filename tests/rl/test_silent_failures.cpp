// The silent-failure alarms: on only over a full window, a warning when one starts and again
// every window while it lasts, off as soon as the window no longer shows the failure.
#include <catch2/catch.hpp>

#include "rlhf/rl/silent_failures.h"

using namespace rlhf::rl;

namespace {
AlarmThresholds window_of_3() {
    AlarmThresholds t;
    t.window = 3;
    t.truncated_share = 0.5;
    t.reward_std = 1e-6;
    t.uniform_groups = 0.9;
    t.max_new_tokens = 24;
    return t;
}
}  // namespace

TEST_CASE("alarms: truncated responses over a window", "[rl][alarms]") {
    SilentFailureAlarms alarms(window_of_3());
    const IterationSignals cut{0.8, 0.5, NAN}, fine{0.0, 0.5, NAN};
    REQUIRE_FALSE(alarms.observe(cut).truncated);  // the window is not full yet
    REQUIRE_FALSE(alarms.observe(cut).truncated);
    AlarmState third = alarms.observe(cut);
    REQUIRE(third.truncated);
    REQUIRE(third.warnings.size() == 1);
    REQUIRE_THAT(third.warnings[0], Catch::Contains("80%") && Catch::Contains("ppo.max_new_tokens (24)"));
    REQUIRE(alarms.observe(cut).warnings.empty());  // on, already said
    REQUIRE(alarms.observe(cut).warnings.empty());
    REQUIRE(alarms.observe(cut).warnings.size() == 1);  // a window later, again
    // Mean over the window: 0.8, 0.8, 0 -> 0.53 still above 0.5; one more good batch -> 0.27.
    REQUIRE(alarms.observe(fine).truncated);
    REQUIRE_FALSE(alarms.observe(fine).truncated);
    REQUIRE_FALSE(third.reward_flat);
    REQUIRE_FALSE(third.uniform_groups);  // no groups (gae): never
}

TEST_CASE("alarms: a reward without spread and uniform groups", "[rl][alarms]") {
    SilentFailureAlarms alarms(window_of_3());
    const IterationSignals flat{0.0, 0.0, 1.0}, spread{0.0, 0.3, 0.5};
    alarms.observe(flat);
    alarms.observe(flat);
    AlarmState on = alarms.observe(flat);
    REQUIRE(on.reward_flat);
    REQUIRE(on.uniform_groups);
    REQUIRE(on.warnings.size() == 2);
    REQUIRE_THAT(on.warnings[0], Catch::Contains("same score"));
    REQUIRE_THAT(on.warnings[1], Catch::Contains("100% of the groups"));
    // One iteration with a spread clears the flat reward; uniform groups average (1 + 1 + 0.5) / 3 = 0.83.
    AlarmState after = alarms.observe(spread);
    REQUIRE_FALSE(after.reward_flat);
    REQUIRE_FALSE(after.uniform_groups);
}

TEST_CASE("alarms: window 0 turns them off", "[rl][alarms]") {
    AlarmThresholds t = window_of_3();
    t.window = 0;
    SilentFailureAlarms alarms(t);
    for (int i = 0; i < 5; ++i) {
        const AlarmState a = alarms.observe({1.0, 0.0, 1.0});
        REQUIRE_FALSE(a.truncated);
        REQUIRE_FALSE(a.reward_flat);
        REQUIRE(a.warnings.empty());
    }
}
