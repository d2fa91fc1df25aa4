// bench-probe: throughput of `memskew probe` (the whole pipeline: dataset,
// tokenizer, engine, metrics, store) against the raw teacher-forced scoring of
// the same batches measured in the same run, and the batch planner's padding
// waste. Targets (issue 4): padding waste <= 10%; probe tokens/s >= 85% of raw
// scoring tokens/s on the same model. Issue 12: the sample embeddings add at
// most 5%, measured on the raw scoring and on the whole probe (embeddings and
// the run's similarity figures against --no-embeddings).
//
// Issue 14: `--nproc N` instead compares `memskew probe --nproc N --threads N`
// (N ranks of one thread) with one process of N threads, the same command
// otherwise, wall clock including the start, the model loads and the store
// writes: the distribution overhead (target <= 10% of throughput).
//
//   bench-probe [SHARED_DIR]               (default: ../shared next to the source tree)
//   bench-probe --nproc N [SHARED_DIR]
#include <sys/resource.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/gguf.h"
#include "memskew/probe.h"
#include "memskew/sft-encoder.h"
#include "memskew/tokenizer.h"
#include "bench-common.h"

using namespace memskew;
namespace fs = std::filesystem;

namespace {

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Figures {
    double raw_tps = 0, probe_tps = 0, probe_sps = 0, waste = 0;
    int64_t samples = 0, tokens = 0;
};

// Raw scoring of exactly the batches the probe plans, then the probe itself.
Figures measure(const std::string& label, const std::string& model_path, const std::string& data, size_t n,
                int64_t max_ref, DType dtype, const std::string& tmp, bool with_sampling = false) {
    Figures f;
    ProbeParams p;
    p.model_path = model_path;
    p.load.dtype = dtype;
    p.data_path = data;
    p.data.limit = n;
    p.max_reference_tokens = max_ref;
    p.out_path = tmp + "/" + label + ".db";
    fs::remove(p.out_path);

    auto model = Model::load(model_path, p.load);
    // The samples exactly as the probe encodes them.
    std::vector<ScoreRequest> reqs;
    std::vector<int64_t> lengths;
    for (const EncodedSample& e : encode_probe_set(p, model->tokenizer(), model->config().max_ctx).items) {
        lengths.push_back(e.n_positions());
        reqs.push_back({e.prompt, e.reference});
    }
    const auto batches = plan_batches(lengths, p.token_budget, p.max_batch_size);
    int64_t padded = 0, real = 0, tokens = 0;
    for (const auto& b : batches) {
        int64_t longest = 0;
        for (size_t i : b) {
            longest = std::max(longest, lengths[i]);
            real += lengths[i];
            tokens += static_cast<int64_t>(reqs[i].prompt.size() + reqs[i].reference.size());
        }
        padded += longest * static_cast<int64_t>(b.size());
    }
    Engine engine(model);
    ScoreParams sp;
    sp.sampling = SamplingParams{};
    const double t0 = now();
    for (const auto& b : batches) {
        std::vector<ScoreRequest> batch;
        for (size_t i : b) batch.push_back(reqs[i]);
        engine.score(batch, sp);
    }
    const double raw_s = now() - t0;
    {
        // Issue 12: the sample embeddings from the same pass (the last layer
        // then runs at every position), against the plain pass above.
        ScoreParams ep = sp;
        ep.embeddings = true;
        const double t2 = now();
        for (const auto& b : batches) {
            std::vector<ScoreRequest> batch;
            for (size_t i : b) batch.push_back(reqs[i]);
            engine.score(batch, ep);
        }
        const double emb_s = now() - t2;
        std::printf("%-28s raw scoring with embeddings: %.2f s vs %.2f s without (+%.1f%%, target <= 5%%) %s\n",
                    label.c_str(), emb_s, raw_s, 100 * (emb_s / raw_s - 1), emb_s <= 1.05 * raw_s ? "PASS" : "MISS");
    }
    if (with_sampling) {
        // The M4 transform (temperature and top-p) on every reference row,
        // against the identity transform's pass above.
        ScoreParams tp;
        tp.sampling = SamplingParams{0.7, 0, 0.9};
        const double t2 = now();
        for (const auto& b : batches) {
            std::vector<ScoreRequest> batch;
            for (size_t i : b) batch.push_back(reqs[i]);
            engine.score(batch, tp);
        }
        const double samp_s = now() - t2;
        std::printf("%-28s raw scoring with T=0.7, top-p 0.9: %.1f s vs %.1f s without a transform (%.2fx)\n",
                    label.c_str(), samp_s, raw_s, samp_s / raw_s);
    }
    model.reset();

    // The probe without embeddings first (near-duplicate and duplicate
    // figures only), then the default probe: embeddings from the scoring pass
    // and the run's similarity figures (issue 12: at most +5%).
    ProbeParams plain = p;
    plain.embeddings = false;
    plain.out_path = tmp + "/" + label + "-no-embeddings.db";
    fs::remove(plain.out_path);
    const double t3 = now();
    run_probe(plain);
    const double plain_s = now() - t3;

    const double t1 = now();
    const ProbeSummary s = run_probe(p);
    const double probe_s = now() - t1;
    std::printf("%-28s probe with embeddings and similarity figures: %.2f s vs %.2f s with --no-embeddings "
                "(+%.1f%%, target <= 5%%) %s; figures computed in %.3f s (S_input %.3f, S_full %.3f, %s kNN)\n",
                label.c_str(), probe_s, plain_s, 100 * (probe_s / plain_s - 1), probe_s <= 1.05 * plain_s ? "PASS" : "MISS",
                s.similarity ? s.similarity->seconds : 0.0, s.similarity ? s.similarity->s_input : 0.0,
                s.similarity ? s.similarity->s_full : 0.0, s.similarity ? s.similarity->knn_method.c_str() : "no");
    f.samples = s.n_probed;
    f.tokens = s.tokens;
    f.raw_tps = tokens / raw_s;
    f.probe_tps = s.tokens / probe_s;
    f.probe_sps = s.n_probed / probe_s;
    f.waste = static_cast<double>(padded) / real - 1.0;
    std::printf("%-28s %6lld samples %8lld tokens | raw scoring %8.0f tok/s (%.1f s) | probe %8.0f tok/s %7.1f "
                "samples/s (%.1f s, incl. model load and tokenization) | probe/raw %5.1f%% (target >= 85%%) %s | "
                "padding waste %4.1f%% (target <= 10%%) %s\n",
                label.c_str(), static_cast<long long>(f.samples), static_cast<long long>(f.tokens), f.raw_tps, raw_s,
                f.probe_tps, f.probe_sps, probe_s, 100 * f.probe_tps / f.raw_tps,
                f.probe_tps >= 0.85 * f.raw_tps ? "PASS" : "MISS", 100 * f.waste, f.waste <= 0.10 ? "PASS" : "MISS");
    std::fflush(stdout);
    return f;
}

// One `memskew probe` command: its wall clock (start, model load,
// tokenization, probing, store, similarity figures) and the probe's own
// seconds and tokens from its --json summary (rank 0's: from the run's start
// to its similarity figures, without the process start and model load).
struct ProbeTiming {
    double wall = 0, probe_seconds = 0;
    int64_t tokens = 0;
};

ProbeTiming time_probe(const std::string& args, const std::string& db) {
    fs::remove(db);
    const std::string cmd = fmt::format("'{}/memskew' probe {} -o '{}' -q --json", MEMSKEW_BINARY_DIR, args, db);
    const double t0 = now();
    FILE* f = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (f && fgets(buf, sizeof buf, f)) out += buf;
    const int rc = f ? pclose(f) : -1;
    ProbeTiming t;
    t.wall = now() - t0;
    if (rc != 0) {
        std::fprintf(stderr, "bench-probe: failed: %s\n", cmd.c_str());
        std::exit(1);
    }
    const auto j = nlohmann::json::parse(out);
    t.probe_seconds = j.at("seconds").get<double>();
    t.tokens = j.at("tokens").get<int64_t>();
    return t;
}

void measure_nproc(const std::string& label, const std::string& args, int nproc, const std::string& tmp) {
    // Best of 3, alternated, so drifts in the machine's load hit both.
    ProbeTiming one{1e300, 1e300, 0}, many{1e300, 1e300, 0};
    for (int r = 0; r < 3; ++r) {
        const auto a = time_probe(fmt::format("{} --threads {}", args, nproc), tmp + "/one.db");
        const auto b = time_probe(fmt::format("{} --nproc {} --threads {}", args, nproc, nproc), tmp + "/ranks.db");
        one = {std::min(one.wall, a.wall), std::min(one.probe_seconds, a.probe_seconds), a.tokens};
        many = {std::min(many.wall, b.wall), std::min(many.probe_seconds, b.probe_seconds), b.tokens};
    }
    const double probe_ratio = one.probe_seconds / many.probe_seconds;  // throughput of the ranks / one process
    const double wall_ratio = one.wall / many.wall;
    std::printf("%-28s probing: %d ranks x 1 thread %.2f s (%.0f tok/s) vs 1 process x %d threads %.2f s (%.0f "
                "tok/s): throughput ratio %.3f, overhead %.1f%% (target <= 10%%) %s\n",
                label.c_str(), nproc, many.probe_seconds, many.tokens / many.probe_seconds, nproc, one.probe_seconds,
                one.tokens / one.probe_seconds, probe_ratio, 100 * (1 - probe_ratio), probe_ratio >= 0.9 ? "PASS" : "MISS");
    std::printf("%-28s whole command (start, model load per rank, probing): %.2f s vs %.2f s: ratio %.3f, overhead "
                "%.1f%%\n",
                label.c_str(), many.wall, one.wall, wall_ratio, 100 * (1 - wall_ratio));
    std::fflush(stdout);
}

int run_nproc(int nproc, const std::string& shared) {
    const std::string data = shared + "/data/medquad.jsonl";
    const std::string stories = shared + "/models/stories260K/stories260K.gguf";
    const std::string spm = shared + "/tokenizers/gguf/ggml-vocab-llama-spm.gguf";
    for (const auto& f : {data, stories, spm})
        if (!fs::exists(f)) {
            std::fprintf(stderr, "bench-probe: missing %s (pass the shared folder)\n", f.c_str());
            return 2;
        }
    const std::string tmp = (fs::temp_directory_path() / "memskew-bench-probe").string();
    fs::create_directories(tmp);
    std::printf("bench-probe --nproc %d: best of 3 alternated runs of the memskew CLI; probing = the summary's "
                "seconds (rank 0: run start to similarity figures)\n", nproc);
    std::printf("load average: ");
    std::fflush(stdout);
    std::system("cat /proc/loadavg");
    const std::string small = fmt::format("-m '{}' -d '{}' --limit 2000 --max-reference-tokens 128", stories, data);
    measure_nproc("stories260K f32 (2000, L<=128)", small, nproc, tmp);
    const ModelConfig cfg = bench::llama_134m_config(/*max_ctx=*/2048);
    const std::string big = tmp + "/random-llama-134M.gguf";
    if (!fs::exists(big)) {
        auto g = GgufFile::open(spm);
        Model::random_llama(cfg, vocab_from_gguf(*g), 42)->save_gguf(big, GgmlType::kBF16);
    }
    // Batches of at most 16 samples (both sides): the default 64 would make
    // 4 batches of these 200 samples, too few to spread over ranks (a rank
    // scores whole planned batches, so that the store equals one process's).
    const std::string large = fmt::format(
        "-m '{}' -d '{}' --limit 200 --max-reference-tokens 64 --dtype bf16 --batch-size 16", big, data);
    measure_nproc("llama-134M bf16 (200, L<=64)", large, nproc, tmp);
    std::printf("load average: ");
    std::fflush(stdout);
    std::system("cat /proc/loadavg");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    ensure_passive_openmp(argc, argv);
    if (argc > 2 && std::string(argv[1]) == "--nproc")
        return run_nproc(std::atoi(argv[2]),
                         argc > 3 ? argv[3] : std::string(MEMSKEW_SOURCE_DIR) + "/../shared");
    const std::string shared = argc > 1 ? argv[1] : std::string(MEMSKEW_SOURCE_DIR) + "/../shared";
    const std::string data = shared + "/data/medquad.jsonl";
    const std::string stories = shared + "/models/stories260K/stories260K.gguf";
    const std::string spm = shared + "/tokenizers/gguf/ggml-vocab-llama-spm.gguf";
    for (const auto& f : {data, stories, spm}) {
        if (!fs::exists(f)) {
            std::fprintf(stderr, "bench-probe: missing %s (pass the shared folder as the first argument)\n", f.c_str());
            return 2;
        }
    }
    const std::string tmp = (fs::temp_directory_path() / "memskew-bench-probe").string();
    fs::create_directories(tmp);
    std::printf("bench-probe: medquad.jsonl, plain template, batches of <= 8192 padded tokens / 64 samples, threads %d\n",
                at::get_num_threads());
    std::printf("load average: ");
    std::fflush(stdout);
    std::system("cat /proc/loadavg");

    // References capped at 128 tokens: whole medquad answers (up to the 2048 context)
    // make the [T x T] attention scores dominate a 260K-parameter model.
    measure("stories260K f32 (2000, L<=128)", stories, data, 2000, 128, DType::kF32, tmp);

    // A random Llama of a realistic shape with a real 32000-token vocabulary.
    const ModelConfig cfg = bench::llama_134m_config(/*max_ctx=*/2048);
    const std::string big = tmp + "/random-llama-134M.gguf";
    if (!fs::exists(big)) {
        auto g = GgufFile::open(spm);
        Model::random_llama(cfg, vocab_from_gguf(*g), 42)->save_gguf(big, GgmlType::kBF16);
    }
    measure("llama-134M bf16 (200, L<=64)", big, data, 200, 64, DType::kBF16, tmp, /*with_sampling=*/true);
    std::printf("load average: ");
    std::fflush(stdout);
    std::system("cat /proc/loadavg");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::printf("peak memory %.0f MB\n", ru.ru_maxrss / 1024.0);
    return 0;
}
