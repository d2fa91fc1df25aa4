#include "model/llama.h"

#include <cmath>
#include <string>

namespace memskew {

namespace F = torch::nn::functional;

KvCache KvCache::allocate(const ModelConfig& cfg, int64_t batch, int64_t capacity, torch::Dtype dtype) {
    KvCache c;
    c.capacity = capacity;
    const auto opts = torch::TensorOptions().dtype(dtype);
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        c.k.push_back(torch::zeros({batch, cfg.n_kv_heads, capacity, cfg.head_dim()}, opts));
        c.v.push_back(torch::zeros({batch, cfg.n_kv_heads, capacity, cfg.head_dim()}, opts));
    }
    return c;
}

void KvCache::select_rows(const torch::Tensor& rows) {
    for (auto& t : k) t = t.index_select(0, rows);
    for (auto& t : v) t = t.index_select(0, rows);
}

RmsNormImpl::RmsNormImpl(int64_t dim, double eps_) : eps(eps_) {
    weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
    // As Hugging Face's LlamaRMSNorm: normalize in fp32, cast back, then scale.
    auto xf = x.to(torch::kFloat);
    auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
    return weight * normed.to(x.scalar_type());
}

static torch::nn::Linear make_linear(int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

LlamaAttentionImpl::LlamaAttentionImpl(const ModelConfig& cfg) {
    const int64_t hd = cfg.head_dim();
    q_proj = register_module("q_proj", make_linear(cfg.dim, cfg.n_heads * hd));
    k_proj = register_module("k_proj", make_linear(cfg.dim, cfg.n_kv_heads * hd));
    v_proj = register_module("v_proj", make_linear(cfg.dim, cfg.n_kv_heads * hd));
    o_proj = register_module("o_proj", make_linear(cfg.n_heads * hd, cfg.dim));
}

LlamaMlpImpl::LlamaMlpImpl(const ModelConfig& cfg) {
    gate_proj = register_module("gate_proj", make_linear(cfg.dim, cfg.ffn_dim));
    up_proj = register_module("up_proj", make_linear(cfg.dim, cfg.ffn_dim));
    down_proj = register_module("down_proj", make_linear(cfg.ffn_dim, cfg.dim));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
    return down_proj(F::silu(gate_proj(x)) * up_proj(x));
}

LlamaLayerImpl::LlamaLayerImpl(const ModelConfig& cfg) {
    self_attn = register_module("self_attn", LlamaAttention(cfg));
    mlp = register_module("mlp", LlamaMlp(cfg));
    input_layernorm = register_module("input_layernorm", RmsNorm(cfg.dim, cfg.norm_eps));
    post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(cfg.dim, cfg.norm_eps));
}

LlamaBackboneImpl::LlamaBackboneImpl(const ModelConfig& cfg) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(cfg.n_vocab, cfg.dim));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t l = 0; l < cfg.n_layers; ++l) layers->push_back(LlamaLayer(cfg));
    norm = register_module("norm", RmsNorm(cfg.dim, cfg.norm_eps));
}

LlamaImpl::LlamaImpl(const ModelConfig& cfg) : cfg_(cfg) {
    cfg_.validate();
    model = register_module("model", LlamaBackbone(cfg_));
    if (!cfg_.tied_output) lm_head = register_module("lm_head", make_linear(cfg_.dim, cfg_.n_vocab));
    rebuild_rope_tables();
}

torch::Dtype LlamaImpl::dtype() const { return model->embed_tokens->weight.scalar_type(); }

void LlamaImpl::set_rope_freq_factors(const torch::Tensor& factors) {
    rope_factors_ = factors.to(torch::kFloat).reshape({-1});
    rebuild_rope_tables();
}

void LlamaImpl::rebuild_rope_tables() {
    // Hugging Face layout: pairs are (i, i + hd/2) with frequency base^(-2i/hd).
    const int64_t hd = cfg_.head_dim();
    auto inv_freq = 1.0 / torch::pow(torch::tensor(cfg_.rope_base, torch::kDouble),
                                     torch::arange(0, hd, 2, torch::kDouble) / static_cast<double>(hd));
    if (rope_factors_.defined()) inv_freq = inv_freq / rope_factors_.to(torch::kDouble);
    auto t = torch::arange(cfg_.max_ctx, torch::kDouble);
    auto freqs = torch::outer(t, inv_freq);        // [ctx, hd/2]
    auto emb = torch::cat({freqs, freqs}, -1);     // [ctx, hd]
    cos_table_ = emb.cos().to(torch::kFloat);
    sin_table_ = emb.sin().to(torch::kFloat);
}

static torch::Tensor rotate_half(const torch::Tensor& x) {
    const int64_t half = x.size(-1) / 2;
    auto x1 = x.narrow(-1, 0, half);
    auto x2 = x.narrow(-1, half, half);
    return torch::cat({-x2, x1}, -1);
}

torch::Tensor LlamaImpl::attention(LlamaAttention& attn, const torch::Tensor& x, const torch::Tensor& cos,
                                   const torch::Tensor& sin, const torch::Tensor& mask, const torch::Tensor& pos,
                                   KvCache* cache, int64_t layer, int64_t n_slots) {
    const int64_t B = x.size(0), T = x.size(1);
    const int64_t H = cfg_.n_heads, Hkv = cfg_.n_kv_heads, hd = cfg_.head_dim(), R = H / Hkv;
    auto q = attn->q_proj(x).view({B, T, H, hd}).transpose(1, 2);     // [B, H, T, hd]
    auto k = attn->k_proj(x).view({B, T, Hkv, hd}).transpose(1, 2);   // [B, Hkv, T, hd]
    auto v = attn->v_proj(x).view({B, T, Hkv, hd}).transpose(1, 2);   // [B, Hkv, T, hd]
    // Rotary in fp32, then back to the compute dtype.
    const auto dt = x.scalar_type();
    q = (q.to(torch::kFloat) * cos + rotate_half(q.to(torch::kFloat)) * sin).to(dt);
    k = (k.to(torch::kFloat) * cos + rotate_half(k.to(torch::kFloat)) * sin).to(dt);
    if (cache) {
        auto idx = pos.view({B, 1, T, 1}).expand({B, Hkv, T, hd});
        cache->k[layer].scatter_(2, idx, k);
        cache->v[layer].scatter_(2, idx, v);
        k = cache->k[layer].narrow(2, 0, n_slots);  // [B, Hkv, S, hd]
        v = cache->v[layer].narrow(2, 0, n_slots);
    }
    // Grouped-query attention without copying K/V: query heads h*R..h*R+R-1 share KV head h.
    auto qg = q.view({B, Hkv, R, T, hd});
    auto scores = torch::matmul(qg, k.unsqueeze(2).transpose(-1, -2));  // [B, Hkv, R, T, S]
    scores = scores.to(torch::kFloat) * (1.0 / std::sqrt(static_cast<double>(hd))) + mask;
    auto probs = torch::softmax(scores, -1).to(dt);
    auto out = torch::matmul(probs, v.unsqueeze(2));  // [B, Hkv, R, T, hd]
    out = out.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
    return attn->o_proj(out);
}

torch::Tensor LlamaImpl::forward_hidden(const torch::Tensor& ids, const torch::Tensor& pos, KvCache* cache) {
    const int64_t B = ids.size(0), T = ids.size(1);
    TORCH_CHECK(pos.sizes() == ids.sizes(), "positions must match ids");
    auto h = model->embed_tokens(ids);  // [B, T, D]
    auto cos = cos_table_.index_select(0, pos.reshape({-1})).view({B, 1, T, -1});  // [B, 1, T, hd]
    auto sin = sin_table_.index_select(0, pos.reshape({-1})).view({B, 1, T, -1});
    // Key positions: slot indices with a cache, else this call's positions.
    int64_t n_slots = T;
    torch::Tensor key_pos;  // [B, S]
    if (cache) {
        n_slots = pos.max().item<int64_t>() + 1;
        TORCH_CHECK(n_slots <= cache->capacity, "KV cache overflow");
        key_pos = torch::arange(n_slots, torch::kLong).unsqueeze(0).expand({B, n_slots});
    } else {
        key_pos = pos;
    }
    auto visible = key_pos.unsqueeze(1) <= pos.unsqueeze(2);  // [B, T, S]
    auto mask = torch::zeros({B, T, n_slots}, torch::kFloat)
                    .masked_fill_(visible.logical_not(), -std::numeric_limits<float>::infinity())
                    .view({B, 1, 1, T, n_slots});
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
        auto& layer = model->layers[l]->as<LlamaLayerImpl>()->self_attn;
        auto* lyr = model->layers[l]->as<LlamaLayerImpl>();
        h = h + attention(layer, lyr->input_layernorm(h), cos, sin, mask, pos, cache, l, n_slots);
        h = h + lyr->mlp(lyr->post_attention_layernorm(h));
    }
    return model->norm(h);
}

torch::Tensor LlamaImpl::project(const torch::Tensor& h) {
    if (lm_head) return lm_head(h);
    return torch::matmul(h, model->embed_tokens->weight.t());
}

}  // namespace memskew
