#include "rlhf/core/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <cstdlib>
#include <thread>

#include "rlhf/core/error.h"

namespace rlhf {

int available_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw > 0 ? static_cast<int>(hw) : 1;
}

double peak_rss_mib() {
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

torch::Device parse_device(const std::string& name, const std::string& where) {
    if (name == "cpu") return torch::kCPU;
    if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::kCPU;
    if (name.rfind("cuda", 0) == 0) {
        if (!torch::cuda::is_available()) {
            // A CUDA LibTorch registers its CUDA device guard when it loads, GPU or not.
            if (c10::impl::hasDeviceGuardImpl(c10::kCUDA)) {
                throw Error("device '" + name + "' requested but no CUDA GPU is visible to this process", where,
                            "check nvidia-smi and CUDA_VISIBLE_DEVICES, or use cpu");
            }
            throw Error("device '" + name + "' requested but this LibTorch build has no CUDA", where,
                        "use cpu, or build against a CUDA LibTorch (scripts/build.sh --torch pip)");
        }
        torch::Device device(torch::kCPU);
        try {
            device = torch::Device(name);
        } catch (const c10::Error&) {
            throw Error("cannot parse device '" + name + "'", where, "use cuda or cuda:N");
        }
        const auto count = static_cast<int64_t>(torch::cuda::device_count());
        if (device.has_index() && device.index() >= count) {
            throw Error("device '" + name + "' does not exist: this machine has " + std::to_string(count) + " GPU(s)",
                        where, "use cuda:0 .. cuda:" + std::to_string(count - 1));
        }
        return device;
    }
    throw Error("unknown device '" + name + "'", where, "use cpu, cuda, cuda:N or auto");
}

torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device) {
    if (!device.is_cuda() || !t.device().is_cpu()) return t.to(device);
    return t.pin_memory().to(device, /*non_blocking=*/true);
}

void keep_freed_memory_for_reuse() {
    // LibTorch's CPU allocator is glibc malloc. By default a multi-MB tensor is mmap'ed and
    // unmapped again when freed, so every training step first-touches fresh pages: ~400 us of
    // page faults for one 1.5 MB activation, 4x the cost of the GELU that writes it
    // (docs/benchmarks.md). Serving such sizes from the heap and not trimming it keeps freed
    // blocks for the next step. 32 MiB is the largest mmap threshold glibc accepts.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

static void bound_onednn_primitive_cache() {
    // oneDNN (LibTorch's CPU bf16 matmuls and more) keeps a compiled primitive, with its
    // buffers, for each of the last 1024 shapes it ran. Batches whose shape changes every step
    // (the reward stage: completions × the longest one) filled it to ~1.7 GB in the demo's 200
    // steps (docs/benchmarks.md). A training step runs a few dozen shapes; 64 keeps those.
    // Read by oneDNN at its first primitive, so this runs before any tensor op; a value the
    // user set (either name, ONEDNN_ or the older DNNL_) wins.
    if (std::getenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY") || std::getenv("DNNL_PRIMITIVE_CACHE_CAPACITY")) return;
    ::setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64", /*overwrite=*/0);
}

void use_deterministic_algorithms() {
    // cuBLAS reduces in a fixed order only with a fixed workspace; it reads this before its
    // first handle, so before any CUDA work. Unknown to a CPU build, and harmless there.
    setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
    // warn_only: an op without a deterministic kernel warns instead of stopping a run.
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setBenchmarkCuDNN(false);
}

Runtime init_runtime(int threads, uint64_t seed, const std::string& device, const std::string& device_key) {
    bound_onednn_primitive_cache();
    keep_freed_memory_for_reuse();
    Runtime rt;
    rt.threads = threads > 0 ? threads : available_cores();
    // Intra-op parallelism: LibTorch's OpenMP pool and (through it) OpenBLAS-openmp.
    at::set_num_threads(rt.threads);
    rt.device = parse_device(device, device_key);
    if (rt.device.is_cuda()) {
        // cuda:N is the current device too, so LibTorch's own allocations (pinned staging
        // buffers, the CUDA context, streams) land on that GPU rather than on GPU 0.
        if (rt.device.has_index()) c10::impl::getDeviceGuardImpl(c10::kCUDA)->setDevice(rt.device);
        // fp32 matmuls on tensor cores (TF32), as nanoGPT runs them; bf16 runs are not affected.
        at::globalContext().setFloat32MatmulPrecision("high");
    }
    torch::manual_seed(seed);  // CPU generator and, when present, every CUDA generator
    return rt;
}

}  // namespace rlhf
