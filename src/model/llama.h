// The Llama family (Llama 2/3, Mistral, TinyLlama, SmolLM) as a LibTorch module
// whose parameters carry Hugging Face names, so weights load 1:1 and LoRA
// adapters in PEFT format address them directly.
//
// Shape legend:
//   B batch, T tokens in this call, S key slots (cache length), D hidden size,
//   H query heads, Hkv key/value heads, R = H / Hkv, hd head dim, F FFN size,
//   V vocabulary, N gathered rows.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "memskew/model.h"

namespace memskew {

// Per-run key/value cache. Slot s of sequence b holds the keys/values of the
// token at position s of that sequence, so positions double as slot indices.
struct KvCache {
    std::vector<torch::Tensor> k;  // per layer [B, Hkv, S_cap, hd]
    std::vector<torch::Tensor> v;  // per layer [B, Hkv, S_cap, hd]
    int64_t capacity = 0;

    static KvCache allocate(const ModelConfig& cfg, int64_t batch, int64_t capacity, torch::Dtype dtype);
    // Keeps only the given batch rows (after some sequences finished).
    void select_rows(const torch::Tensor& rows);
};

struct RmsNormImpl : torch::nn::Module {
    RmsNormImpl(int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    double eps;
};
TORCH_MODULE(RmsNorm);

struct LlamaAttentionImpl : torch::nn::Module {
    explicit LlamaAttentionImpl(const ModelConfig& cfg);
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(LlamaAttention);

struct LlamaMlpImpl : torch::nn::Module {
    explicit LlamaMlpImpl(const ModelConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

struct LlamaLayerImpl : torch::nn::Module {
    explicit LlamaLayerImpl(const ModelConfig& cfg);
    LlamaAttention self_attn{nullptr};
    LlamaMlp mlp{nullptr};
    RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaLayer);

struct LlamaBackboneImpl : torch::nn::Module {
    explicit LlamaBackboneImpl(const ModelConfig& cfg);
    torch::nn::Embedding embed_tokens{nullptr};
    torch::nn::ModuleList layers;
    RmsNorm norm{nullptr};
};
TORCH_MODULE(LlamaBackbone);

class LlamaImpl : public torch::nn::Module {
public:
    explicit LlamaImpl(const ModelConfig& cfg);

    // ids [B, T] int64, pos [B, T] int64 (absolute positions). With a cache,
    // keys/values are written at slots pos and attention spans the cache;
    // without one, attention spans this call's tokens. Key slot s is visible
    // to query (b, t) iff key_pos(b, s) <= pos(b, t): causal, and padding
    // placed after the real tokens is never seen by them.
    // Returns the final-normed hidden states [B, T, D].
    torch::Tensor forward_hidden(const torch::Tensor& ids, const torch::Tensor& pos, KvCache* cache = nullptr);
    // Output projection of gathered rows: h [N, D] -> logits [N, V] (compute dtype).
    torch::Tensor project(const torch::Tensor& h);

    const ModelConfig& config() const { return cfg_; }
    torch::Dtype dtype() const;
    // Per-frequency divisors for Llama-3 style scaled rotary (rope_freqs.weight), [hd/2].
    void set_rope_freq_factors(const torch::Tensor& factors);

    LlamaBackbone model{nullptr};
    torch::nn::Linear lm_head{nullptr};  // null when tied to the embeddings

private:
    torch::Tensor attention(LlamaAttention& attn, const torch::Tensor& x, const torch::Tensor& cos,
                            const torch::Tensor& sin, const torch::Tensor& mask, const torch::Tensor& pos,
                            KvCache* cache, int64_t layer, int64_t n_slots);
    void rebuild_rope_tables();

    ModelConfig cfg_;
    torch::Tensor rope_factors_;  // [hd/2] float or undefined
    torch::Tensor cos_table_;     // [max_ctx, hd] float
    torch::Tensor sin_table_;     // [max_ctx, hd] float
};
TORCH_MODULE(Llama);

}  // namespace memskew
