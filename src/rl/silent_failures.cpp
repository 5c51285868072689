#include "rlhf/rl/silent_failures.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

namespace rlhf::rl {

void SilentFailureAlarms::raise(size_t which, bool on, const std::string& message, AlarmState& out) {
    on_for_[which] = on ? on_for_[which] + 1 : 0;
    if (on && (on_for_[which] - 1) % t_.window == 0) out.warnings.push_back(message);
}

AlarmState SilentFailureAlarms::observe(const IterationSignals& s) {
    AlarmState out;
    if (t_.window <= 0) return out;
    recent_.push_back(s);
    if (static_cast<int64_t>(recent_.size()) > t_.window) recent_.pop_front();
    if (static_cast<int64_t>(recent_.size()) < t_.window) return out;

    double truncated = 0, widest_spread = 0, uniform = 0;
    int64_t grouped = 0;
    for (const auto& r : recent_) {
        truncated += r.truncated_share;
        widest_spread = std::max(widest_spread, r.score_std);
        if (!std::isnan(r.uniform_groups)) {
            uniform += r.uniform_groups;
            ++grouped;
        }
    }
    const double n = static_cast<double>(recent_.size());
    truncated /= n;
    out.truncated = truncated > t_.truncated_share;
    out.reward_flat = widest_spread <= t_.reward_std;
    out.uniform_groups = grouped == static_cast<int64_t>(recent_.size()) && uniform / n > t_.uniform_groups;
    raise(0, out.truncated,
          fmt::format("{:.0f}% of the responses of the last {} iterations reached ppo.max_new_tokens ({}) without a stop "
                      "token (ppo.alarm_truncated_share: {}); they score as unfinished. Raise ppo.max_new_tokens, or "
                      "check that the stop token is the one the model was taught (chat.template)",
                      100 * truncated, t_.window, t_.max_new_tokens, t_.truncated_share),
          out);
    raise(1, out.reward_flat,
          fmt::format("every answer of the last {} iterations got the same score (spread <= ppo.alarm_reward_std: {}), so "
                      "there is nothing to learn from; check the reward model or the checker and the answers' form",
                      t_.window, t_.reward_std),
          out);
    raise(2, out.uniform_groups,
          fmt::format("{:.0f}% of the groups of the last {} iterations gave all their answers one score "
                      "(ppo.alarm_uniform_groups: {}); their advantages are 0 and they train nothing. Raise "
                      "ppo.group_size or ppo.temperature, or use prompts nearer the policy's level",
                      100 * uniform / n, t_.window, t_.uniform_groups),
          out);
    return out;
}

}  // namespace rlhf::rl
