#include "rlhf/cli/commands.h"
#include "rlhf/checkpoint/checkpoint.h"
#include "rlhf/config/load.h"
#include "rlhf/core/error.h"
#include "rlhf/stages/classify.h"
#include "rlhf/stages/dpo.h"
#include "rlhf/stages/ppo.h"
#include "rlhf/stages/pretrain.h"
#include "rlhf/stages/reward.h"
#include "rlhf/stages/sft.h"

namespace rlhf::cli {

void add_train_command(CLI::App& app, Action& action) {
    struct Args {
        std::string config;
        std::vector<std::string> overrides;
        bool resume = false;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("train", "Run the stage a YAML config names (stage: pretrain | sft | reward | ppo | dpo | classify)");
    cmd->add_option("config", args->config, "YAML config file (see configs/ and docs/config.md)")->required();
    cmd->add_option("--set", args->overrides,
                    "Override config keys: --set train.max_steps=100 [more key=value ...] (repeatable)")
        ->take_all();
    cmd->add_flag("--resume", args->resume,
                  "Continue from <out_dir>/checkpoints/latest (starts fresh when there is none)");
    cmd->footer(
        "Writes <out_dir>/config.yaml, train.log, metrics.jsonl and checkpoints/step-NNNNNN/.\n"
        "SIGINT/SIGTERM save a checkpoint and exit with 128+signal; --resume continues exactly.");
    cmd->callback([args, &action] {
        action = [args] {
            RunConfig cfg = load_config(args->config, args->overrides);
            StageOptions opts;
            opts.resume = args->resume;
            if (cfg.stage == Stage::Pretrain) return run_pretrain(cfg, opts);
            if (cfg.stage == Stage::Sft) return run_sft(cfg, opts);
            if (cfg.stage == Stage::Reward) return run_reward(cfg, opts);
            if (cfg.stage == Stage::Dpo) return run_dpo(cfg, opts);
            if (cfg.stage == Stage::Classify) return run_classify(cfg, opts);
            return run_ppo(cfg, opts);
        };
    });
}

void add_config_command(CLI::App& app, Action& action) {
    struct Args {
        std::string config;
        std::vector<std::string> overrides;
    };
    auto args = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("config", "Inspect configurations");
    cmd->require_subcommand(1);
    auto* show = cmd->add_subcommand("show", "Print the resolved config (defaults, presets and --set applied; sft, reward, ppo, dpo and classify: init_from's model)");
    show->add_option("config", args->config, "YAML config file")->required();
    show->add_option("--set", args->overrides, "Override a config key (repeatable)")->take_all();
    show->callback([args, &action] {
        action = [args] {
            RunConfig cfg = load_config(args->config, args->overrides);
            // A fine-tuning stage takes its model from init_from: show that model, so that the
            // printed config, saved and trained, does not name shapes init_from does not have
            // (an error: start_point.cpp checks every model key a config gives).
            if (cfg.stage != Stage::Pretrain && !cfg.init_from.empty() && std::filesystem::exists(cfg.init_from)) {
                const double dropout = cfg.model.dropout;
                cfg.model = read_checkpoint_info(resolve_checkpoint(cfg.init_from)).config.model;
                cfg.model.dropout = dropout;
            }
            std::fputs(dump_config(cfg).c_str(), stdout);
            return 0;
        };
    });
    auto* keys = cmd->add_subcommand("keys", "List every config key with its default and meaning");
    auto markdown = std::make_shared<bool>(false);
    keys->add_flag("--markdown", *markdown, "Print the table docs/config.md holds");
    keys->callback([&action, markdown] {
        action = [markdown] {
            if (*markdown) {
                std::fputs(config_keys_markdown().c_str(), stdout);
                return 0;
            }
            for (const auto& k : config_key_docs()) {
                std::printf("%-26s %-14s %s\n", k.key.c_str(), k.default_value.c_str(), k.doc.c_str());
            }
            return 0;
        };
    });
}

}  // namespace rlhf::cli
