// Running a loaded model (memskew/model.h): teacher-forced scoring (METHOD M3)
// and batched greedy generation with a KV cache. The public API is LibTorch-free:
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

#include "memskew/model.h"
#include "memskew/sampling.h"
#include "memskew/tokenizer.h"

namespace memskew {

class NgramGuard;  // memskew/ngram-guard.h

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
    // ScoreParams::embeddings (METHOD M10): the mean of the final-normed
    // hidden states over the prompt's positions, and over every position fed
    // (prompt and reference but its last token), each L2-normalised; [D].
    std::vector<float> prompt_embedding, full_embedding;
    size_t size() const { return argmax.size(); }
};

struct ScoreParams {
    int64_t chunk_rows = 256;             // rows of the output projection per chunk
    std::optional<SamplingParams> sampling;  // also compute log p_j^T (memskew/sampling.h)
    // Also the sample embeddings, from the same pass. The last layer then runs
    // at every position instead of from the first reference row on.
    bool embeddings = false;
};

// kGuard: every token of the vocabulary would complete a training n-gram (GenerateParams::guard).
enum class StopReason { kEos, kLength, kMismatch, kContext, kGuard };
const char* stop_reason_name(StopReason r);

struct GenerateRequest {
    std::vector<int32_t> prompt;     // at least one token
    std::vector<int32_t> reference;  // used by stop_on_mismatch
    int32_t max_new_tokens = 64;
};

struct GenerateParams {
    bool stop_at_eos = true;
    bool stop_on_mismatch = false;  // stop at the first token that differs from the reference
    // MemFree decoding (memskew/ngram-guard.h): at each step, a token that
    // would complete one of the guard's n-grams after the last n-1 tokens of
    // prompt ‖ generated is never emitted; the highest-logit token it does not
    // block is (lowest id on a tie, as argmax). Not owned; must outlive the
    // call. Its tokenizer fingerprint must be the model's (else InvalidInput).
    const NgramGuard* guard = nullptr;
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated tokens (the mismatching token included)
    // log softmax(z)[token] of each emitted token under the model at its step
    // (T = 1), the guarded choice included: the guard's cost in likelihood.
    std::vector<float> logprobs;
    int32_t n_blocked = 0;  // steps where the guard replaced the argmax
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
    std::string tokenizer_fingerprint_;  // of the model's tokenizer, once a guard asks
};

// Groups samples into batches of similar length under a token budget
// (padded tokens = batch size x longest sample). Returns indices per batch;
// every index appears exactly once. Order: by length, longest first.
std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int64_t token_budget,
                                              int64_t max_batch_size);

// n_pre from argmax and reference (METHOD M3).
int32_t prefix_match_length(const std::vector<int32_t>& predicted, const std::vector<int32_t>& reference);

}  // namespace memskew
