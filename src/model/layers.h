// Layer helpers shared by the architectures in src/model/arch/.
#pragma once

#include <torch/torch.h>

#include <string>

#include "memskew/model.h"
#include "model/causal-lm.h"

namespace memskew {

// One LoRA factor: a module holding only "weight", so the parameters are named
// "<linear>.lora_A.weight" / "<linear>.lora_B.weight" as in PEFT (whose saved
// keys are these names behind "base_model.model.").
struct LoraWeightImpl : torch::nn::Module {
    LoraWeightImpl(int64_t rows, int64_t cols);
    torch::Tensor weight;  // [rows, cols]
};
TORCH_MODULE(LoraWeight);

// A linear layer with Hugging Face parameter names ("weight", "bias"). Every
// projection of every architecture goes through it, so LoRA enters in one
// place. conv1d_layout: GPT-2's Conv1D stores weight as [in, out].
//
// LoRA (PEFT's lora.Linear): y = base(x) + dropout(x) A^T B^T * scaling with
// A = lora_A.weight [r, in], B = lora_B.weight [out, r] in either layout (for
// Conv1D PEFT sets fan_in_fan_out and transposes only the merged delta). The
// adapter path runs in the factors' dtype (fp32, as PEFT's
// autocast_adapter_dtype) and the sum is cast back to the input's dtype.
struct LinearImpl : torch::nn::Module {
    LinearImpl(int64_t in, int64_t out, bool bias, bool conv1d_layout = false);
    torch::Tensor forward(const torch::Tensor& x);
    int64_t in_features, out_features;
    bool conv1d_layout;
    torch::Tensor weight;  // [out, in], or [in, out] in Conv1D layout
    torch::Tensor bias;    // [out] or undefined

    // Registers lora_A (Kaiming-uniform, as PEFT's default init) and lora_B
    // (zeros), fp32, so a fresh adapter leaves the output unchanged. The
    // factors require grad iff `trainable` (the base weights stay frozen), so
    // a trainer can collect exactly the LoRA parameters. Replaces an adapter
    // already attached. Call outside c10::InferenceMode when training.
    void attach_lora(int64_t rank, double alpha, double dropout = 0.0, bool use_rslora = false,
                     bool trainable = false);
    // Folds B A * scaling into the base weight (PEFT's merge: the delta is
    // computed in fp32 and cast to the weight's dtype; transposed for Conv1D)
    // and removes the adapter.
    void merge_lora();
    // Removes the adapter without touching the base weight.
    void detach_lora();
    bool has_lora() const { return !lora_A.is_empty(); }
    // B A * scaling in the base weight's layout (fp32).
    torch::Tensor lora_delta_weight() const;

    LoraWeight lora_A{nullptr}, lora_B{nullptr};
    int64_t lora_rank = 0;
    double lora_alpha = 0.0, lora_scaling = 0.0, lora_dropout = 0.0;
};
TORCH_MODULE(Linear);

// Normalization with a "weight" (and, for LayerNorm, a "bias") parameter.
struct NormImpl : torch::nn::Module {
    NormImpl(int64_t dim, double eps, bool layer_norm);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight, bias;
    double eps;
    bool layer_norm;
};
TORCH_MODULE(Norm);

torch::Tensor activation(const std::string& name, const torch::Tensor& x);

// Rotary position embeddings in the Hugging Face layout: the first rotary_dim
// dims of each head rotate, pairs (i, i + rotary_dim/2), frequency
// base^(-2i/rotary_dim), with optional linear / llama3 scaling.
class Rotary {
public:
    explicit Rotary(const ModelConfig& cfg);
    // Per-frequency divisors (GGUF rope_freqs.weight), [rotary_dim/2].
    void set_freq_factors(const torch::Tensor& factors);
    // cos/sin for positions pos [B, T] -> [B, 1, T, rotary_dim] (fp32).
    std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& pos) const;
    // Moves the cos/sin tables (built on the CPU) to `device`, where pos lives.
    void to(const torch::Device& device);
    // Applies rotary to x [B, heads, T, hd] (rotating the first rotary_dim dims).
    torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const;
    int64_t rotary_dim() const { return rotary_dim_; }

private:
    void rebuild();
    ModelConfig cfg_;
    int64_t rotary_dim_;
    torch::Tensor factors_;
    torch::Tensor cos_, sin_;  // [max_ctx, rotary_dim], on device_
    torch::Device device_ = torch::kCPU;
};

// Additive attention mask [B, 1, 1, T, S] (0 visible, -inf hidden) and the
// number of key slots S, for the visibility rule of CausalLmImpl::forward_hidden.
// When every sequence's key positions are nondecreasing (always so for the
// engine and trainer), the keys a query sees are a prefix of the slots, and
// n_visible [B, T] (int64) holds its length; otherwise n_visible is undefined.
struct AttentionMask {
    torch::Tensor mask;
    int64_t n_slots;
    torch::Tensor n_visible;
};
AttentionMask make_attention_mask(const torch::Tensor& pos, const KvCache* cache);
// The mask of queries first..first+n-1 only.
AttentionMask narrow_queries(const AttentionMask& m, int64_t first, int64_t n);

// Scaled dot-product attention over q [B, H, T, hd] and this call's k, v
// [B, Hkv, T, hd]; writes k, v to the cache (when given) and attends over it.
// Grouped-query: query heads h*R..h*R+R-1 share KV head h (R = H / Hkv).
// Returns [B, T, H*hd].
torch::Tensor attend(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, const AttentionMask& mask,
                     const torch::Tensor& pos, KvCache* cache, int64_t layer);

}  // namespace memskew
