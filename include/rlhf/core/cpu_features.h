// What this CPU computes in hardware, where it changes what a run should ask for.
#pragma once

namespace rlhf {

// bf16 matmuls in hardware (AVX512-BF16 or AMX, from /proc/cpuinfo). Without them LibTorch
// converts every bf16 matmul through fp32, and a bf16 step took 20x an fp32 one (2026-12-06, an
// AVX2-only EPYC: 5.5 s against 250 ms for the demo's pre-training step).
bool cpu_has_native_bf16();

}  // namespace rlhf
