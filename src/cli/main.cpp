// rlhf — one binary for every stage. Errors a user can fix are printed as one line
// ("error: where: what (hint: how to fix)") with exit code 1; never a LibTorch backtrace.
#include <c10/util/Exception.h>
#include <yaml-cpp/exceptions.h>

#include <cstdio>
#include <iostream>
#include <sstream>

#include "rlhf/cli/commands.h"
#include "rlhf/core/error.h"
#include "rlhf/core/logging.h"

namespace {

void print_error_lines(const std::string& text) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) std::cerr << "error: " << line << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"rlhf.cpp: train GPT models through the InstructGPT pipeline (pretrain, sft, reward, ppo)", "rlhf"};
    app.set_version_flag("--version", std::string("rlhf ") + RLHF_VERSION);
    app.require_subcommand(1);
    rlhf::cli::Action action;
    rlhf::cli::add_train_command(app, action);
    rlhf::cli::add_tokenizer_command(app, action);
    rlhf::cli::add_data_command(app, action);
    rlhf::cli::add_generate_command(app, action);
    rlhf::cli::add_chat_command(app, action);
    rlhf::cli::add_config_command(app, action);
    rlhf::cli::add_bench_command(app, action);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
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
    } catch (const YAML::Exception& e) {
        rlhf::clear_status_line();
        print_error_lines(std::string("YAML: ") + e.what());
    } catch (const std::exception& e) {
        rlhf::clear_status_line();
        print_error_lines(e.what());
    }
    return 1;
}
