// Threads, device and seeds are chosen once, here, before any tensor work.
//
// Debian's LibTorch starts with ONE intra-op thread; without init_runtime() a 2-core machine
// trains at half speed.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace rlhf {

struct Runtime {
    torch::Device device{torch::kCPU};
    int threads = 1;  // intra-op threads actually in use
};

// Deterministic kernels from now on (LibTorch's deterministic algorithms, cuDNN without
// autotuning, cuBLAS with a fixed workspace): one seed gives one result on one machine.
void use_deterministic_algorithms();

// threads <= 0 means "all cores". device: "cpu", "cuda", "cuda:N" or "auto"; a bad one is an
// rlhf::Error naming `device_key` (the config key, or a command's flag).
// Seeds LibTorch's global CPU (and CUDA) generators with `seed`, and tunes glibc malloc to keep
// freed tensor memory for reuse (keep_freed_memory_for_reuse), and bounds oneDNN's cache of compiled
// primitives to 64 shapes (ONEDNN_PRIMITIVE_CACHE_CAPACITY, unless set).
Runtime init_runtime(int threads, uint64_t seed, const std::string& device,
                     const std::string& device_key = "runtime.device");

// Serve allocations up to 32 MiB from the heap and never trim it, so a training step reuses the
// previous step's activation memory instead of page-faulting fresh mmap'ed pages.
void keep_freed_memory_for_reuse();

// Number of cores this process may run on (sched_getaffinity, falling back to hardware_concurrency).
int available_cores();

// Peak resident memory of this process so far, in MiB (getrusage).
double peak_rss_mib();

// A host tensor on `device`. To a GPU the copy goes through pinned (page-locked) memory and does
// not block: the host goes on preparing the next batch while the copy runs on the GPU's stream,
// whose later kernels wait for it. Elsewhere it is `t.to(device)`.
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device);

// Parse a device string; throws rlhf::Error (with `where`) for unknown names or absent CUDA.
torch::Device parse_device(const std::string& name, const std::string& where);

}  // namespace rlhf
