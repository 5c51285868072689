// rlhf launch: torchrun's job for our own binary, for machines whose torchrun does not work
// (Debian 12's python3-torch 1.13 on Python 3.11 dies before starting anything).
//
//   rlhf launch --nproc-per-node 2 train configs/pretrain/shakespeare_char.yaml --set train.max_steps=100
//
// Starts --nproc-per-node copies of `rlhf COMMAND...` with the variables torchrun sets (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT), forwards
// SIGINT/SIGTERM to them, and exits with the first failing rank's status. A rank that fails
// makes the others stop by themselves (core/distributed.h); ranks still running after a grace
// period are terminated.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "rlhf/cli/commands.h"
#include "rlhf/core/command_line.h"
#include "rlhf/core/error.h"

namespace rlhf::cli {

namespace {

volatile std::sig_atomic_t g_forward_signal = 0;
extern "C" void on_launcher_signal(int signo) { g_forward_signal = signo; }

struct LaunchArgs {
    int nproc_per_node = 1;
    int nnodes = 1;
    int node_rank = 0;
    std::string master_addr = "127.0.0.1";
    int master_port = 29500;
    int grace_s = 30;
    std::vector<std::string> command;
};

pid_t start_rank(const LaunchArgs& a, int local_rank) {
    const int rank = a.node_rank * a.nproc_per_node + local_rank;
    const pid_t launcher = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("cannot start a rank: ") + std::strerror(errno), "rlhf launch");
    if (pid > 0) return pid;
    // The child: its own process group, so a Ctrl-C reaches it once (forwarded by the launcher),
    // and gone with the launcher if the launcher is killed.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != launcher) ::_exit(128 + SIGTERM);  // the launcher died before prctl
    auto set = [](const char* k, const std::string& v) { ::setenv(k, v.c_str(), 1); };
    set("RANK", std::to_string(rank));
    set("WORLD_SIZE", std::to_string(a.nnodes * a.nproc_per_node));
    set("LOCAL_RANK", std::to_string(local_rank));
    set("LOCAL_WORLD_SIZE", std::to_string(a.nproc_per_node));
    set("GROUP_RANK", std::to_string(a.node_rank));
    set("MASTER_ADDR", a.master_addr);
    set("MASTER_PORT", std::to_string(a.master_port));
    std::vector<std::string> argv_s{"rlhf"};
    argv_s.insert(argv_s.end(), a.command.begin(), a.command.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "error: rlhf launch: cannot run rank %d: %s\n", rank, std::strerror(errno));
    ::_exit(127);
}

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string describe(int status) {
    return WIFEXITED(status) ? "exited with code " + std::to_string(WEXITSTATUS(status))
                             : std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                   strsignal(WTERMSIG(status)) + ")";
}

int run_launch(const LaunchArgs& a) {
    if (a.command.empty()) throw Error("no command to launch", "rlhf launch", "e.g. rlhf launch --nproc-per-node 2 train CONFIG");
    if (a.command.front() == "launch") throw Error("a launch cannot launch another", "rlhf launch", "");
    if (a.node_rank >= a.nnodes) {
        throw Error("--node-rank " + std::to_string(a.node_rank) + " is not below --nnodes " + std::to_string(a.nnodes),
                    "rlhf launch", "nodes are numbered 0 to nnodes-1");
    }
    struct sigaction sa {};
    sa.sa_handler = on_launcher_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: waitpid returns EINTR and the signal is forwarded at once
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    // The ranks' hints ("continue with: ...") should quote what the user typed: this launch.
    ::setenv("RLHF_COMMAND_LINE", command_line().c_str(), 1);
    std::vector<pid_t> pids;
    for (int r = 0; r < a.nproc_per_node; ++r) pids.push_back(start_rank(a, r));
    std::vector<bool> running(pids.size(), true);
    size_t alive = pids.size();
    int first_failure = 0;
    using clock = std::chrono::steady_clock;
    clock::time_point failed_at{}, terminated_at{};
    bool terminated = false, killed = false;
    int forwarded = 0;  // a rank stopping with 128 + this signal did what it was asked
    while (alive > 0) {
        if (const int signo = g_forward_signal) {
            g_forward_signal = 0;
            forwarded = signo;
            for (size_t i = 0; i < pids.size(); ++i) if (running[i]) ::kill(pids[i], signo);
        }
        // After a failure the others get a grace period to stop by themselves (they name the
        // lost rank), then SIGTERM (a checkpoint), then SIGKILL.
        if (first_failure != 0 && first_failure != 128 + forwarded) {
            const auto now = clock::now();
            if (!terminated && now - failed_at > std::chrono::seconds(a.grace_s)) {
                std::fprintf(stderr, "rlhf launch: ranks still running %d s after a failure; sending SIGTERM\n", a.grace_s);
                for (size_t i = 0; i < pids.size(); ++i) if (running[i]) ::kill(pids[i], SIGTERM);
                terminated = true;
                terminated_at = now;
            } else if (terminated && !killed && now - terminated_at > std::chrono::seconds(30)) {
                for (size_t i = 0; i < pids.size(); ++i) if (running[i]) ::kill(pids[i], SIGKILL);
                killed = true;
            }
        }
        int status = 0;
        // Polling, not a blocking wait: a signal arriving just before a blocking waitpid would
        // not be forwarded until some rank exits.
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (size_t i = 0; i < pids.size(); ++i) {
            if (pids[i] != pid || !running[i]) continue;
            running[i] = false;
            --alive;
            const int code = exit_code_of(status);
            if (code != 0 && code != 128 + forwarded) {
                std::fprintf(stderr, "rlhf launch: rank %d (pid %d) %s\n",
                             a.node_rank * a.nproc_per_node + static_cast<int>(i), pid, describe(status).c_str());
            }
            if (code != 0 && first_failure == 0) {
                first_failure = code;
                failed_at = clock::now();
            }
        }
    }
    return first_failure;
}

}  // namespace

void add_launch_command(CLI::App& app, Action& action) {
    auto args = std::make_shared<LaunchArgs>();
    auto* cmd = app.add_subcommand(
        "launch", "Start a distributed run as torchrun would: N ranks of `rlhf COMMAND...` on this machine");
    cmd->add_option("--nproc-per-node,--nproc_per_node", args->nproc_per_node, "Ranks on this machine (one per GPU)")
        ->capture_default_str()->check(CLI::Range(1, 1024));
    cmd->add_option("--nnodes", args->nnodes, "Machines in the run")->capture_default_str()->check(CLI::Range(1, 65536));
    cmd->add_option("--node-rank,--node_rank", args->node_rank, "This machine's number, 0 to nnodes-1")
        ->capture_default_str()->check(CLI::Range(0, 65535));
    cmd->add_option("--master-addr,--master_addr", args->master_addr, "Address of node 0, where rank 0 serves the rendezvous store")
        ->capture_default_str();
    cmd->add_option("--master-port,--master_port", args->master_port, "Port of the rendezvous store")
        ->capture_default_str()->check(CLI::Range(1, 65535));
    cmd->add_option("--grace", args->grace_s, "Seconds the other ranks get to stop by themselves after one fails")
        ->capture_default_str()->check(CLI::Range(0, 86400));
    cmd->prefix_command();  // everything from the first word that is not an option on belongs to the ranks
    cmd->footer(
        "Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as with\n"
        "`torchrun --nproc_per_node=N --no_python rlhf COMMAND...`. SIGINT/SIGTERM are forwarded: the run saves a\n"
        "checkpoint and stops. Exits with the first failing rank's status. See docs/distributed.md.");
    cmd->callback([args, cmd, &action] {
        args->command = cmd->remaining();
        action = [args] { return run_launch(*args); };
    });
}

}  // namespace rlhf::cli
