#include "rlhf/core/distributed.h"

// ProcessGroupGloo.hpp declares its class only when the build says Gloo is in (LibTorch's own
// builds always have it on Linux; the define is not exported to users of the headers).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef RLHF_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <vector>

#include "rlhf/core/error.h"

namespace rlhf {

namespace {

constexpr const char* kWhere = "distributed run";

// A torchrun variable as an int in [lo, hi]; `fallback` when unset.
int env_int(const char* name, int fallback, long lo, long hi, bool* was_set = nullptr) {
    const char* v = std::getenv(name);
    if (was_set) *was_set = v != nullptr && *v != '\0';
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < lo || n > hi) {
        throw Error(std::string(name) + "='" + v + "' is not a whole number in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]",
                    "environment", "launch with torchrun or `rlhf launch`, which set it");
    }
    return static_cast<int>(n);
}

std::string message_of(const std::exception& e) {
    if (const auto* c = dynamic_cast<const c10::Error*>(&e)) {
        std::string m = c->what_without_backtrace();
        return m.substr(0, m.find('\n'));
    }
    std::string m = e.what();
    return m.substr(0, m.find('\n'));
}

std::string rank_list(const std::vector<int>& ranks) {
    std::string out;
    for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
    return out;
}

// Store::set takes bytes (LibTorch 1.13 has no string overload).
void put(c10d::Store& store, const std::string& key, const std::string& value) {
    store.set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

}  // namespace

DistEnv read_dist_env() {
    DistEnv env;
    bool has_rank = false, has_world = false;
    env.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20, &has_world);
    env.rank = env_int("RANK", 0, 0, 1 << 20, &has_rank);
    if (has_world != has_rank) {
        throw Error(std::string(has_world ? "WORLD_SIZE" : "RANK") + " is set but " + (has_world ? "RANK" : "WORLD_SIZE") +
                        " is not",
                    "environment", "launch with torchrun or `rlhf launch`, which set both (or unset both for one process)");
    }
    env.launched = has_rank;
    if (!env.launched) return env;
    if (env.rank >= env.world_size) {
        throw Error("RANK=" + std::to_string(env.rank) + " is not below WORLD_SIZE=" + std::to_string(env.world_size),
                    "environment", "ranks run from 0 to WORLD_SIZE-1");
    }
    env.local_rank = env_int("LOCAL_RANK", env.rank, 0, 1 << 20);
    env.local_world_size = env_int("LOCAL_WORLD_SIZE", env.world_size, 1, 1 << 20);
    const char* addr = std::getenv("MASTER_ADDR");
    bool has_port = false;
    env.master_port = env_int("MASTER_PORT", 29500, 1, 65535, &has_port);
    if (env.world_size > 1 && (addr == nullptr || *addr == '\0' || !has_port)) {
        throw Error(std::string(addr == nullptr || *addr == '\0' ? "MASTER_ADDR" : "MASTER_PORT") +
                        " is not set, so rank " + std::to_string(env.rank) + " cannot find rank 0",
                    "environment", "set MASTER_ADDR and MASTER_PORT (torchrun and `rlhf launch` do)");
    }
    if (addr != nullptr && *addr != '\0') env.master_addr = addr;
    const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    env.agent_store = agent != nullptr && std::string(agent) == "True";
    return env;
}

std::string device_for_rank(const std::string& device, const DistEnv& env) {
    if (!env.launched) return device;
    const std::string mine = "cuda:" + std::to_string(env.local_rank);
    if (device == "cuda") return mine;
    if (device == "auto") return torch::cuda::is_available() ? mine : "cpu";
    if (device.rfind("cuda:", 0) == 0 && env.local_world_size > 1) {
        throw Error("runtime.device = " + device + " would put all " + std::to_string(env.local_world_size) +
                        " ranks of this machine on one GPU",
                    "runtime.device", "use runtime.device=cuda: each rank takes cuda:LOCAL_RANK");
    }
    return device;
}

struct Distributed::Impl {
    DistEnv env;
    std::chrono::milliseconds timeout{600000};
    c10::intrusive_ptr<c10d::TCPStore> tcp;  // the connection (timeouts are set on it)
    c10::intrusive_ptr<c10d::Store> store;   // tcp, under torchrun prefixed by its restart attempt
#ifdef RLHF_WITH_NCCL
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;

    std::string key(const std::string& what, int rank) const { return "rlhf/" + what + "/" + std::to_string(rank); }

    template <class F>
    auto run(F&& f) {
#ifdef RLHF_WITH_NCCL
        if (nccl) return f(*nccl);
#endif
        return f(*gloo);
    }

    // Which ranks answer within `window`: each survivor checks in, then looks for the others.
    std::vector<int> silent_ranks(std::chrono::milliseconds window) {
        put(*store, key("alive", env.rank), "1");
        const auto deadline = std::chrono::steady_clock::now() + window;
        std::vector<int> silent;
        for (;;) {
            silent.clear();
            for (int r = 0; r < env.world_size; ++r) {
                if (r != env.rank && !store->check({key("alive", r)})) silent.push_back(r);
            }
            if (silent.empty() || std::chrono::steady_clock::now() > deadline) return silent;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
};

Distributed::Distributed() = default;
Distributed::~Distributed() = default;

void Distributed::fail(const std::string& during, const std::exception& e) const {
    const std::string cause = message_of(e);
    const std::string secs = std::to_string(impl_->timeout.count() / 1000);
    try {
        impl_->tcp->setTimeout(std::chrono::seconds(5));
        put(*impl_->store, impl_->key("seen", rank_), std::string("1"));
        // A rank that failed with an error of its own said so before leaving: report that.
        for (int r = 0; r < world_size_; ++r) {
            if (r != rank_ && impl_->store->check({impl_->key("failed", r)})) {
                const auto v = impl_->store->get(impl_->key("failed", r));
                throw Error("rank " + std::to_string(r) + " stopped: " + std::string(v.begin(), v.end()), kWhere,
                            "this rank (" + std::to_string(rank_) + ") stopped too");
            }
        }
        const auto silent = impl_->silent_ranks(std::min<std::chrono::milliseconds>(impl_->timeout, std::chrono::seconds(5)));
        if (!silent.empty()) {
            throw Error("lost rank " + rank_list(silent) + " during " + during + " (no answer from it within 5 s: its " +
                            "process exited, or is stuck; collectives wait runtime.dist_timeout = " + secs + " s): " + cause,
                        kWhere, "look at that rank's own output; this rank (" + std::to_string(rank_) + ") stopped too");
        }
    } catch (const Error&) {
        throw;
    } catch (const std::exception&) {
        // The store itself is gone: it lives in rank 0's process.
        if (impl_->env.agent_store) {
            throw Error("lost torchrun's rendezvous store at " + impl_->env.master_addr + ":" +
                            std::to_string(impl_->env.master_port) + " during " + during + ": " + cause,
                        kWhere, "look at torchrun's own output; this rank (" + std::to_string(rank_) + ") stopped too");
        }
        if (rank_ != 0) {
            throw Error("lost rank 0 during " + during + " (its process, which holds the rendezvous store at " +
                            impl_->env.master_addr + ":" + std::to_string(impl_->env.master_port) + ", is gone): " + cause,
                        kWhere, "look at rank 0's own output; this rank (" + std::to_string(rank_) + ") stopped too");
        }
    }
    throw Error(during + " failed on rank " + std::to_string(rank_) + ": " + cause, kWhere,
                "every rank answered; runtime.dist_timeout is " + secs + " s");
}

void Distributed::all_reduce_sum(torch::Tensor& t) const { all_reduce_sum_async(t).wait(); }

void Distributed::all_reduce_max(torch::Tensor& t) const {
    if (!impl_) return;
    torch::Tensor buf = t.to(device_).contiguous();
    std::vector<at::Tensor> v{buf};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::MAX;
    try {
        impl_->run([&](auto& pg) { return pg.allreduce(v, opts); })->wait();
    } catch (const std::exception& e) {
        fail("an all-reduce", e);
    }
    if (!buf.is_same(t)) t.copy_(buf);
}

Distributed::Pending Distributed::all_reduce_sum_async(torch::Tensor& t) const {
    if (!impl_) return {[] {}};
    const bool in_place = t.device() == device_ && t.is_contiguous();
    torch::Tensor buf = in_place ? t : t.to(device_).contiguous();
    auto v = std::make_shared<std::vector<at::Tensor>>(std::vector<at::Tensor>{buf});
    try {
        auto work = impl_->run([&](auto& pg) { return pg.allreduce(*v); });
        return {[this, work, v, t, buf, in_place]() mutable {
            try {
                work->wait();
            } catch (const std::exception& e) {
                fail("a gradient all-reduce", e);
            }
            if (!in_place) t.copy_(buf);
        }};
    } catch (const std::exception& e) {
        fail("an all-reduce", e);
    }
}

void Distributed::broadcast_from_main(torch::Tensor& t) const {
    if (!impl_) return;
    torch::Tensor buf = t.to(device_).contiguous();
    std::vector<at::Tensor> v{buf};
    try {
        impl_->run([&](auto& pg) { return pg.broadcast(v); })->wait();
    } catch (const std::exception& e) {
        fail("a broadcast", e);
    }
    if (!buf.is_same(t)) t.copy_(buf);
}

void Distributed::barrier() const {
    if (!impl_) return;
    torch::Tensor one = torch::ones({1});
    all_reduce_max(one);
}

void Distributed::main_first(const std::string& name, const std::function<void()>& work) const {
    if (!impl_ || world_size_ == 1) return work();
    const std::string key = "rlhf/ready/" + name;
    if (is_main()) {
        std::string outcome = "ok";
        try {
            work();
        } catch (const Error& e) {
            outcome = "error: " + e.one_line();
            put(*impl_->store, key, outcome);
            throw;
        } catch (const std::exception& e) {
            outcome = "error: " + message_of(e);
            put(*impl_->store, key, outcome);
            throw;
        }
        put(*impl_->store, key, outcome);
        return;
    }
    std::vector<uint8_t> v;
    try {
        // Preparing (training a tokenizer, tokenizing a corpus) may take longer than a collective.
        impl_->store->wait({key}, std::max<std::chrono::milliseconds>(impl_->timeout, std::chrono::hours(24)));
        v = impl_->store->get(key);
    } catch (const std::exception& e) {
        fail("waiting for rank 0 to prepare " + name, e);
    }
    const std::string outcome(v.begin(), v.end());
    if (outcome != "ok") {
        // Rank 0 waits (announce_failure) until every rank has read why it stopped.
        try {
            put(*impl_->store, impl_->key("seen", rank_), std::string("1"));
        } catch (const std::exception&) {
        }
        throw Error("rank 0 failed while preparing " + name + ": " + outcome.substr(7), kWhere,
                    "fix it and launch again; this rank (" + std::to_string(rank_) + ") stopped too");
    }
    work();
}

void Distributed::announce_failure(const std::string& line) const {
    if (!impl_ || world_size_ == 1) return;
    try {
        impl_->tcp->setTimeout(std::chrono::seconds(5));
        put(*impl_->store, impl_->key("failed", rank_), line);
        if (!is_main()) return;
        // Rank 0 holds the store: close the process group so the others' collectives fail now,
        // and give them a moment to read this message before the store goes with this process.
        impl_->gloo.reset();
#ifdef RLHF_WITH_NCCL
        impl_->nccl.reset();
#endif
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        // A rank that failed on its own (the same bad config on every rank) is not listening.
        for (int r = 1; r < world_size_ && std::chrono::steady_clock::now() < deadline;) {
            if (impl_->store->check({impl_->key("seen", r)}) || impl_->store->check({impl_->key("failed", r)})) {
                ++r;
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
    } catch (const std::exception&) {
        // Nobody to tell.
    }
}

Distributed& distributed() {
    // Never destroyed: c10d's threads must not be torn down by static destructors at exit.
    static Distributed* group = new Distributed();
    return *group;
}

Distributed& init_distributed(const DistEnv& env, const torch::Device& device, std::chrono::milliseconds timeout) {
    Distributed& d = distributed();
    if (!env.launched || d.impl_) return d;
    const std::string at = env.master_addr + ":" + std::to_string(env.master_port);
    auto impl = std::make_unique<Distributed::Impl>();
    impl->env = env;
    impl->timeout = timeout;
    const std::string secs = std::to_string(timeout.count() / 1000);

    // 1. Rendezvous: rank 0 serves the store; everyone checks in and waits for the rest.
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(env.master_port);
    opts.isServer = env.rank == 0 && !env.agent_store;
    opts.numWorkers = env.world_size;
    opts.waitWorkers = false;  // we wait ourselves, to name the ranks that did not come
    opts.timeout = timeout;
    try {
        impl->tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    } catch (const std::exception& e) {
        if (opts.isServer) {
            throw Error("rank 0 cannot serve the rendezvous store on " + at + ": " + message_of(e), kWhere,
                        "choose a free port (--master-port / MASTER_PORT) on an address of this machine");
        }
        throw Error("rank " + std::to_string(env.rank) + " cannot reach " + (env.agent_store ? "torchrun's store" : "rank 0") + " at " + at + " within runtime.dist_timeout = " +
                        secs + " s: " + message_of(e),
                    kWhere, "check MASTER_ADDR/MASTER_PORT, that rank 0 started, and the network between the machines");
    }
    // torchrun's store outlives the workers it restarts (--max-restarts): keys of this attempt only,
    // as PyTorch does.
    const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
    impl->store = env.agent_store ? c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(
                                        std::string("rlhf/attempt_") + (attempt ? attempt : "0"), impl->tcp))
                                  : c10::intrusive_ptr<c10d::Store>(impl->tcp);
    put(*impl->store, impl->key("joined", env.rank), std::string("1"));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::vector<int> missing;
        try {
            for (int r = 0; r < env.world_size; ++r) {
                if (!impl->store->check({impl->key("joined", r)})) missing.push_back(r);
            }
        } catch (const std::exception& e) {
            throw Error("lost rank 0 while the ranks gathered at " + at + ": " + message_of(e), kWhere,
                        "look at rank 0's own output");
        }
        if (missing.empty()) break;
        if (std::chrono::steady_clock::now() > deadline) {
            throw Error("rank " + rank_list(missing) + " did not join at " + at + " within runtime.dist_timeout = " + secs +
                            " s (" + std::to_string(env.world_size - static_cast<int>(missing.size())) + " of " +
                            std::to_string(env.world_size) + " ranks arrived)",
                        kWhere, "start every rank (torchrun --nnodes/--node_rank), with the same MASTER_ADDR and MASTER_PORT");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }

    // 2. The process group: NCCL for GPUs, Gloo for CPUs.
    auto pg_store = c10::make_intrusive<c10d::PrefixStore>("pg", impl->store);
    try {
        if (device.is_cuda()) {
#ifdef RLHF_WITH_NCCL
            // Without blocking wait a lost peer stalls the GPU stream instead of raising an
            // error here, and no rank could say what happened.
            ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
            ::setenv("NCCL_BLOCKING_WAIT", "1", 0);
            auto nccl_opts = c10d::ProcessGroupNCCL::Options::create();
            nccl_opts->timeout = timeout;
            impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, env.rank, env.world_size, nccl_opts);
#else
            throw Error("this LibTorch has no NCCL, which distributed training on " + device.str() + " needs", kWhere,
                        "use a CUDA LibTorch (scripts/build.sh --torch pip) or runtime.device=cpu");
#endif
        } else {
            auto gloo_opts = c10d::ProcessGroupGloo::Options::create(timeout);
            // Loopback stays on loopback; across machines Gloo takes the interface of this
            // host's name, or GLOO_SOCKET_IFNAME's as with PyTorch.
            if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
                gloo_opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            } else if (is_loopback(env.master_addr)) {
                gloo_opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
            } else {
                gloo_opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            }
            impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, env.rank, env.world_size, gloo_opts);
        }
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error("rank " + std::to_string(env.rank) + " could not connect to the other ranks: " + message_of(e), kWhere,
                    "set GLOO_SOCKET_IFNAME to the network interface the machines share");
    }
    d.impl_ = std::move(impl);
    d.rank_ = env.rank;
    d.world_size_ = env.world_size;
    d.device_ = device;
    spdlog::debug("rank {} of {} joined at {} ({})", env.rank, env.world_size, at, device.is_cuda() ? "NCCL" : "Gloo");
    return d;
}

}  // namespace rlhf
