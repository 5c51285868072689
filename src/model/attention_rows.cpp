// Compiled with -ffast-math (CMakeLists.txt); include nothing from LibTorch here (see the header).
#include "rlhf/model/attention_rows.h"

#include <math.h>

namespace rlhf::attention_rows {

float causal_softmax(float* row, int i, int T) {
    float max = row[0];
    for (int j = 1; j <= i; ++j) max = row[j] > max ? row[j] : max;
    float sum = 0.f;
    for (int j = 0; j <= i; ++j) {
        row[j] = expf(row[j] - max);
        sum += row[j];
    }
    const float inv = 1.f / sum;
    for (int j = 0; j <= i; ++j) row[j] *= inv;
    for (int j = i + 1; j < T; ++j) row[j] = 0.f;
    return max + logf(sum);
}

void causal_exp(float* row, int i, int T, float lse) {
    for (int j = 0; j <= i; ++j) row[j] = expf(row[j] - lse);
    for (int j = i + 1; j < T; ++j) row[j] = 0.f;
}

void causal_softmax_backward(const float* p, float* dp, int i, int T, float scale) {
    float d = 0.f;
    for (int j = 0; j <= i; ++j) d += p[j] * dp[j];
    for (int j = 0; j <= i; ++j) dp[j] = p[j] * (dp[j] - d) * scale;
    for (int j = i + 1; j < T; ++j) dp[j] = 0.f;
}

}  // namespace rlhf::attention_rows
