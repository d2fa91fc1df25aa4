// Training throughput of `memskew train` (src/train/trainer.cpp): LoRA and
// full fine-tuning, fp32 and bf16, on the ~134M random Llama of bench-score
// and on stories260K, with bf16 forward-only scoring (Engine::score) of the
// same batch measured in the same run as the yardstick.
//
//   bench-train [--steps N] [--threads N] [--skip-stories] [--trace FILE] [--goldfish-only [--reps N]]
//
// --goldfish-only: only Goldfish (K = 4, H = 13) against standard training,
// bf16 LoRA on the 134M model, the two alternated --reps times (default 3) in
// one run; the medians of their tokens/s are compared.
//
// --trace FILE: only the bf16 LoRA run of the 134M model, with its operator
// timeline written to FILE (LibTorch's legacy profiler, Chrome trace JSON).
//
// Data: a synthetic JSONL in a temp folder, 16 x --steps samples (default 64),
// every sample the same text (distinct ids) so every step has the same tokens:
// a 128-token prompt (BOS included) and a 64-token reference (byte vocabulary;
// stories260K's tokenizer gives what it gives, printed). No EOS is appended, so
// a training micro-batch is exactly the scoring batch: 16 x (prompt + reference - 1)
// input positions, loss / statistics on the 16 x reference rows.
//
// Conventions:
//   tokens/s = 16 x (prompt + reference) tokens per step / seconds per step, for
//              training and scoring alike (bench-score's convention).
//   training: one epoch, batch 16, grad_accum 1, AdamW, clipping at 1.0; LoRA
//              with the CLI defaults (r 8, alpha 16, dropout 0.05, q/k/v/o_proj).
//              Step 1 is a warm-up; the time is that of steps 2..N, taken from
//              the trainer's progress callback (called after each optimizer
//              step, before the end-of-epoch checkpoint, which is not timed).
//   scoring:  Engine::score of the 16 requests, warm-up + median of 3.
//   goldfish: LoRA training with --goldfish-k 4 (--goldfish-h 13) of the same
//              data, tokens/s counted the same way (every token fed, dropped
//              or not). Every sample is the same text, so every sample drops
//              the same positions (about a quarter of the 52 past the first 12).
//   target:   bf16 LoRA training >= 40% of bf16 scoring tokens/s (134M model);
//             Goldfish training >= 97% of standard training's tokens/s.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"
#include "model/model-impl.h"
#include "bench-common.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <unistd.h>

using namespace memskew;
using bench::Clock;
using bench::seconds_since;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kBatch = 16, kPrompt = 128, kRef = 64, kVocab = bench::kLlama134MVocab;
constexpr double kTarget = 0.40, kGoldfishTarget = 0.97;
constexpr int64_t kGoldfishK = 4;

std::string loadavg() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a.empty() ? "n/a" : a + " " + b + " " + c;
}

// Text of `n` bytes from a word list (byte vocabulary: n tokens).
std::string text_of(size_t n, size_t offset) {
    static const char* words[] = {"the", "patient", "reported", "mild", "pain", "after", "a", "long", "walk",
                                  "and", "was", "given", "rest", "with", "water", "daily"};
    std::string s;
    for (size_t i = offset; s.size() < n; ++i) s += std::string(words[i % 16]) + " ";
    s.resize(n);
    return s;
}

// Identical samples with distinct ids: 126 bytes of question (+ BOS and the template's newline) and 64 of reference.
std::string write_data(const std::string& dir, int64_t n) {
    const std::string path = dir + "/synthetic.jsonl";
    std::ofstream f(path);
    // The plain template renders a question as "question\n": BOS + 126 bytes + newline = 128 tokens.
    const std::string q = text_of(kPrompt - 2, 0), a = text_of(kRef, 5);
    for (int64_t i = 0; i < n; ++i) f << fmt::format(R"({{"id": "{}", "question": "{}", "answer": "{}"}})", i, q, a) << "\n";
    return path;
}

// The batch as the trainer tokenizes it (append_eos off).
std::vector<ScoreRequest> batch_of(const Model& m, const std::string& data) {
    const Dataset ds = load_dataset(data);
    std::vector<ScoreRequest> out;
    for (int64_t i = 0; i < kBatch; ++i) {
        const auto& s = ds.samples.at(static_cast<size_t>(i));
        out.push_back({m.tokenizer().encode(s.prompt, true), m.tokenizer().encode(s.reference, false)});
    }
    return out;
}

int64_t tokens_of(const std::vector<ScoreRequest>& b) {
    int64_t n = 0;
    for (const auto& r : b) n += static_cast<int64_t>(r.prompt.size() + r.reference.size());
    return n;
}

struct TrainResult {
    double tokens_per_s = 0, step_s = 0, first_step_s = 0;
    int64_t trainable = 0;
};

TrainResult train_rate(const std::function<std::shared_ptr<Model>()>& make, TrainMode mode, const std::string& data,
                       const std::string& dir, int64_t tokens_per_step, int64_t goldfish_k = 0) {
    auto model = make();
    TrainParams p;
    p.data_path = data;
    p.append_eos = false;
    p.mode = mode;
    p.lora.r = 8;
    p.lora.lora_alpha = 16;
    p.lora.lora_dropout = 0.05;
    p.lora.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
    p.epochs = 1;
    p.batch_size = kBatch;
    p.lr = mode == TrainMode::kLora ? 2e-4 : 2e-5;
    p.goldfish_k = goldfish_k;
    p.out_dir = dir + "/out";
    fs::remove_all(p.out_dir);
    std::vector<double> at;  // time of each progress call
    const auto t0 = Clock::now();
    train_model(*model, p, [&](const TrainProgress&) { at.push_back(seconds_since(t0)); });
    TrainResult r;
    for (const auto& prm : model_impl(*model).net->parameters())
        if (mode == TrainMode::kFull || prm.requires_grad()) r.trainable += prm.numel();
    if (at.size() >= 2) {
        r.first_step_s = at[0];
        r.step_s = (at.back() - at[0]) / static_cast<double>(at.size() - 1);
        r.tokens_per_s = tokens_per_step / r.step_s;
    }
    fs::remove_all(p.out_dir);
    return r;
}

double score_rate(Model& m, const std::vector<ScoreRequest>& batch) {
    Engine e(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &m));
    e.score(batch);
    std::vector<double> t;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        e.score(batch);
        t.push_back(seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    return tokens_of(batch) / t[1];
}

}  // namespace

int main(int argc, char** argv) {
    memskew::ensure_passive_openmp(argc, argv);
    int64_t steps = 4;
    int n_threads = 0;
    bool stories = true, goldfish_only = false;
    int reps = 3;
    std::string trace;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--steps" && i + 1 < argc) steps = std::max<int64_t>(2, std::stoll(argv[++i]));
        else if (a == "--threads" && i + 1 < argc) n_threads = std::stoi(argv[++i]);
        else if (a == "--skip-stories") stories = false;
        else if (a == "--trace" && i + 1 < argc) trace = argv[++i];
        else if (a == "--goldfish-only") goldfish_only = true;
        else if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::stoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: bench-train [--steps N] [--threads N] [--skip-stories] [--trace FILE] "
                                 "[--goldfish-only [--reps N]]\n");
            return 2;
        }
    }
    set_compute_threads(n_threads);
    const std::string load_start = loadavg();
    const std::string dir = (fs::temp_directory_path() / fmt::format("bench-train-{}", ::getpid())).string();
    fs::create_directories(dir);
    const std::string data = write_data(dir, kBatch * steps);
    std::printf("bench-train: %lld steps of %lld samples (step 1 = warm-up), threads %d\n",
                static_cast<long long>(steps), static_cast<long long>(kBatch), at::get_num_threads());
    std::printf("load average at start: %s  (a shared, noisy machine: other jobs may run; compare within one run)\n\n",
                load_start.c_str());

    struct Row {
        std::string model, dtype, mode;
        TrainResult r;
        double score = 0;
    };
    if (!trace.empty()) {
        const int64_t tokens = kBatch * (kPrompt + kRef);
        TrainResult r;
        {
            torch::autograd::profiler::RecordProfile profile(trace);
            r = train_rate([] { return Model::random_llama(bench::llama_134m_config(), bench::llama_134m_vocab(), 42, LoadParams{DType::kBF16, 0}); },
                           TrainMode::kLora, data, dir, tokens);
        }
        std::printf("bf16 LoRA (134M): %.3f s/step, %.0f tokens/s; operator trace: %s\n", r.step_s, r.tokens_per_s,
                    trace.c_str());
        fs::remove_all(dir);
        return 0;
    }
    if (goldfish_only) {
        auto make = [] { return Model::random_llama(bench::llama_134m_config(), bench::llama_134m_vocab(), 42, LoadParams{DType::kBF16, 0}); };
        const int64_t tokens = tokens_of(batch_of(*make(), data));
        std::vector<double> standard, goldfish;
        for (int r = 0; r < reps; ++r) {
            standard.push_back(train_rate(make, TrainMode::kLora, data, dir, tokens).tokens_per_s);
            goldfish.push_back(train_rate(make, TrainMode::kLora, data, dir, tokens, kGoldfishK).tokens_per_s);
            std::printf("rep %d: standard %.0f tokens/s, goldfish K=%lld %.0f tokens/s (%.3f)\n", r + 1, standard.back(),
                        static_cast<long long>(kGoldfishK), goldfish.back(), goldfish.back() / standard.back());
            std::fflush(stdout);
        }
        std::sort(standard.begin(), standard.end());
        std::sort(goldfish.begin(), goldfish.end());
        const double s = standard[standard.size() / 2], g = goldfish[goldfish.size() / 2];
        std::printf("\nbf16 LoRA (134M), median of %d: standard %.0f tokens/s, goldfish K=%lld %.0f tokens/s, "
                    "goldfish/standard %.3f\n",
                    reps, s, static_cast<long long>(kGoldfishK), g, g / s);
        std::printf("target: Goldfish training >= %.0f%% of standard training tokens/s: %.1f%% -> %s\n",
                    100 * kGoldfishTarget, 100 * g / s, g / s >= kGoldfishTarget ? "PASS" : "MISS");
        std::printf("load average at end: %s\n", loadavg().c_str());
        fs::remove_all(dir);
        return 0;
    }
    std::vector<Row> rows;
    struct Goldfish {
        std::string model, dtype;
        double standard = 0, goldfish = 0;
    };
    std::vector<Goldfish> goldfish_rows;
    struct Subject {
        std::string name;
        std::function<std::shared_ptr<Model>(DType)> make;
    };
    std::vector<Subject> subjects{{"random-llama-134M", [](DType d) {
                                       return Model::random_llama(bench::llama_134m_config(), bench::llama_134m_vocab(), 42, LoadParams{d, 0});
                                   }}};
    std::string stories_path = std::string(MEMSKEW_SOURCE_DIR) + "/../shared/models/stories260K/stories260K.gguf";
    if (const char* s = std::getenv("MEMSKEW_SHARED_DIR")) stories_path = std::string(s) + "/models/stories260K/stories260K.gguf";
    if (stories && fs::exists(stories_path))
        subjects.push_back({"stories260K", [stories_path](DType d) { return Model::load(stories_path, LoadParams{d, 0}); }});
    else if (stories)
        std::printf("(stories260K not found at %s: skipped)\n", stories_path.c_str());

    for (const auto& subj : subjects) {
        for (const DType dt : {DType::kF32, DType::kBF16}) {
            auto probe = subj.make(dt);
            const auto batch = batch_of(*probe, data);
            const int64_t tps = tokens_of(batch);
            const double score = score_rate(*probe, batch);
            probe.reset();
            std::printf("%s %s: batch %lld x (prompt %zu + reference %zu) = %lld tokens/step; scoring %.0f tokens/s\n",
                        subj.name.c_str(), dtype_name(dt), static_cast<long long>(kBatch), batch[0].prompt.size(),
                        batch[0].reference.size(), static_cast<long long>(tps), score);
            std::fflush(stdout);
            for (const TrainMode mode : {TrainMode::kLora, TrainMode::kFull}) {
                const auto r = train_rate([&] { return subj.make(dt); }, mode, data, dir, tps);
                rows.push_back({subj.name, dtype_name(dt), mode == TrainMode::kLora ? "lora" : "full", r, score});
                std::printf("  %s: %.0f tokens/s (%.2f s/step, first step %.2f s)\n", rows.back().mode.c_str(),
                            r.tokens_per_s, r.step_s, r.first_step_s);
                std::fflush(stdout);
            }
            // Goldfish against the LoRA row just measured (same data, same model).
            const auto g = train_rate([&] { return subj.make(dt); }, TrainMode::kLora, data, dir, tps, kGoldfishK);
            goldfish_rows.push_back({subj.name, dtype_name(dt), rows[rows.size() - 2].r.tokens_per_s, g.tokens_per_s});
            std::printf("  lora goldfish K=%lld: %.0f tokens/s (%.2f s/step)\n", static_cast<long long>(kGoldfishK),
                        g.tokens_per_s, g.step_s);
            std::fflush(stdout);
        }
    }

    std::printf("\n%-18s %-5s %-5s %13s %10s %14s %12s %10s\n", "model", "dtype", "mode", "trainable", "s/step",
                "train tok/s", "score tok/s", "train/score");
    for (const auto& r : rows)
        std::printf("%-18s %-5s %-5s %13lld %10.3f %14.0f %12.0f %9.1f%%\n", r.model.c_str(), r.dtype.c_str(),
                    r.mode.c_str(), static_cast<long long>(r.r.trainable), r.r.step_s, r.r.tokens_per_s, r.score,
                    100.0 * r.r.tokens_per_s / r.score);
    std::printf("\nLoRA / full training throughput:\n");
    for (size_t i = 0; i + 1 < rows.size(); i += 2)
        std::printf("  %-18s %-5s %.2fx\n", rows[i].model.c_str(), rows[i].dtype.c_str(),
                    rows[i].r.tokens_per_s / rows[i + 1].r.tokens_per_s);
    std::printf("\nGoldfish (K=%lld, H=13) / standard LoRA training throughput:\n", static_cast<long long>(kGoldfishK));
    for (const auto& g : goldfish_rows)
        std::printf("  %-18s %-5s standard %.0f tokens/s, goldfish %.0f tokens/s, ratio %.3f\n", g.model.c_str(),
                    g.dtype.c_str(), g.standard, g.goldfish, g.goldfish / g.standard);
    for (const auto& g : goldfish_rows) {
        if (g.model != "random-llama-134M" || g.dtype != "bf16") continue;
        const double ratio = g.goldfish / g.standard;
        std::printf("target: Goldfish training >= %.0f%% of standard training (bf16 LoRA, 134M): %.1f%% -> %s\n",
                    100 * kGoldfishTarget, 100 * ratio, ratio >= kGoldfishTarget ? "PASS" : "MISS");
    }
    for (const auto& r : rows) {
        if (r.model != "random-llama-134M" || r.dtype != "bf16" || r.mode != "lora") continue;
        const double ratio = r.r.tokens_per_s / r.score;
        std::printf("\ntarget: bf16 LoRA training >= %.0f%% of bf16 forward-only scoring (134M): %.1f%% -> %s\n",
                    100 * kTarget, 100 * ratio, ratio >= kTarget ? "PASS" : "MISS");
    }
    std::printf("load average at end: %s\n", loadavg().c_str());
    fs::remove_all(dir);
    return 0;
}
