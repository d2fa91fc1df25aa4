// Causal language models as LibTorch modules whose parameters carry the
// Hugging Face checkpoint names, so weights load 1:1 and LoRA adapters in PEFT
// format address them directly. Architecture differences live only in
// src/model/arch/<name>.cpp, built from the shared helpers in layers.h.
//
// Shape legend:
//   B batch, T tokens in this call, S key slots (cache length), D hidden size,
//   H query heads, Hkv key/value heads, hd head dim, F FFN size, V vocabulary,
//   N gathered rows.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "memskew/model.h"

namespace memskew {

// Per-run key/value cache. Slot s of sequence b holds the keys/values of the
// token at position s of that sequence, so positions double as slot indices.
struct KvCache {
    std::vector<torch::Tensor> k;  // per layer [B, Hkv, S_cap, hd]
    std::vector<torch::Tensor> v;  // per layer [B, Hkv, S_cap, hd]
    int64_t capacity = 0;

    static KvCache allocate(const ModelConfig& cfg, int64_t batch, int64_t capacity, torch::Dtype dtype,
                            torch::Device device = torch::kCPU);
    // Keeps only the given batch rows (after some sequences finished).
    void select_rows(const torch::Tensor& rows);
};

class CausalLmImpl : public torch::nn::Module {
public:
    explicit CausalLmImpl(const ModelConfig& cfg) : cfg_(cfg) {}
    ~CausalLmImpl() override = default;

    // ids [B, T] int64, pos [B, T] int64 (absolute positions). With a cache,
    // keys/values are written at slots pos and attention spans the cache;
    // without one, attention spans this call's tokens. Key slot s is visible
    // to query (b, t) iff key_pos(b, s) <= pos(b, t): causal, and padding
    // placed after the real tokens is never seen by them.
    // Returns the final-normed hidden states [B, T, D].
    virtual torch::Tensor forward_hidden(const torch::Tensor& ids, const torch::Tensor& pos,
                                         KvCache* cache = nullptr) = 0;
    // As forward_hidden without a cache, when only the hidden states of
    // positions first..T-1 are needed: returns [B, T - first, D]. An
    // architecture may skip the last layer's work for the other positions
    // (their keys and values are still computed: later queries attend to them).
    virtual torch::Tensor forward_hidden_tail(const torch::Tensor& ids, const torch::Tensor& pos, int64_t first) {
        return forward_hidden(ids, pos).narrow(1, first, ids.size(1) - first);
    }
    // Output projection of gathered rows: h [N, D] -> logits [N, V] (compute dtype).
    virtual torch::Tensor project(const torch::Tensor& h) = 0;

    // Per-frequency rotary divisors (GGUF rope_freqs.weight); rotary models only.
    virtual void set_rope_freq_factors(const torch::Tensor& factors);
    // Moves the parameters, and any tables an architecture keeps outside
    // them (rotary cos/sin), to `device`. Inputs must then be on it too.
    virtual void to_device(const torch::Device& device) { to(device); }

    const ModelConfig& config() const { return cfg_; }
    torch::Dtype dtype() const { return parameters().front().scalar_type(); }
    // Where the weights are: every tensor fed to the model goes there.
    torch::Device device() const { return parameters().front().device(); }

protected:
    ModelConfig cfg_;
};

// Teacher forcing over a right-padded batch: sequence b is prompt_b followed
// by reference_b without its last token, and reference token j is predicted
// at position |prompt_b| - 1 + j. `first` is the earliest such position in
// the batch and `kept` = T - first the positions per sequence that
// forward_hidden_tail(ids, pos, first) returns; `rows` are the rows of its
// output flattened to [B * kept, D] that predict the reference tokens, in
// batch and then reference order. Scoring and the training loss share it.
struct ReferenceRows {
    int64_t first = 0, kept = 0;
    std::vector<int64_t> rows;
};
// prompt_lens[b] >= 1; T >= every prompt_lens[b] + reference_lens[b] - 1.
ReferenceRows reference_rows(const std::vector<int64_t>& prompt_lens, const std::vector<int64_t>& reference_lens,
                             int64_t T);

// Builds the module for cfg.arch (a family of model/arch/) with
// uninitialised weights; throws FormatError for an unknown architecture.
std::shared_ptr<CausalLmImpl> make_causal_lm(const ModelConfig& cfg);

}  // namespace memskew
