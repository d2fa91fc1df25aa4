#include "memskew/model.h"

#include <fmt/format.h>

#include "memskew/error.h"

namespace memskew {

const char* dtype_name(DType d) { return d == DType::kBF16 ? "bf16" : "f32"; }

DType parse_dtype(const std::string& s) {
    if (s == "f32" || s == "fp32" || s == "float32") return DType::kF32;
    if (s == "bf16" || s == "bfloat16") return DType::kBF16;
    throw InvalidInput(fmt::format("unknown dtype '{}'", s), "use f32 or bf16");
}

void ModelConfig::validate() const {
    auto positive = [](const char* what, int64_t v) {
        if (v <= 0) throw InvalidInput(fmt::format("model config: {} must be positive, got {}", what, v));
    };
    positive("vocabulary size", n_vocab);
    positive("hidden size", dim);
    positive("layer count", n_layers);
    positive("head count", n_heads);
    positive("KV head count", n_kv_heads);
    positive("feed-forward size", ffn_dim);
    positive("context length", max_ctx);
    if (dim % n_heads != 0)
        throw InvalidInput(fmt::format("model config: hidden size {} is not divisible by {} heads", dim, n_heads));
    if (n_heads % n_kv_heads != 0)
        throw InvalidInput(fmt::format("model config: {} heads are not divisible by {} KV heads", n_heads, n_kv_heads));
    if (head_dim() % 2 != 0)
        throw InvalidInput(fmt::format("model config: head dimension {} must be even for rotary embeddings", head_dim()));
    if (!(norm_eps > 0)) throw InvalidInput(fmt::format("model config: norm epsilon must be positive, got {}", norm_eps));
    if (!(rope_base > 0)) throw InvalidInput(fmt::format("model config: rope base must be positive, got {}", rope_base));
}

int64_t ModelConfig::n_params() const {
    const int64_t hd = head_dim();
    const int64_t attn = dim * (n_heads * hd) + 2 * dim * (n_kv_heads * hd) + (n_heads * hd) * dim;
    const int64_t mlp = 3 * dim * ffn_dim;
    const int64_t per_layer = attn + mlp + 2 * dim;
    return n_vocab * dim + n_layers * per_layer + dim + (tied_output ? 0 : n_vocab * dim);
}

}  // namespace memskew
