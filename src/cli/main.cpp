// rlhf — one binary for every stage. Errors a user can fix are printed as one line per problem
// ("error: where: what (hint: how to fix)") with exit code 1; never a LibTorch backtrace.
#include <c10/util/Exception.h>
#include <yaml-cpp/exceptions.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "rlhf/cli/commands.h"
#include "rlhf/core/command_line.h"
#include "rlhf/core/distributed.h"
#include "rlhf/core/error.h"
#include "rlhf/core/logging.h"

namespace {

// Prints the error and, in a distributed run, tells the other ranks why this one stops (so they
// name it instead of timing out).
void print_error_lines(const std::string& text) {
    const auto& dist = rlhf::distributed();
    const std::string who = dist.world_size() > 1 ? "[rank " + std::to_string(dist.rank()) + "] " : "";
    std::istringstream lines(text);
    std::string out;
    for (std::string line; std::getline(lines, line);) out += "error: " + who + line + "\n";
    // One write: the ranks share the terminal (or pipe), and a message cut by another's stays unreadable.
    std::cerr << out << std::flush;
    rlhf::distributed().announce_failure(text.substr(0, text.find('\n')));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"rlhf.cpp: GPT training in C++ on LibTorch through the InstructGPT pipeline: pretrain, sft, "
                 "reward, ppo (also grpo, rloo), dpo; and GPT-1's task fine-tuning (classify). Errors print one "
                 "line and exit 1.",
                 "rlhf"};
    app.set_version_flag("--version", std::string("rlhf ") + RLHF_VERSION);
    app.require_subcommand(1);
    rlhf::cli::Action action;
    rlhf::cli::add_train_command(app, action);
    rlhf::cli::add_launch_command(app, action);
    rlhf::cli::add_tokenizer_command(app, action);
    rlhf::cli::add_data_command(app, action);
    rlhf::cli::add_generate_command(app, action);
    rlhf::cli::add_chat_command(app, action);
    rlhf::cli::add_score_command(app, action);
    rlhf::cli::add_eval_command(app, action);
    rlhf::cli::add_convert_command(app, action);
    rlhf::cli::add_config_command(app, action);
    rlhf::cli::add_bench_command(app, action);

    rlhf::remember_command_line(argc, argv);  // for "continue with: ..." after a signal
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // A mistake in the flags: one line, like every other error, and exit 1.
        std::string sub;
        for (const auto* cmd : app.get_subcommands()) sub += " " + cmd->get_name();
        if (sub.empty() && argc > 1 && argv[1][0] != '-') {
            // CLI11 would only say "A subcommand is required"; name the word it did not know.
            std::string known;
            for (const auto* cmd : app.get_subcommands({})) known += (known.empty() ? "" : ", ") + cmd->get_name();
            std::cerr << "error: unknown command '" << argv[1] << "' (commands: " << known << ")\n";
            return 1;
        }
        std::cerr << "error: " << e.what() << " (hint: rlhf" << sub << " --help)\n";
        return 1;
    }
    try {
        rlhf::init_logging();
        return action ? action() : 0;
    } catch (const rlhf::Error& e) {
        rlhf::clear_status_line();
        print_error_lines(e.one_line());
    } catch (const c10::Error& e) {
        rlhf::clear_status_line();
        // A LibTorch check we did not anticipate: show its message, not its C++ backtrace.
        std::string msg = e.what_without_backtrace();
        print_error_lines("LibTorch: " + msg.substr(0, msg.find('\n')));
    } catch (const std::filesystem::filesystem_error& e) {
        rlhf::clear_status_line();
        std::string where = e.path1().empty() ? "" : e.path1().string() + ": ";
        print_error_lines(where + e.code().message() + " (hint: check the path, its permissions and free space)");
    } catch (const YAML::Exception& e) {
        rlhf::clear_status_line();
        print_error_lines(std::string("YAML: ") + e.what());
    } catch (const std::exception& e) {
        rlhf::clear_status_line();
        print_error_lines(e.what());
    }
    return 1;
}
