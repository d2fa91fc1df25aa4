#include "memskew/model.h"

#include <fmt/format.h>

#include "memskew/error.h"
#include "model/arch/arch.h"

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
    if (!arch_spec(arch).learned_positions && head_dim() % 2 != 0)
        throw InvalidInput(fmt::format("model config: head dimension {} must be even for rotary embeddings", head_dim()));
    if (!(rotary_pct > 0 && rotary_pct <= 1))
        throw InvalidInput(fmt::format("model config: rotary_pct must be in (0, 1], got {}", rotary_pct));
    if (hidden_act != "silu" && hidden_act != "gelu" && hidden_act != "gelu_new" && hidden_act != "gelu_fast" &&
        hidden_act != "gelu_pytorch_tanh" && hidden_act != "relu")
        throw InvalidInput(fmt::format("model config: unsupported activation '{}'", hidden_act),
                           "supported: silu, gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, relu");
    if (!(norm_eps > 0)) throw InvalidInput(fmt::format("model config: norm epsilon must be positive, got {}", norm_eps));
    if (!(rope_base > 0)) throw InvalidInput(fmt::format("model config: rope base must be positive, got {}", rope_base));
}

int64_t ModelConfig::rotary_dim() const {
    if (arch_spec(arch).learned_positions) return 0;
    return (static_cast<int64_t>(head_dim() * rotary_pct) / 2) * 2;
}

int64_t ModelConfig::n_params() const {
    const int64_t hd = head_dim();
    const ArchSpec& spec = arch_spec(arch);
    const bool layer_norm = spec.layer_norm;  // LayerNorm has a bias next to its weight
    int64_t attn = dim * (n_heads * hd) + 2 * dim * (n_kv_heads * hd) + (n_heads * hd) * dim;
    if (qkv_bias || layer_norm) attn += (n_heads + 2 * n_kv_heads) * hd;
    if (o_bias || layer_norm) attn += dim;
    int64_t mlp = 0;
    if (hidden_act == "silu") mlp = 3 * dim * ffn_dim + (mlp_bias ? 2 * ffn_dim + dim : 0);
    else mlp = 2 * dim * ffn_dim + ffn_dim + dim;
    const int64_t norms = (layer_norm ? 2 : 1) * dim;
    const int64_t per_layer = attn + mlp + 2 * norms;
    int64_t total = n_vocab * dim + n_layers * per_layer + norms + (tied_output ? 0 : n_vocab * dim);
    if (spec.learned_positions) total += max_ctx * dim;
    return total;
}

ModelConfig parse_init_config(const std::string& spec) {
    ModelConfig c;
    c.name = "memskew-from-scratch";
    auto bad = [&](const std::string& what) {
        throw InvalidInput(fmt::format("init '{}': {}", spec, what),
                           "keys: dim, layers, heads, kv_heads, ffn, ctx, arch, e.g. "
                           "\"dim=64,layers=2,heads=4,ffn=128,ctx=256\"");
    };
    size_t begin = 0;
    while (begin <= spec.size()) {
        size_t end = spec.find(',', begin);
        if (end == std::string::npos) end = spec.size();
        const std::string kv = spec.substr(begin, end - begin);
        begin = end + 1;
        if (kv.empty()) continue;
        const auto eq = kv.find('=');
        if (eq == std::string::npos) bad(fmt::format("'{}' is not key=value", kv));
        const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
        auto num = [&] {
            if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
                bad(fmt::format("{} must be a non-negative integer, got '{}'", k, v));
            return static_cast<int64_t>(std::stoll(v));
        };
        if (k == "dim") c.dim = num();
        else if (k == "layers") c.n_layers = num();
        else if (k == "heads") c.n_heads = num();
        else if (k == "kv_heads") c.n_kv_heads = num();
        else if (k == "ffn") c.ffn_dim = num();
        else if (k == "ctx") c.max_ctx = num();
        else if (k == "arch") c.arch = v;
        else bad(fmt::format("unknown key '{}'", k));
    }
    if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
    if (c.ffn_dim == 0) c.ffn_dim = 4 * c.dim;
    return c;
}

}  // namespace memskew
