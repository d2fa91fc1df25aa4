// Teacher-forced scoring and batched greedy generation.
//
// Shape legend: B batch, T tokens, D hidden, V vocabulary, N gathered rows,
// C rows in one output-projection chunk.
#include "memskew/engine.h"

#include <fmt/format.h>

#include <ATen/Parallel.h>
#ifndef _OPENMP
// LibTorch's at::parallel_for (an inline template) runs serially unless the
// calling file is compiled with OpenMP; CMakeLists.txt links OpenMP for this.
#error "build with OpenMP (-fopenmp): at::parallel_for would run on one thread"
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "memskew/error.h"
#include "memskew/ngram-guard.h"
#include "memskew/tokenizer.h"
#include "model/model-impl.h"
#include "util/bf16.h"
#include "util/row-kernels.h"

namespace memskew {

const char* stop_reason_name(StopReason r) {
    switch (r) {
        case StopReason::kEos: return "eos";
        case StopReason::kLength: return "length";
        case StopReason::kMismatch: return "mismatch";
        case StopReason::kContext: return "context";
        case StopReason::kGuard: return "guard";
    }
    return "?";
}

int32_t prefix_match_length(const std::vector<int32_t>& predicted, const std::vector<int32_t>& reference) {
    const size_t n = std::min(predicted.size(), reference.size());
    size_t k = 0;
    while (k < n && predicted[k] == reference[k]) ++k;
    return static_cast<int32_t>(k);
}

int32_t GenerateResult::n_pre(const std::vector<int32_t>& reference) const {
    return prefix_match_length(tokens, reference);
}

std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int64_t token_budget,
                                              int64_t max_batch_size) {
    if (token_budget <= 0 || max_batch_size <= 0)
        throw InvalidInput("batch planner: token budget and batch size must be positive");
    std::vector<size_t> order(lengths.size());
    std::iota(order.begin(), order.end(), 0);
    // Longest first: similar lengths end up together, and an out-of-memory
    // failure (if any) shows up on the first batch rather than the last.
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    std::vector<std::vector<size_t>> batches;
    std::vector<size_t> cur;
    int64_t cur_max = 0;
    for (size_t i : order) {
        const int64_t len = std::max<int64_t>(1, lengths[i]);
        const int64_t new_max = std::max(cur_max, len);
        if (!cur.empty() && (static_cast<int64_t>(cur.size() + 1) * new_max > token_budget ||
                             static_cast<int64_t>(cur.size()) >= max_batch_size)) {
            batches.push_back(std::move(cur));
            cur.clear();
            cur_max = 0;
        }
        cur.push_back(i);
        cur_max = std::max(cur_max, len);
    }
    if (!cur.empty()) batches.push_back(std::move(cur));
    return batches;
}

namespace {

void check_tokens(const std::vector<int32_t>& ids, int64_t n_vocab, const char* what, size_t sample) {
    for (int32_t id : ids) {
        if (id < 0 || id >= n_vocab)
            throw InvalidInput(fmt::format("sample {}: {} token id {} is outside the vocabulary [0, {})", sample,
                                           what, id, n_vocab));
    }
}

// Right-padded [B, T] ids with positions 0..T-1 (padding gets positions too;
// the attention mask keeps real tokens from seeing it), on the model's device.
struct PaddedBatch {
    torch::Tensor ids;  // [B, T] int64
    torch::Tensor pos;  // [B, T] int64
};

PaddedBatch pad_right(const std::vector<std::vector<int32_t>>& seqs, const torch::Device& device) {
    const int64_t B = static_cast<int64_t>(seqs.size());
    int64_t T = 1;
    for (const auto& s : seqs) T = std::max<int64_t>(T, static_cast<int64_t>(s.size()));
    auto ids = torch::zeros({B, T}, torch::kLong);  // filled on the CPU, then one copy
    auto acc = ids.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b)
        for (size_t t = 0; t < seqs[b].size(); ++t) acc[b][t] = seqs[b][t];
    auto pos = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(device))
                   .unsqueeze(0)
                   .expand({B, T})
                   .contiguous();
    return {ids.to(device), pos};
}

// An int64 index tensor on `device`.
torch::Tensor index_tensor(const std::vector<int64_t>& v, const torch::Device& device) {
    return torch::tensor(v, torch::kLong).to(device);
}

// Logits (or any result) where the row kernels and data_ptr can read them:
// contiguous on the CPU (a no-op for a CPU model).
torch::Tensor on_host(const torch::Tensor& t) { return t.to(torch::kCPU).contiguous(); }

// log p^T of each row's target under the sampling transform (the one rule,
// memskew/sampling.h), written at [offset, offset + n). logits: [n, V] fp32.
void sampling_rows(const torch::Tensor& logits, const int64_t* targets, int64_t offset, const SamplingParams& s,
                   std::vector<float>& out) {
    const int64_t n = logits.size(0), V = logits.size(1);
    const float* base = logits.data_ptr<float>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
            out[offset + i] = static_cast<float>(sampling_logprob(base + i * V, static_cast<size_t>(V), targets[i], s));
    });
}

// The per-token statistics of METHOD M3 for every row of logits [n, V] (fp32
// or bf16, contiguous) against its target, written at [offset, offset + n):
// argmax, log p(target), rank (1 + entries above the target's logit),
// entropy, top-1 probability and Var[log p]. Three vectorised passes per row instead of a
// dozen passes over the whole chunk (the row buffers stay in cache). With d = z - max and S = sum e^d,
// A = sum e^d d, B = sum e^d d^2: log p = d - log S, so E[log p] = A/S - log S,
// Var[log p] = Var[d] = B/S - (A/S)^2 and the top-1 probability is 1/S.
void row_stats(const torch::Tensor& logits, const int64_t* targets, int64_t offset, std::vector<int64_t>& argmax,
               std::vector<float>& logprob, std::vector<int64_t>& rank, std::vector<float>& entropy,
               std::vector<float>& top1, std::vector<float>& var) {
    const int64_t n = logits.size(0), V = logits.size(1);
    const bool bf16 = logits.scalar_type() == torch::kBFloat16;
    TORCH_CHECK(bf16 || logits.scalar_type() == torch::kFloat, "row_stats: logits must be fp32 or bf16");
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> d(V), e(V);
        for (int64_t r = begin; r < end; ++r) {
            const rows::RowSoftmax row =
                bf16 ? rows::softmax_row_bf16(reinterpret_cast<const uint16_t*>(logits.data_ptr<at::BFloat16>()) + r * V,
                                              V, targets[r], d.data(), e.data())
                     : rows::softmax_row_f32(logits.data_ptr<float>() + r * V, V, targets[r], d.data(), e.data());
            const auto& m = row.max;
            const auto& sums = row.sums;
            const float ref = row.target_logit;
            const double log_s = std::log(sums.s), mean_d = sums.a / sums.s;
            const int64_t k = offset + r;
            argmax[k] = m.argmax;
            logprob[k] = static_cast<float>(static_cast<double>(ref) - static_cast<double>(m.max) - log_s);
            rank[k] = m.n_greater + 1;
            entropy[k] = static_cast<float>(log_s - mean_d);
            top1[k] = static_cast<float>(1.0 / sums.s);
            var[k] = static_cast<float>(std::max(0.0, sums.b / sums.s - mean_d * mean_d));
        }
    });
}

// One generation step's choice for one row.
struct Pick {
    int32_t token = -1;     // -1: the guard blocks every token of the vocabulary
    float logprob = 0.0f;   // log softmax(z)[token]
    bool replaced = false;  // the argmax was blocked
};

// The greedy choice for every row of logits [B, V] (fp32 or bf16, contiguous):
// the argmax (the first index holding the maximum, as torch::argmax, so
// unguarded output is what it was), or, when the row's blocked list (sorted;
// `blocked` empty: no guard) holds the argmax, the highest logit not on it.
// The log-softmax of the choice comes from the same pass over the row, as
// row_stats computes it for score().
void pick_tokens(const torch::Tensor& logits, const std::vector<BlockedTokens>& blocked, std::vector<Pick>& out) {
    const int64_t B = logits.size(0), V = logits.size(1);
    const bool bf16 = logits.scalar_type() == torch::kBFloat16;
    TORCH_CHECK(bf16 || logits.scalar_type() == torch::kFloat, "pick_tokens: logits must be fp32 or bf16");
    const float* z32 = bf16 ? nullptr : logits.data_ptr<float>();
    const uint16_t* z16 = bf16 ? reinterpret_cast<const uint16_t*>(logits.data_ptr<at::BFloat16>()) : nullptr;
    out.assign(static_cast<size_t>(B), Pick{});
    // A few short rows (a small model's decode step) run inline: a parallel
    // region would cost more than they do.
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, V));
    at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
        std::vector<float> d(V), e(V);
        for (int64_t r = begin; r < end; ++r) {
            const rows::RowSoftmax row = bf16 ? rows::softmax_row_bf16(z16 + r * V, V, 0, d.data(), e.data())
                                              : rows::softmax_row_f32(z32 + r * V, V, 0, d.data(), e.data());
            Pick& p = out[static_cast<size_t>(r)];
            int64_t tok = row.max.argmax;
            if (!blocked.empty() && blocked[static_cast<size_t>(r)].contains(static_cast<int32_t>(tok))) {
                p.replaced = true;
                // d = z - max; walk the row and the sorted list together.
                const BlockedTokens& bl = blocked[static_cast<size_t>(r)];
                size_t j = 0;
                int64_t best = -1;
                for (int64_t i = 0; i < V; ++i) {
                    while (j < bl.size() && bl[j] < i) ++j;
                    if (j < bl.size() && bl[j] == i) continue;
                    if (best < 0 || d[i] > d[best]) best = i;
                }
                tok = best;
            }
            if (tok < 0) continue;
            const float z = bf16 ? bf16_to_float(z16[r * V + tok]) : z32[r * V + tok];
            p.token = static_cast<int32_t>(tok);
            p.logprob = static_cast<float>(static_cast<double>(z) - static_cast<double>(row.max.max) -
                                           std::log(row.sums.s));
        }
    });
}

}  // namespace

Engine::Engine(std::shared_ptr<const Model> model) : model_(std::move(model)) {}
Engine::~Engine() = default;

std::vector<TokenScores> Engine::score(const std::vector<ScoreRequest>& batch, const ScoreParams& params) {
    if (batch.empty()) return {};
    c10::InferenceMode guard;
    auto& net = *model_impl(*model_).net;
    const torch::Device device = net.device();
    const ModelConfig& cfg = model_->config();
    if (params.sampling) check_sampling_params(*params.sampling);
    // The identity transform's log p^T is the log-probability row_stats computes.
    const bool sampling_rows_needed = params.sampling && !is_identity(*params.sampling);
    // Input: prompt ‖ reference without its last token; position P-1+j predicts r_j.
    std::vector<std::vector<int32_t>> seqs;
    std::vector<int64_t> targets, row_owner;
    const int64_t B = static_cast<int64_t>(batch.size());
    int64_t T = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
        const auto& r = batch[b];
        if (r.prompt.empty())
            throw InvalidInput(fmt::format("sample {}: empty prompt", b), "start the prompt with BOS at least");
        if (r.reference.empty()) throw InvalidInput(fmt::format("sample {}: empty reference", b));
        check_tokens(r.prompt, cfg.n_vocab, "prompt", b);
        check_tokens(r.reference, cfg.n_vocab, "reference", b);
        const int64_t len = static_cast<int64_t>(r.prompt.size() + r.reference.size()) - 1;
        if (len > cfg.max_ctx) {
            throw InvalidInput(fmt::format("sample {}: prompt ({} tokens) + reference ({} tokens) exceed the "
                                           "model's context of {} tokens",
                                           b, r.prompt.size(), r.reference.size(), cfg.max_ctx),
                               "shorten the prompt or the reference");
        }
        T = std::max(T, len);
    }
    std::vector<int64_t> prompt_lens, reference_lens;
    for (size_t b = 0; b < batch.size(); ++b) {
        const auto& r = batch[b];
        std::vector<int32_t> s(r.prompt);
        s.insert(s.end(), r.reference.begin(), r.reference.end() - 1);
        seqs.push_back(std::move(s));
        prompt_lens.push_back(static_cast<int64_t>(r.prompt.size()));
        reference_lens.push_back(static_cast<int64_t>(r.reference.size()));
        for (int32_t id : r.reference) {
            targets.push_back(id);
            row_owner.push_back(static_cast<int64_t>(b));
        }
    }
    // Only positions from the first reference row on need hidden states: the
    // model may skip the last layer's work before it (forward_hidden_tail).
    const ReferenceRows ref_rows = reference_rows(prompt_lens, reference_lens, T);
    const int64_t Tk = ref_rows.kept;  // kept positions per sequence
    const std::vector<int64_t>& rows = ref_rows.rows;
    auto padded = pad_right(seqs, device);
    // Embeddings need every position's final hidden state; scores only those
    // from the first reference row on.
    const auto h_all = params.embeddings ? net.forward_hidden_tail(padded.ids, padded.pos, 0)  // [B, T, D]
                                         : torch::Tensor();
    auto h = params.embeddings ? h_all.narrow(1, ref_rows.first, Tk).contiguous()
                               : net.forward_hidden_tail(padded.ids, padded.pos, ref_rows.first);  // [B, Tk, D]
    auto h_flat = h.reshape({B * Tk, cfg.dim});                                                   // [B*Tk, D]
    const int64_t N = static_cast<int64_t>(rows.size());
    auto rows_t = index_tensor(rows, device);

    std::vector<int64_t> argmax_v(N), rank_v(N);
    std::vector<float> logprob_v(N), entropy_v(N), top1_v(N), var_v(N), samp_v(sampling_rows_needed ? N : 0);
    const int64_t C = std::max<int64_t>(1, params.chunk_rows);
    for (int64_t start = 0; start < N; start += C) {
        const int64_t n = std::min(C, N - start);
        auto logits = on_host(net.project(h_flat.index_select(0, rows_t.narrow(0, start, n))));  // [C, V]
        row_stats(logits, targets.data() + start, start, argmax_v, logprob_v, rank_v, entropy_v, top1_v, var_v);
        if (sampling_rows_needed)
            sampling_rows(logits.to(torch::kFloat).contiguous(), targets.data() + start, start, *params.sampling, samp_v);
    }

    std::vector<TokenScores> out(batch.size());
    size_t k = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
        TokenScores& s = out[b];
        const size_t L = batch[b].reference.size();
        for (size_t j = 0; j < L; ++j, ++k) {
            s.argmax.push_back(static_cast<int32_t>(argmax_v[k]));
            s.logprob.push_back(logprob_v[k]);
            s.rank.push_back(static_cast<int32_t>(rank_v[k]));
            s.entropy.push_back(entropy_v[k]);
            s.top1_prob.push_back(top1_v[k]);
            s.mean_logp.push_back(-entropy_v[k]);
            s.var_logp.push_back(var_v[k]);
            if (params.sampling) s.logprob_sampling.push_back(sampling_rows_needed ? samp_v[k] : logprob_v[k]);
        }
        s.n_pre = prefix_match_length(s.argmax, batch[b].reference);
    }
    if (params.embeddings) {
        // Means over the prompt positions and over every fed position as one
        // batched product: weights [B, 2, T] (1/n on the averaged positions)
        // times the hidden states [B, T, D], then unit length.
        auto w = torch::zeros({B, 2, T}, torch::kFloat);  // filled on the CPU
        auto wa = w.accessor<float, 3>();
        for (int64_t b = 0; b < B; ++b) {
            const int64_t P = prompt_lens[static_cast<size_t>(b)];
            const int64_t F = P + reference_lens[static_cast<size_t>(b)] - 1;
            for (int64_t t = 0; t < P; ++t) wa[b][0][t] = 1.0f / static_cast<float>(P);
            for (int64_t t = 0; t < F; ++t) wa[b][1][t] = 1.0f / static_cast<float>(F);
        }
        auto e = torch::bmm(w.to(device), h_all.to(torch::kFloat));       // [B, 2, D]
        e = on_host(e / e.norm(2, -1, true).clamp_min(1e-30));            // [B, 2, D]
        const float* ep = e.data_ptr<float>();
        const int64_t D = e.size(2);
        for (int64_t b = 0; b < B; ++b) {
            out[static_cast<size_t>(b)].prompt_embedding.assign(ep + (2 * b) * D, ep + (2 * b + 1) * D);
            out[static_cast<size_t>(b)].full_embedding.assign(ep + (2 * b + 1) * D, ep + (2 * b + 2) * D);
        }
    }
    return out;
}

std::vector<std::vector<float>> Engine::last_logits(const std::vector<std::vector<int32_t>>& batch) {
    if (batch.empty()) return {};
    c10::InferenceMode guard;
    auto& net = *model_impl(*model_).net;
    const torch::Device device = net.device();
    const ModelConfig& cfg = model_->config();
    std::vector<int64_t> rows;
    for (size_t b = 0; b < batch.size(); ++b) {
        if (batch[b].empty()) throw InvalidInput(fmt::format("sequence {} is empty", b));
        check_tokens(batch[b], cfg.n_vocab, "input", b);
        if (static_cast<int64_t>(batch[b].size()) > cfg.max_ctx)
            throw InvalidInput(fmt::format("sequence {} ({} tokens) exceeds the model's context of {} tokens", b,
                                           batch[b].size(), cfg.max_ctx));
    }
    auto padded = pad_right(batch, device);
    const int64_t B = padded.ids.size(0), T = padded.ids.size(1);
    for (size_t b = 0; b < batch.size(); ++b) rows.push_back(static_cast<int64_t>(b) * T + batch[b].size() - 1);
    auto h = net.forward_hidden(padded.ids, padded.pos).reshape({B * T, cfg.dim});
    auto logits = on_host(net.project(h.index_select(0, index_tensor(rows, device))).to(torch::kFloat));  // [B, V]
    std::vector<std::vector<float>> out;
    for (int64_t b = 0; b < B; ++b) {
        const float* p = logits[b].data_ptr<float>();
        out.emplace_back(p, p + cfg.n_vocab);
    }
    return out;
}

std::vector<GenerateResult> Engine::generate(const std::vector<GenerateRequest>& batch, const GenerateParams& params) {
    std::vector<GenerateResult> results(batch.size());
    if (batch.empty()) return results;
    c10::InferenceMode guard;
    auto& net = *model_impl(*model_).net;
    const torch::Device device = net.device();
    const ModelConfig& cfg = model_->config();
    const int32_t eos = model_->tokenizer().eos();
    const NgramGuard* ngram_guard = params.guard;
    if (ngram_guard) {
        // Ids only mean the same tokens under the same tokenizer.
        if (tokenizer_fingerprint_.empty()) tokenizer_fingerprint_ = tokenizer_fingerprint(model_->tokenizer());
        if (ngram_guard->tokenizer_fingerprint() != tokenizer_fingerprint_) {
            throw InvalidInput(
                fmt::format("the n-gram guard was built with tokenizer {} but the model's tokenizer is {}",
                            ngram_guard->tokenizer_fingerprint().empty() ? std::string("(none recorded)")
                                                                         : ngram_guard->tokenizer_fingerprint(),
                            tokenizer_fingerprint_),
                "build the guard with the model's own tokenizer (NgramGuardParams::tokenizer_fingerprint = "
                "tokenizer_fingerprint(model.tokenizer()))");
        }
    }
    int64_t capacity = 1;
    std::vector<int64_t> limit(batch.size());  // max new tokens per sequence
    for (size_t b = 0; b < batch.size(); ++b) {
        const auto& r = batch[b];
        if (r.prompt.empty())
            throw InvalidInput(fmt::format("sample {}: empty prompt", b), "start the prompt with BOS at least");
        check_tokens(r.prompt, cfg.n_vocab, "prompt", b);
        if (static_cast<int64_t>(r.prompt.size()) > cfg.max_ctx) {
            throw InvalidInput(fmt::format("sample {}: the prompt ({} tokens) exceeds the model's context of {} tokens",
                                           b, r.prompt.size(), cfg.max_ctx));
        }
        limit[b] = std::max<int64_t>(0, r.max_new_tokens);
        if (params.stop_on_mismatch) limit[b] = std::min<int64_t>(limit[b], r.reference.size());
        // The last generated token is never fed back, so the cache needs P + limit - 1 slots.
        capacity = std::max<int64_t>(capacity, std::min<int64_t>(cfg.max_ctx, r.prompt.size() + limit[b]));
    }
    std::vector<size_t> active;  // original indices of the rows still generating
    std::vector<std::vector<int32_t>> prompts;
    for (size_t b = 0; b < batch.size(); ++b) {
        if (limit[b] == 0) {
            results[b].reason = StopReason::kLength;
            continue;
        }
        active.push_back(b);
        prompts.push_back(batch[b].prompt);
    }
    if (active.empty()) return results;
    auto cache = KvCache::allocate(cfg, static_cast<int64_t>(active.size()), capacity, net.dtype(), device);
    // Prefill: all prompts at once, right-padded; take each one's last real position.
    auto padded = pad_right(prompts, device);
    const int64_t B0 = padded.ids.size(0), T0 = padded.ids.size(1);
    auto h = net.forward_hidden(padded.ids, padded.pos, &cache).reshape({B0 * T0, cfg.dim});
    std::vector<int64_t> last_rows, cur_pos;  // cur_pos: position of the next token to feed
    for (size_t i = 0; i < active.size(); ++i) {
        last_rows.push_back(static_cast<int64_t>(i) * T0 + static_cast<int64_t>(prompts[i].size()) - 1);
        cur_pos.push_back(static_cast<int64_t>(prompts[i].size()));
    }
    auto logits = on_host(net.project(h.index_select(0, index_tensor(last_rows, device))));  // [B, V]
    // The guard's context per sample: prompt ‖ generated so far.
    std::vector<std::vector<int32_t>> history;
    if (ngram_guard)
        for (size_t b = 0; b < batch.size(); ++b) history.push_back(batch[b].prompt);
    std::vector<BlockedTokens> blocked;
    std::vector<Pick> picks;
    while (!active.empty()) {
        blocked.clear();
        if (ngram_guard)
            for (size_t b : active) blocked.push_back(ngram_guard->blocked_after(history[b]));
        pick_tokens(logits, blocked, picks);
        std::vector<int64_t> keep;  // rows (in the current batch) that continue
        std::vector<int64_t> next_v(active.size());
        for (size_t i = 0; i < active.size(); ++i) {
            const size_t b = active[i];
            auto& res = results[b];
            const Pick& pick = picks[i];
            if (pick.replaced) ++res.n_blocked;
            if (pick.token < 0) {
                res.reason = StopReason::kGuard;
                continue;
            }
            const int32_t tok = pick.token;
            next_v[i] = tok;
            res.tokens.push_back(tok);
            res.logprobs.push_back(pick.logprob);
            if (ngram_guard) history[b].push_back(tok);
            const size_t n = res.tokens.size();
            bool stop = false;
            if (params.stop_on_mismatch && tok != batch[b].reference[n - 1]) {
                res.reason = StopReason::kMismatch;
                stop = true;
            } else if (params.stop_at_eos && tok == eos) {
                res.reason = StopReason::kEos;
                stop = true;
            } else if (static_cast<int64_t>(n) >= limit[b]) {
                res.reason = StopReason::kLength;
                stop = true;
            } else if (cur_pos[i] >= cfg.max_ctx) {
                res.reason = StopReason::kContext;
                stop = true;
            }
            if (!stop) keep.push_back(static_cast<int64_t>(i));
        }
        if (keep.empty()) break;
        std::vector<size_t> new_active;
        std::vector<int64_t> new_pos;
        std::vector<int64_t> feed;
        for (int64_t i : keep) {
            new_active.push_back(active[i]);
            new_pos.push_back(cur_pos[i]);
            feed.push_back(next_v[i]);
        }
        if (keep.size() != active.size()) cache.select_rows(index_tensor(keep, device));
        active = std::move(new_active);
        cur_pos = std::move(new_pos);
        const int64_t B = static_cast<int64_t>(active.size());
        auto ids = index_tensor(feed, device).view({B, 1});
        auto pos = index_tensor(cur_pos, device).view({B, 1});
        auto hs = net.forward_hidden(ids, pos, &cache).view({B, cfg.dim});
        logits = on_host(net.project(hs));  // [B, V]
        for (auto& p : cur_pos) ++p;
    }
    return results;
}

}  // namespace memskew
