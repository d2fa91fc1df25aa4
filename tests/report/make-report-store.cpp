// Writes a small results store for the report's browser test: three
// checkpoint runs of the same 600 samples whose memorization grows with the
// step, skewed n_pre (per-position recall rising along the sequence), texts
// with recognisable markers, token arrays, and generated outputs in the last
// run (so ROUGE-L exists). Usage: make-report-store OUT.db
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/store.h"

using namespace memskew;

namespace {

const char* kWords[] = {"the", "patient", "should", "take", "two", "doses", "of", "the", "medicine", "daily",
                        "with", "water", "and", "rest", "until", "symptoms", "improve", "then", "see", "a",
                        "doctor", "if", "fever", "returns", "within", "three", "days", "after", "treatment", "ends"};
constexpr int kNWords = sizeof(kWords) / sizeof(kWords[0]);

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make-report-store OUT.db\n");
        return 2;
    }
    const std::string out = argv[1];
    std::remove(out.c_str());
    const int n_samples = 600;
    try {
        for (int run = 0; run < 3; ++run) {
            RunSpec spec;
            spec.model_path = "/models/tiny-llama.gguf";
            spec.model_fingerprint = "size=1,mtime=1";
            spec.adapter_path = fmt::format("/ckpt/epoch-{}", run + 1);
            spec.adapter_fingerprint = fmt::format("ad{}", run);
            spec.checkpoint_step = 100 * (run + 1);
            spec.checkpoint_epoch = run + 1;
            spec.train_loss = 1.6 / (1 + run) + 0.35;
            spec.train_loss_last_step = *spec.train_loss - 0.05;  // the epoch's last step, below its mean
            spec.dataset_path = "/data/medqa.jsonl";
            spec.dataset_hash = "feedbeef";
            spec.options = {{"generate", run == 2}};
            spec.n_samples_planned = n_samples;
            auto opened = open_run(out, spec, ResumeMode::kFresh);
            std::mt19937_64 rng(1000 + run);
            std::uniform_real_distribution<double> u(0, 1);
            for (int i = 0; i < n_samples; ++i) {
                const int L = 16 + (i * 7) % 49;
                // Recall rises with position and with training.
                int n_pre = 0;
                while (n_pre < L && u(rng) < std::min(0.99, 0.3 + 0.05 * run + 0.07 * n_pre)) ++n_pre;
                SampleRecord r;
                r.sample_id = fmt::format("q{:04d}", i);
                r.sample_index = i;
                r.prompt_tokens = 12;
                r.reference_tokens = L;
                r.prompt_text = fmt::format("PROMPT-MARKER-{} What should I do about symptom #{} <b>&</b>?", i, i % 40);
                std::string ref = fmt::format("REFMARKER{}", i), gen = ref;
                StoredTokens t;
                for (int j = 0; j < L; ++j) {
                    const int w = (i * 3 + j * 5) % kNWords;
                    const int32_t id = 100 + w;
                    const bool match = j < n_pre;
                    ref += " ";
                    if (j <= n_pre + 5) gen += " ";
                    ref += kWords[w];
                    if (j < n_pre) gen += kWords[w];
                    else if (j < n_pre + 6) gen += j == n_pre ? "GENMARKER" : "unrelated";
                    t.reference.push_back(id);
                    t.match.push_back(match ? 1 : 0);
                    t.argmax.push_back(match ? id : id + 1);
                    t.logprob.push_back(match ? -0.05f : -2.5f);
                    t.rank.push_back(match ? 1 : 3);
                    t.entropy.push_back(1.0f);
                }
                r.reference_text = ref;
                if (run == 2) {
                    r.generated_text = gen;
                    t.generated = std::vector<int32_t>(t.reference.begin(), t.reference.begin() + n_pre);
                }
                r.tokens = t;
                MetricsRow& m = r.metrics;
                m.n_pre = n_pre;
                m.length = L;
                m.exact = n_pre == L;
                m.n_pre_frac = double(n_pre) / L;
                m.loss = 2.4 / (1 + 0.15 * n_pre) + 0.4 * u(rng);
                m.perplexity = std::exp(*m.loss);
                m.min_k_prob = -7 + 0.12 * n_pre - u(rng);
                if (run == 2) {
                    m.n_pre_generated = n_pre;
                    m.rouge_l = std::min(1.0, double(n_pre) / L + 0.35 * u(rng));
                }
                opened.writer.add(std::move(r));
            }
            opened.writer.finish();
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "make-report-store: %s\n", e.what());
        return 1;
    }
    std::printf("wrote %s\n", out.c_str());
    return 0;
}
