// Loading a model and running it: teacher-forced scoring (METHOD M3) and
// batched greedy generation with a KV cache. The public API is LibTorch-free:
// inputs and outputs are plain vectors.
//
// A Model is read-only once loaded and may serve many Engines; an Engine owns
// per-run state and is not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memskew/gguf.h"
#include "memskew/model.h"
#include "memskew/tokenizer.h"

namespace memskew {

struct LoadParams {
    DType dtype = DType::kF32;  // compute dtype; weights are converted at load
    int n_threads = 0;          // 0: all cores
};

class Model {
public:
    // Loads a GGUF file, or a Hugging Face model folder (config.json +
    // model.safetensors or a sharded model.safetensors.index.json, with
    // tokenizer.json beside; `path` may also name the folder's config.json).
    // Weights are converted from F32/F16/BF16 at load. Throws IoError /
    // FormatError naming the file and, where it applies, the tensor or key.
    static std::shared_ptr<Model> load(const std::string& path, const LoadParams& params = {});
    // A randomly initialised Llama of the given shape (weights ~ N(0, init_std),
    // norms 1) with the given vocabulary; deterministic for a seed. Used by
    // benchmarks, tests and the demo.
    static std::shared_ptr<Model> random_llama(const ModelConfig& config, Vocab vocab, uint64_t seed,
                                               const LoadParams& params = {}, double init_std = 0.02);
    // Writes the model and its tokenizer as a GGUF file of the `llama`
    // architecture (q/k rows permuted to GGUF's interleaved rotary layout).
    // stored: F32, F16 or BF16.
    void save_gguf(const std::string& path, GgmlType stored = GgmlType::kF32) const;
    // Writes a Hugging Face folder transformers loads: config.json,
    // model.safetensors (stored: F32, F16 or BF16) and the tokenizer
    // (tokenizer.json copied when the model came with one; a GGUF vocabulary
    // is converted, giving the same ids). `folder` must not exist or be empty;
    // it is written under a temporary name and renamed into place.
    void save_hf(const std::string& folder, GgmlType stored = GgmlType::kF32) const;
    ~Model();

    const ModelConfig& config() const;
    const Tokenizer& tokenizer() const;
    DType dtype() const;
    const std::string& path() const;

    struct Impl;  // LibTorch internals: src/model/model-impl.h
    Impl& impl() const { return *impl_; }
    explicit Model(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

// Sets the number of intra-op threads (0: all cores). Called by Model::load.
void set_compute_threads(int n_threads);

// OpenMP threads that spin while waiting burn the cores other work needs: on a
// shared 2-core machine probing ran 7x slower. libgomp reads OMP_WAIT_POLICY
// only when it loads, so programs call this first thing in main(): when the
// variable is unset it sets it to PASSIVE and re-executes the program (once).
void ensure_passive_openmp(int argc, char** argv);

// Sampling transform for METHOD M4: temperature, then top-k, then top-p.
struct SamplingSpec {
    double temperature = 1.0;
    int32_t top_k = 0;     // 0: off
    double top_p = 1.0;    // 1: off
};

struct ScoreRequest {
    std::vector<int32_t> prompt;     // at least one token (e.g. BOS)
    std::vector<int32_t> reference;  // at least one token
};

// Per-reference-position statistics of one sample (struct of arrays, length L).
struct TokenScores {
    std::vector<int32_t> argmax;       // a_j
    std::vector<float> logprob;        // log q_j = log softmax(z_j)[r_j]
    std::vector<int32_t> rank;         // 1 + #tokens with a strictly larger logit
    std::vector<float> entropy;        // H_j in nats
    std::vector<float> top1_prob;      // max softmax(z_j)
    std::vector<float> mean_logp;      // E_{z~p}[log p(z)] = -H_j (for min-k%++)
    std::vector<float> var_logp;       // Var_{z~p}[log p(z)]
    std::vector<float> logprob_sampling;  // log p_j^T under ScoreParams::sampling; empty if unset
    int32_t n_pre = 0;                 // leading positions with argmax == reference
    size_t size() const { return argmax.size(); }
};

struct ScoreParams {
    int64_t chunk_rows = 256;             // rows of the output projection per chunk
    std::optional<SamplingSpec> sampling;  // also compute log p_j^T
};

enum class StopReason { kEos, kLength, kMismatch, kContext };
const char* stop_reason_name(StopReason r);

struct GenerateRequest {
    std::vector<int32_t> prompt;     // at least one token
    std::vector<int32_t> reference;  // used by stop_on_mismatch
    int32_t max_new_tokens = 64;
};

struct GenerateParams {
    bool stop_at_eos = true;
    bool stop_on_mismatch = false;  // stop at the first token that differs from the reference
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated tokens (the mismatching token included)
    StopReason reason = StopReason::kLength;
    int32_t n_pre(const std::vector<int32_t>& reference) const;
};

class Engine {
public:
    explicit Engine(std::shared_ptr<const Model> model);
    ~Engine();

    // Teacher-forced scoring of one batch. Throws InvalidInput for an empty
    // prompt/reference or a sample longer than the context.
    std::vector<TokenScores> score(const std::vector<ScoreRequest>& batch, const ScoreParams& params = {});
    // Batched greedy generation with a KV cache; per-sequence stop.
    std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& batch,
                                         const GenerateParams& params = {});
    // Logits of the last position of each sequence (fp32), for tests and tools.
    std::vector<std::vector<float>> last_logits(const std::vector<std::vector<int32_t>>& batch);

    const Model& model() const { return *model_; }

private:
    std::shared_ptr<const Model> model_;
};

// Groups samples into batches of similar length under a token budget
// (padded tokens = batch size x longest sample). Returns indices per batch;
// every index appears exactly once. Order: by length, longest first.
std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int64_t token_budget,
                                              int64_t max_batch_size);

// n_pre from argmax and reference (METHOD M3).
int32_t prefix_match_length(const std::vector<int32_t>& predicted, const std::vector<int32_t>& reference);

}  // namespace memskew
