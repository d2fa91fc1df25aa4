// The decoding guard (MemFree decoding, memskew/ngram-guard.h): what building
// it from a training set costs, and what it costs greedy generation.
//
//   bench-guard [SHARED_DIR]      (default: ../shared next to the source tree)
//
// Guard: the first 10,000 medquad samples read and encoded exactly as
// `memskew train` would (build_training_guard: plain template, the model's
// context, EOS after each reference), n = 10, with the stories260K tokenizer.
// Generation: stories260K (fp32), 64 medquad prompts in batches of 16, 128 new
// tokens each (EOS ignored, so every pass generates the same count); the same
// requests unguarded and guarded, alternating batch by batch, median of 5
// timed passes each after one warm-up. Target: guarded >= 90% of unguarded tokens/s.
//
// Two guards: the medquad one (stories260K never saw medquad, so it blocks
// little: this is the lookup's overhead), and one that also holds the model's
// own unguarded continuations (every unguarded step would complete one of
// its n-grams: the cost when the guard is busy).
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bench-common.h"
#include "memskew/engine.h"
#include "memskew/ngram-guard.h"
#include "memskew/train.h"

using namespace memskew;
using bench::Clock;
using bench::seconds_since;
namespace fs = std::filesystem;

namespace {

constexpr size_t kSamples = 10000, kPrompts = 64, kBatch = 16;
constexpr int kN = 10, kNewTokens = 128, kRepeats = 5;
constexpr double kTargetRatio = 0.90;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void print_load() {
    std::printf("load average: ");
    std::fflush(stdout);
    std::system("cat /proc/loadavg");
}

struct Pass {
    size_t tokens = 0;
    int64_t blocked = 0;
    double logprob_sum = 0;
    double seconds = 0;
};

void run_batch(Engine& engine, const std::vector<GenerateRequest>& batch, const NgramGuard* guard, Pass& pass,
               std::vector<std::vector<int32_t>>* outputs) {
    GenerateParams p;
    p.stop_at_eos = false;
    p.guard = guard;
    const auto t0 = Clock::now();
    const auto results = engine.generate(batch, p);
    pass.seconds += seconds_since(t0);
    for (const GenerateResult& r : results) {
        pass.tokens += r.tokens.size();
        pass.blocked += r.n_blocked;
        for (float v : r.logprobs) pass.logprob_sum += v;
        if (outputs) outputs->push_back(r.tokens);
    }
}

std::vector<std::vector<GenerateRequest>> batches_of(const std::vector<GenerateRequest>& reqs) {
    std::vector<std::vector<GenerateRequest>> out;
    for (size_t start = 0; start < reqs.size(); start += kBatch)
        out.emplace_back(reqs.begin() + start, reqs.begin() + std::min(reqs.size(), start + kBatch));
    return out;
}

void print_guard(const char* label, const NgramGuard& g, double total_s, const char* what) {
    std::printf("%s: n = %d, %zu sequences, %zu tokens -> %zu contexts, %zu n-grams\n", label, g.n(), g.n_sequences(),
                g.n_source_tokens(), g.n_contexts(), g.n_ngrams());
    std::printf("  build %.3f s (%s), map alone %.3f s; memory %.1f MiB (%.1f bytes/context)\n", total_s, what,
                g.build_seconds(), static_cast<double>(g.memory_bytes()) / (1024.0 * 1024.0),
                static_cast<double>(g.memory_bytes()) / static_cast<double>(std::max<size_t>(1, g.n_contexts())));
}

// Unguarded vs guarded on the same requests, alternating batch by batch (and
// which goes first), so the load of a shared machine hits both alike.
void compare(const char* label, Engine& engine, const std::vector<GenerateRequest>& reqs, const NgramGuard& guard) {
    const auto batches = batches_of(reqs);
    std::vector<double> t_plain, t_guard;
    Pass plain, guarded;
    for (int i = -1; i < kRepeats; ++i) {  // i = -1: warm-up
        plain = Pass{};
        guarded = Pass{};
        for (size_t b = 0; b < batches.size(); ++b) {
            if ((b + static_cast<size_t>(i + 1)) % 2 == 0) {
                run_batch(engine, batches[b], nullptr, plain, nullptr);
                run_batch(engine, batches[b], &guard, guarded, nullptr);
            } else {
                run_batch(engine, batches[b], &guard, guarded, nullptr);
                run_batch(engine, batches[b], nullptr, plain, nullptr);
            }
        }
        if (i < 0) continue;
        t_plain.push_back(plain.seconds);
        t_guard.push_back(guarded.seconds);
    }
    const double tps_plain = static_cast<double>(plain.tokens) / median(t_plain);
    const double tps_guard = static_cast<double>(guarded.tokens) / median(t_guard);
    const double ratio = tps_guard / tps_plain;
    std::printf("%s\n", label);
    std::printf("  unguarded %8.0f tokens/s  (%zu tokens, median %.3f s; mean log-prob %.4f)\n", tps_plain,
                plain.tokens, median(t_plain), plain.logprob_sum / static_cast<double>(plain.tokens));
    std::printf("  guarded   %8.0f tokens/s  (%zu tokens, median %.3f s; mean log-prob %.4f; blocked %lld steps, "
                "%.1f%%)\n",
                tps_guard, guarded.tokens, median(t_guard), guarded.logprob_sum / static_cast<double>(guarded.tokens),
                static_cast<long long>(guarded.blocked),
                100.0 * static_cast<double>(guarded.blocked) / static_cast<double>(guarded.tokens));
    std::printf("  ratio guarded/unguarded %.3f (target >= %.2f) %s\n", ratio, kTargetRatio,
                ratio >= kTargetRatio ? "PASS" : "MISS");
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    ensure_passive_openmp(argc, argv);
    const std::string shared = argc > 1 ? argv[1] : std::string(MEMSKEW_SOURCE_DIR) + "/../shared";
    const std::string data = shared + "/data/medquad.jsonl";
    const std::string stories = shared + "/models/stories260K/stories260K.gguf";
    for (const auto& f : {data, stories}) {
        if (!fs::exists(f)) {
            std::fprintf(stderr, "bench-guard: missing %s (pass the shared folder as the first argument)\n", f.c_str());
            return 2;
        }
    }
    auto model = Model::load(stories, {DType::kF32, 0});
    std::printf("bench-guard: medquad.jsonl (first %zu samples, plain template), stories260K f32, threads %d\n",
                kSamples, at::get_num_threads());
    print_load();

    const Tokenizer& tok = model->tokenizer();
    const int64_t ctx = model->config().max_ctx;
    TrainParams tp;
    tp.data_path = data;
    tp.data.limit = kSamples;
    TrainingGuardParams gp;
    gp.n = kN;
    auto t0 = Clock::now();
    const NgramGuard guard = build_training_guard(tp, tok, ctx, gp);
    print_guard("guard (medquad references + EOS)", guard, seconds_since(t0), "read + encode + map");

    // Prompts: the first kPrompts training prompts, as training encoded them.
    TrainParams prompts_tp = tp;
    prompts_tp.data.limit = kPrompts;
    const EncodedDataset enc = encode_training_set(prompts_tp, tok, ctx);
    std::vector<GenerateRequest> reqs;
    for (const EncodedSample& s : enc.items) reqs.push_back({s.prompt, {}, kNewTokens});
    std::printf("generation: %zu prompts (%zu..%zu tokens), batches of %zu, %d new tokens each, median of %d\n",
                reqs.size(), std::min_element(enc.items.begin(), enc.items.end(), [](auto& a, auto& b) {
                    return a.prompt.size() < b.prompt.size();
                })->prompt.size(),
                std::max_element(enc.items.begin(), enc.items.end(), [](auto& a, auto& b) {
                    return a.prompt.size() < b.prompt.size();
                })->prompt.size(),
                kBatch, kNewTokens, kRepeats);

    Engine engine(model);
    compare("medquad guard (the lookup's overhead)", engine, reqs, guard);

    // A busy guard: medquad plus the model's own continuations of these prompts.
    std::vector<std::vector<int32_t>> own;
    Pass unused;
    for (const auto& batch : batches_of(reqs)) run_batch(engine, batch, nullptr, unused, &own);
    const EncodedDataset all = encode_training_set(tp, tok, ctx);
    std::vector<std::vector<int32_t>> seqs;
    for (const EncodedSample& s : all.items) {
        std::vector<int32_t> r = s.reference;
        if (s.eos) r.push_back(tok.eos());
        seqs.push_back(std::move(r));
    }
    for (size_t i = 0; i < reqs.size(); ++i) {
        std::vector<int32_t> s = reqs[i].prompt;
        s.insert(s.end(), own[i].begin(), own[i].end());
        seqs.push_back(std::move(s));
    }
    NgramGuardParams np;
    np.tokenizer_fingerprint = tokenizer_fingerprint(tok);
    np.max_context = ctx;
    t0 = Clock::now();
    const NgramGuard busy = NgramGuard::build(seqs, kN, np);
    print_guard("busy guard (medquad + the model's own continuations)", busy, seconds_since(t0), "map, ids given");
    compare("busy guard (blocks the model's own greedy output)", engine, reqs, busy);

    print_load();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::printf("peak memory %.0f MB\n", ru.ru_maxrss / 1024.0);
    return 0;
}
