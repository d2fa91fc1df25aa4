// Speed and memory of `memskew analyze` (everything but M9) on a synthetic
// store of 1,000,000 samples with L = 64 and per-token arrays.
//
// n_pre is drawn from a heavy-tailed mixture of per-token recall levels
// (90% p = 0.4, 9% p = 0.85, 1% p = 0.98, each position independent): most
// samples fail within a few tokens, a few run to the end. The stored match
// arrays agree with n_pre (ones, then a zero, then random), argmax and the
// reference follow them.
//
// Baseline measured in the same run: opening the store and loading the
// columns of the run (ResultReader::load_columns), and streaming its token
// arrays (for_each_tokens) — the I/O floor that analysis adds to.
// Targets: < 30 s and < 2 GB peak resident memory.
//
// The store takes about a minute to write; it is reused when it already exists.
//
// usage: bench-analyze [store-path (default /tmp/memskew-bench-analyze.db)] [n-samples] [--m9]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "memskew/analysis.h"
#include "memskew/pipeline.h"
#include "memskew/error.h"
#include "memskew/store.h"

namespace {

using namespace memskew;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

void build_store(const std::string& path, int64_t n, int64_t L) {
    RunSpec spec;
    spec.model_path = "synthetic";
    spec.model_fingerprint = "synthetic";
    spec.dataset_path = "synthetic";
    spec.dataset_hash = "synthetic-" + std::to_string(n);
    spec.n_samples_planned = n;
    WriterParams wp;
    wp.batch_size = 4096;
    auto run = open_run(path, spec, ResumeMode::kFresh, wp);
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> u(0, 1);
    std::uniform_int_distribution<int32_t> tok(0, 31999);
    for (int64_t i = 0; i < n; ++i) {
        const double mix = u(rng);
        const double p = mix < 0.90 ? 0.4 : mix < 0.99 ? 0.85 : 0.98;
        int64_t n_pre = 0;
        while (n_pre < L && u(rng) < p) ++n_pre;
        SampleRecord r;
        r.sample_id = "s" + std::to_string(i);
        r.sample_index = i;
        r.prompt_tokens = 32;
        r.reference_tokens = L;
        r.prompt_text = "prompt " + std::to_string(i % (n / 2 + 1));  // pairs share prompts (M9 has work)
        StoredTokens t;
        t.match.resize(L);
        t.argmax.resize(L);
        t.reference.resize(L);
        t.logprob.resize(L);
        t.rank.resize(L);
        t.entropy.resize(L);
        double nll = 0;
        for (int64_t j = 0; j < L; ++j) {
            const bool c = j < n_pre ? true : j == n_pre ? false : u(rng) < p;
            t.reference[j] = tok(rng);
            t.match[j] = c ? 1 : 0;
            t.argmax[j] = c ? t.reference[j] : (t.reference[j] + 1) % 32000;
            t.logprob[j] = c ? static_cast<float>(-0.1 * u(rng)) : static_cast<float>(-3 * u(rng) - 0.7);
            t.rank[j] = c ? 1 : 2 + static_cast<int32_t>(u(rng) * 50);
            t.entropy[j] = static_cast<float>(2 * u(rng));
            nll -= t.logprob[j];
        }
        r.tokens = std::move(t);
        MetricsRow& m = r.metrics;
        m.n_pre = n_pre;
        m.length = L;
        m.exact = n_pre == L;
        m.n_pre_frac = static_cast<double>(n_pre) / L;
        m.loss = nll / L;
        m.perplexity = std::exp(nll / L);
        m.min_k_prob = -nll / L * 2;
        m.zlib_ratio = nll / 300;
        m.mean_entropy = u(rng);
        m.log_p_z = -nll;
        run.writer.add(std::move(r));
    }
    run.writer.finish();
}

}  // namespace

int main(int argc, char** argv) {
    std::string path = "/tmp/memskew-bench-analyze.db";
    int64_t n = 1000000;
    bool with_m9 = false;
    int pos = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--m9") == 0) {
            with_m9 = true;
        } else if (pos++ == 0) {
            path = argv[i];
        } else {
            n = std::stoll(argv[i]);
        }
    }
    const int64_t L = 64;
    try {
        if (!std::filesystem::exists(path)) {
            std::printf("building %lld samples x L = %lld at %s ...\n", static_cast<long long>(n),
                        static_cast<long long>(L), path.c_str());
            const auto t = Clock::now();
            build_store(path, n, L);
            std::printf("  built in %.1f s\n", since(t));
        } else {
            std::printf("reusing %s\n", path.c_str());
        }
        const double rss_before = peak_rss_mb();

        // Baseline: the I/O floor.
        auto t = Clock::now();
        int64_t run_id = 0, n_loaded = 0, n_streamed = 0;
        {
            auto reader = ResultReader::open(path);
            run_id = reader.only_run().run_id;
            const RunColumns c = reader.load_columns(run_id);
            n_loaded = static_cast<int64_t>(c.size());
        }
        const double load_s = since(t);
        t = Clock::now();
        {
            auto reader = ResultReader::open(path);
            reader.for_each_tokens(run_id, [&](const std::string&, const StoredTokens&) { ++n_streamed; });
        }
        const double stream_s = since(t);

        // Peak RSS of the analysis alone: reset the high-water mark the
        // baselines left (Linux >= 4.0: "5" > /proc/self/clear_refs).
        bool reset = false;
        if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
            reset = std::fputs("5", f) >= 0;
            reset = std::fclose(f) == 0 && reset;
        }
        const double rss_after_baselines = peak_rss_mb();
        AnalyzeParams p;
        p.predictors = false;
        t = Clock::now();
        const AnalysisResult r = analyze_store(path, p);
        const double analyze_s = since(t);
        const double rss = peak_rss_mb();

        std::printf("\nsamples %lld (streamed %lld), L = %lld, run %lld\n", static_cast<long long>(n_loaded),
                    static_cast<long long>(n_streamed), static_cast<long long>(L), static_cast<long long>(run_id));
        std::printf("baseline load_columns         %7.2f s\n", load_s);
        std::printf("baseline for_each_tokens      %7.2f s\n", stream_s);
        std::printf("analyze (M5-M8, M11; no M9)   %7.2f s   target < 30 s   %s   (%.2fx load+stream)\n", analyze_s,
                    analyze_s < 30 ? "OK" : "MISSED", analyze_s / (load_s + stream_s));
        for (const auto& [k, v] : r.seconds) std::printf("    %-14s %7.2f s\n", k.c_str(), v);
        std::printf("peak RSS                      %7.0f MB  target < 2048 MB  %s   (before: %.0f MB after building, "
                    "%.0f MB after the baselines%s)\n",
                    rss, rss < 2048 ? "OK" : "MISSED", rss_before, rss_after_baselines,
                    reset ? ", high-water mark reset" : ", could not reset the high-water mark: includes them");
        std::printf("mean n_pre %.3f, max %.0f, exact %zu, top-1%% share %.3f\n", r.distribution.summary.absolute.mean,
                    r.distribution.summary.absolute.max, r.distribution.summary.n_exact,
                    r.distribution.summary.absolute.top_share);
        if (with_m9) {
            AnalyzeParams q;
            q.n_permutations = 0;
            q.n_bootstrap = 0;
            q.hazard_fits = false;
            q.trends = false;
            t = Clock::now();
            const AnalysisResult m9 = analyze_store(path, q);
            std::printf("M9 (+ M5/M6/M8 again)         %7.2f s   peak RSS %.0f MB; %lld prompts, %lld shared\n",
                        since(t), peak_rss_mb(), static_cast<long long>(m9.predictors.n_prompts),
                        static_cast<long long>(m9.predictors.n_shared_prompts));
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "bench-analyze: %s\n", e.message().c_str());
        return 1;
    }
    return 0;
}
