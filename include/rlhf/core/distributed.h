// Data-parallel processes on LibTorch's c10d, the engine PyTorch itself uses: a TCPStore for the
// rendezvous, ProcessGroupGloo on CPU, ProcessGroupNCCL on CUDA (each rank on cuda:LOCAL_RANK).
//
// A run is distributed when torchrun (or `rlhf launch`) set RANK and WORLD_SIZE; rank 0 hosts the
// store at MASTER_ADDR:MASTER_PORT. One process group per process, like torch.distributed's
// default group: init_distributed() makes it, distributed() returns it (a world of one before).
//
// Failure is never a hang: every collective waits at most runtime.dist_timeout, and a rank that
// fails tells the others through the store, so they stop with one line naming it.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace rlhf {

// What torchrun passes to each process.
struct DistEnv {
    int rank = 0, world_size = 1, local_rank = 0;
    int local_world_size = 1;  // ranks on this machine (LOCAL_WORLD_SIZE; else WORLD_SIZE)
    std::string master_addr = "127.0.0.1";
    int master_port = 29500;
    bool launched = false;  // RANK/WORLD_SIZE were set (true under torchrun even with one process)
    // torchrun (PyTorch >= 2) already serves the store at MASTER_ADDR:MASTER_PORT from its agent
    // and says so with TORCHELASTIC_USE_AGENT_STORE=True: then rank 0 connects like the others.
    bool agent_store = false;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; an inconsistent set (WORLD_SIZE
// without RANK, RANK >= WORLD_SIZE, a port that is not a number…) is an rlhf::Error naming the variable.
DistEnv read_dist_env();

// In a distributed run "cuda" (and "auto" with a GPU) means this rank's GPU, cuda:LOCAL_RANK, and
// a fixed cuda:N is an error when several ranks share the machine; outside one, `device` as given.
std::string device_for_rank(const std::string& device, const DistEnv& env);

class Distributed {
public:
    Distributed();  // a world of one: every collective is a no-op
    ~Distributed();
    Distributed(const Distributed&) = delete;
    Distributed& operator=(const Distributed&) = delete;

    int rank() const { return rank_; }
    int world_size() const { return world_size_; }
    bool is_main() const { return rank_ == 0; }
    bool active() const { return impl_ != nullptr; }  // a process group exists (world size may be 1)
    const torch::Device& device() const { return device_; }  // where collectives' tensors live

    // Sum (or max) over ranks, in place. `t` must be on device() (tensors elsewhere are copied there and back).
    void all_reduce_sum(torch::Tensor& t) const;
    void all_reduce_max(torch::Tensor& t) const;
    // An all-reduce (sum) started now; wait() blocks until it is done.
    struct Pending {
        std::function<void()> wait;
    };
    Pending all_reduce_sum_async(torch::Tensor& t) const;
    void broadcast_from_main(torch::Tensor& t) const;
    // Every rank waits here for the others (an all-reduce of one number).
    void barrier() const;

    // Rank 0 runs `work` (which writes files the others then read: a tokenizer, token shards)
    // while the others wait, then the others run it too. A failure on rank 0 reaches the others
    // as an error naming rank 0 instead of a timeout. `name` says what is being prepared.
    void main_first(const std::string& name, const std::function<void()>& work) const;

    // Tells the other ranks why this one is about to exit (the CLI calls it with the error line).
    void announce_failure(const std::string& line) const;

    struct Impl;

private:
    friend Distributed& init_distributed(const DistEnv&, const torch::Device&, std::chrono::milliseconds);
    [[noreturn]] void fail(const std::string& during, const std::exception& e) const;
    std::unique_ptr<Impl> impl_;
    int rank_ = 0, world_size_ = 1;
    torch::Device device_{torch::kCPU};
};

// Joins the process group described by `env` (rendezvous at MASTER_ADDR:MASTER_PORT, at most
// `timeout` for every rank to arrive) and makes it the process's group. Gloo on a CPU device,
// NCCL on CUDA. With env.launched false it returns the world of one.
Distributed& init_distributed(const DistEnv& env, const torch::Device& device, std::chrono::milliseconds timeout);

// The process's group (a world of one until init_distributed).
Distributed& distributed();

}  // namespace rlhf
