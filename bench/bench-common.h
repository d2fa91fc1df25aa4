// Pieces shared by the LibTorch benchmarks: the ~134M random Llama shape of
// bench-score / bench-train / bench-probe, a 32000-token vocabulary for it,
// and a wall clock.
#pragma once

#include <fmt/format.h>

#include <chrono>

#include "memskew/model.h"
#include "memskew/tokenizer.h"

namespace memskew::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr int64_t kLlama134MVocab = 32000;

// dim 768, 12 layers, 12 heads (12 KV heads), FFN 2048, untied output.
inline ModelConfig llama_134m_config(int64_t max_ctx = 256) {
    ModelConfig c;
    c.name = "random-llama-134M";
    c.dim = 768;
    c.n_layers = 12;
    c.n_heads = 12;
    c.n_kv_heads = 12;
    c.ffn_dim = 2048;
    c.max_ctx = max_ctx;
    c.tied_output = false;
    return c;
}

// The byte vocabulary padded with user-defined tokens to kLlama134MVocab.
inline Vocab llama_134m_vocab() {
    Vocab v = make_byte_vocab();
    for (int64_t i = static_cast<int64_t>(v.tokens.size()); i < kLlama134MVocab; ++i) {
        v.tokens.push_back(fmt::format("<extra_{}>", i));
        v.types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
    }
    return v;
}

}  // namespace memskew::bench
