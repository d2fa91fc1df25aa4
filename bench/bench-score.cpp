// Teacher-forced scoring (METHOD M3) vs batched greedy generation (M2) on a
// random Llama of a realistic shape, fp32 and bf16, with the GEMM rate of
// this machine measured in the same run as the yardstick.
//
//   bench-score [--repeats N] [--threads N] [--dtype f32|bf16|both] [--trace FILE]
//
// --trace FILE writes one scoring pass's operator timeline (LibTorch's legacy
// profiler, Chrome trace JSON; open it in chrome://tracing) for finding where
// the time outside the GEMMs goes. Per dtype: FILE gets the dtype appended.
//
// Model: dim 768, 12 layers, 12 heads (12 KV heads), FFN 2048, vocab 32000,
// untied (~134M parameters). Batch: 16 samples x (128 prompt + 64 reference).
//
// Conventions (printed with the results):
//   tokens    = 16 x (128 + 64) = 3072 per batch, for scoring and generation alike.
//   FLOPs     = what the engine computes: 2 x matmul params per layer x B x T
//               for the B x T = 16 x 191 padded input rows (prompt || reference
//               without its last token), except in the last layer, where only
//               k/v run on all rows and q/o/MLP on the 16 x 64 reference rows;
//               + attention 4 x B x H x Tq x S x hd per layer (full Tq x S
//               scores: masked entries are computed too),
//               + the output projection 2 x D x V for the 16 x 64 reference
//               rows only. Norms, rotary, softmax, SiLU and the per-token
//               statistics are not counted.
//   GEMM rate = torch::mm on the model's GEMM shapes (x [M, in] . W[out, in]^T,
//               as at::linear calls it), combined with the FLOP mix of the
//               scoring pass: total FLOPs / sum of (FLOPs_i / rate_i).
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "model/model-impl.h"
#include "bench-common.h"

#include <torch/csrc/autograd/profiler_legacy.h>

using namespace memskew;
using bench::Clock;
using bench::seconds_since;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Warm-up once, then the median of `repeats` timed runs (seconds).
double time_median(int repeats, const std::function<void()>& fn) {
    fn();
    std::vector<double> t;
    for (int i = 0; i < repeats; ++i) {
        auto t0 = Clock::now();
        fn();
        t.push_back(seconds_since(t0));
    }
    return median(t);
}

constexpr int64_t kBatch = 16, kPrompt = 128, kRef = 64, kVocab = bench::kLlama134MVocab;
// The reference numbers of the brief: a plain eager PyTorch (Python)
// implementation of this model on this machine kind, tokens/s (16 x 192 convention).
constexpr double kPyTorchEagerBf16 = 1960.0, kPyTorchEagerF32 = 470.0;
constexpr double kTargetGenRatio = 3.0, kTargetGemmFraction = 0.60;

struct Flops {
    double layers = 0, attention = 0, output = 0;
    double total() const { return layers + attention + output; }
};

// Tq: query positions of the last layer (score() runs its queries, attention
// output and MLP only from the first reference position on).
Flops scoring_flops(const ModelConfig& c, int64_t B, int64_t T, int64_t Tq, int64_t n_out_rows) {
    const double hd = static_cast<double>(c.head_dim());
    const double q_o = static_cast<double>(c.dim) * (c.n_heads * hd) * 2;
    const double k_v = static_cast<double>(c.dim) * (c.n_kv_heads * hd) * 2;
    const double mlp = 3.0 * static_cast<double>(c.dim) * static_cast<double>(c.ffn_dim);
    const double L = static_cast<double>(c.n_layers);
    Flops f;
    f.layers = 2.0 * (q_o + k_v + mlp) * static_cast<double>(B * T) * (L - 1) +
               2.0 * (k_v * static_cast<double>(B * T) + (q_o + mlp) * static_cast<double>(B * Tq));
    f.attention = 4.0 * static_cast<double>(B) * c.n_heads * static_cast<double>(T) * hd *
                  (static_cast<double>(T) * (L - 1) + static_cast<double>(Tq));
    f.output = 2.0 * static_cast<double>(c.dim) * static_cast<double>(c.n_vocab) * static_cast<double>(n_out_rows);
    return f;
}

struct GemmShape {
    const char* what;
    int64_t m, in, out;
    double flops_in_model;  // FLOPs this shape accounts for in one scoring pass
};

struct GemmResult {
    std::vector<double> rates;  // GFLOP/s per shape
    double mix_rate = 0;        // GFLOP/s of the scoring pass's GEMM mix
};

GemmResult measure_gemms(const std::vector<GemmShape>& shapes, torch::Dtype dt, int repeats) {
    c10::InferenceMode guard;
    GemmResult r;
    double total = 0, time = 0;
    for (const auto& s : shapes) {
        auto x = torch::randn({s.m, s.in}).to(dt);
        auto w = torch::randn({s.out, s.in}).to(dt);
        const double secs = time_median(repeats, [&] { auto y = torch::mm(x, w.t()); });
        const double flops = 2.0 * s.m * s.in * s.out;
        r.rates.push_back(flops / secs * 1e-9);
        total += s.flops_in_model;
        time += s.flops_in_model / (flops / secs);
    }
    r.mix_rate = total / time * 1e-9;
    return r;
}

struct Result {
    DType dtype;
    double score_s = 0, gen_s = 0, prefill_s = 0, forward_s = 0, project_s = 0;
    double gemm_rate = 0;
    std::vector<double> gemm_rates;
    Flops flops;
    int n_pre_agree = 0, n_pre_sum_score = 0, n_pre_sum_gen = 0;
};

const char* pass(bool ok) { return ok ? "PASS" : "MISS"; }

Result run(DType dtype, int repeats, int n_threads, const std::string& trace) {
    Result res;
    res.dtype = dtype;
    const ModelConfig cfg = bench::llama_134m_config();
    auto t0 = Clock::now();
    auto model = Model::random_llama(cfg, bench::llama_134m_vocab(), 42, LoadParams{dtype, n_threads});
    std::printf("\n== %s: %s, %.1fM parameters, built in %.1f s\n", dtype_name(dtype), cfg.name.c_str(),
                model->config().n_params() * 1e-6, seconds_since(t0));
    Engine engine(model);

    std::mt19937 rng(1);
    std::uniform_int_distribution<int32_t> tok(0, kVocab - 1);
    std::vector<GenerateRequest> gen_batch(kBatch);
    for (auto& g : gen_batch) {
        g.prompt.resize(kPrompt);
        for (auto& t : g.prompt) t = tok(rng);
        g.prompt[0] = model->tokenizer().bos();
        g.max_new_tokens = kRef;
    }
    const GenerateParams gp{/*stop_at_eos=*/false, /*stop_on_mismatch=*/false};

    // (b) generation; its warm-up output becomes the reference, so scoring's
    // n_pre can be checked against generation's (METHOD M3: equal but for ties).
    std::vector<GenerateResult> generated;
    res.gen_s = time_median(repeats, [&] {
        auto out = engine.generate(gen_batch, gp);
        if (generated.empty()) generated = std::move(out);
    });
    // Generation's prefill alone: the same prompts, one new token (no decode step).
    auto prefill_batch = gen_batch;
    for (auto& g : prefill_batch) g.max_new_tokens = 1;
    res.prefill_s = time_median(repeats, [&] { engine.generate(prefill_batch, gp); });
    std::vector<ScoreRequest> score_batch(kBatch);
    for (int64_t b = 0; b < kBatch; ++b) {
        score_batch[b].prompt = gen_batch[b].prompt;
        score_batch[b].reference = generated[b].tokens;
        if (score_batch[b].reference.size() != static_cast<size_t>(kRef))
            throw std::runtime_error("generation stopped early");
    }

    // (a) scoring
    std::vector<TokenScores> scores;
    res.score_s = time_median(repeats, [&] { scores = engine.score(score_batch); });
    for (int64_t b = 0; b < kBatch; ++b) {
        const int32_t gen_n_pre = generated[b].n_pre(score_batch[b].reference);  // = 64 by construction
        res.n_pre_agree += scores[b].n_pre == gen_n_pre;
        res.n_pre_sum_score += scores[b].n_pre;
        res.n_pre_sum_gen += gen_n_pre;
    }

    if (!trace.empty()) {
        const std::string file = fmt::format("{}.{}.json", trace, dtype_name(dtype));
        {
            torch::autograd::profiler::RecordProfile profile(file);
            engine.score(score_batch);
        }
        std::printf("   operator trace of one scoring pass: %s\n", file.c_str());
    }

    // Breakdown of one scoring pass: the backbone vs the output projection of
    // the reference rows (the rest of score(): gathering and per-token stats).
    const int64_t T = kPrompt + kRef - 1;
    {
        c10::InferenceMode guard;
        auto& net = *model_impl(*model).net;
        auto ids = torch::randint(0, kVocab, {kBatch, T}, torch::kLong);
        auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({kBatch, T}).contiguous();
        torch::Tensor h;
        // As score() runs it: the last layer only for the reference positions.
        res.forward_s = time_median(repeats, [&] { h = net.forward_hidden_tail(ids, pos, kPrompt - 1); });
        auto rows = h.reshape({kBatch * kRef, cfg.dim}).contiguous();
        res.project_s = time_median(repeats, [&] {
            for (int64_t s = 0; s < rows.size(0); s += 256) auto z = net.project(rows.narrow(0, s, 256));
        });
    }

    // (c) GEMM rate on the model's shapes, weighted by the scoring pass's FLOP mix.
    const int64_t M = kBatch * T, Mq = kBatch * kRef, D = cfg.dim, F = cfg.ffn_dim;
    const double L = static_cast<double>(cfg.n_layers);
    const std::vector<GemmShape> shapes = {
        // (the last layer runs q/o and the MLP on the Mq reference rows only)
        {"q/k/v/o  [3056x768].[768x768]", M, D, D, 2.0 * D * D * (4 * M * (L - 1) + 2 * M + 2 * Mq)},
        {"gate/up  [3056x768].[768x2048]", M, D, F, 2.0 * D * F * 2 * (M * (L - 1) + Mq)},
        {"down     [3056x2048].[2048x768]", M, F, D, 2.0 * F * D * (M * (L - 1) + Mq)},
        {"lm_head  [256x768].[768x32000]", 256, D, kVocab, 2.0 * kBatch * kRef * D * kVocab},
    };
    const auto g = measure_gemms(shapes, torch_dtype(dtype), repeats);
    res.gemm_rates = g.rates;
    res.gemm_rate = g.mix_rate;
    res.flops = scoring_flops(model->config(), kBatch, T, kRef, kBatch * kRef);
    for (size_t i = 0; i < shapes.size(); ++i)
        std::printf("   torch::mm %-34s %8.1f GFLOP/s\n", shapes[i].what, g.rates[i]);
    std::printf("   GEMM mix of the scoring pass               %8.1f GFLOP/s\n", g.mix_rate);
    return res;
}

}  // namespace

int main(int argc, char** argv) {
    memskew::ensure_passive_openmp(argc, argv);
    int repeats = 3, n_threads = 0;
    std::string which = "both", trace;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--repeats" && i + 1 < argc) repeats = std::stoi(argv[++i]);
        else if (a == "--threads" && i + 1 < argc) n_threads = std::stoi(argv[++i]);
        else if (a == "--dtype" && i + 1 < argc) which = argv[++i];
        else if (a == "--trace" && i + 1 < argc) trace = argv[++i];
        else {
            std::fprintf(stderr, "usage: bench-score [--repeats N] [--threads N] [--dtype f32|bf16|both] [--trace FILE]\n");
            return 2;
        }
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows when piped to a file
    set_compute_threads(n_threads);
    std::printf("bench-score: random Llama dim 768, 12 layers, 12 heads / 12 KV heads, FFN 2048, vocab 32000, "
                "untied\n");
    std::printf("batch %lld samples x (%lld prompt + %lld reference) tokens; tokens/s counts %lld x %lld = %lld "
                "tokens per batch\n",
                (long long)kBatch, (long long)kPrompt, (long long)kRef, (long long)kBatch,
                (long long)(kPrompt + kRef), (long long)(kBatch * (kPrompt + kRef)));
    std::printf("padding: none (all samples the same length; score() feeds prompt || reference[:-1] = %lld "
                "positions, right-padded to the longest)\n",
                (long long)(kPrompt + kRef - 1));
    std::printf("threads: at::get_num_threads() = %d (--threads %d; 0 = all), interop %d, hardware %u; "
                "warm-up 1, median of %d repeats\n",
                at::get_num_threads(), n_threads, at::get_num_interop_threads(),
                std::thread::hardware_concurrency(), repeats);
    std::printf("LibTorch %s, MKLDNN %s, parallel: %s\n", TORCH_VERSION, at::hasMKLDNN() ? "yes" : "no",
                at::get_parallel_info().substr(0, at::get_parallel_info().find('\n', 0)).c_str());

    // The machine may be shared: other processes competing for the cores skew every figure.
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) == 3)
        std::printf("load average at start: %.2f %.2f %.2f (cores: %u)\n", load[0], load[1], load[2],
                    std::thread::hardware_concurrency());

    std::vector<Result> results;
    if (which == "both" || which == "f32" || which == "fp32") results.push_back(run(DType::kF32, repeats, n_threads, trace));
    if (which == "both" || which == "bf16") results.push_back(run(DType::kBF16, repeats, n_threads, trace));

    if (getloadavg(load, 3) == 3) std::printf("\nload average at end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    const double tokens = static_cast<double>(kBatch * (kPrompt + kRef));
    std::printf("\n%-6s %-44s %12s %12s %s\n", "dtype", "figure", "value", "target", "");
    for (const auto& r : results) {
        const char* d = dtype_name(r.dtype);
        const double score_tps = tokens / r.score_s, gen_tps = tokens / r.gen_s;
        const double ratio = r.gen_s / r.score_s;
        const double achieved = r.flops.total() / r.score_s * 1e-9;
        const double frac = achieved / r.gemm_rate;
        const double py = r.dtype == DType::kBF16 ? kPyTorchEagerBf16 : kPyTorchEagerF32;
        std::printf("%-6s %-44s %12.0f %12s\n", d, "(a) scoring tokens/s", score_tps, "");
        std::printf("%-6s %-44s %12.3f %12s\n", d, "(a) scoring s/batch", r.score_s, "");
        std::printf("%-6s %-44s %12.0f %12s   (reference, not measured here)\n", d,
                    "    PyTorch eager (Python) tokens/s", py, "");
        std::printf("%-6s %-44s %12.2f %12s\n", d, "    ratio to PyTorch eager", score_tps / py, "");
        std::printf("%-6s %-44s %12.0f %12s\n", d, "(b) generation tokens/s", gen_tps, "");
        std::printf("%-6s %-44s %12.3f %12s\n", d, "(b) generation s/batch", r.gen_s, "");
        std::printf("%-6s %-44s %12.2f %12s %s\n", d, "    n_pre time ratio generation/scoring", ratio, ">= 3.00",
                    pass(ratio >= kTargetGenRatio));
        std::printf("%-6s %-44s %12.3f %12s\n", d, "    generation = prefill (16 x 128) s", r.prefill_s, "");
        std::printf("%-6s %-44s %12.3f %12s\n", d, "              + 63 decode steps s", r.gen_s - r.prefill_s, "");
        std::printf("%-6s %-44s %12.1f %12s\n", d, "    ms per decode step (batch 16)",
                    1e3 * (r.gen_s - r.prefill_s) / (kRef - 1), "");
        std::printf("%-6s %-44s %12s %12s\n", d, "    n_pre agreement score vs generate",
                    fmt::format("{}/{}", r.n_pre_agree, kBatch).c_str(), "");
        std::printf("%-6s %-44s %12s %12s\n", d, "    sum n_pre score / generate",
                    fmt::format("{}/{}", r.n_pre_sum_score, r.n_pre_sum_gen).c_str(), "");
        std::printf("%-6s %-44s %12.1f %12s\n", d, "(c) scoring GFLOP per batch", r.flops.total() * 1e-9, "");
        std::printf("%-6s %-44s %12s %12s\n", d, "    layers / attention / output GFLOP",
                    fmt::format("{:.0f}/{:.1f}/{:.1f}", r.flops.layers * 1e-9, r.flops.attention * 1e-9,
                                r.flops.output * 1e-9)
                        .c_str(),
                    "");
        std::printf("%-6s %-44s %12.1f %12s\n", d, "(c) scoring achieved GFLOP/s", achieved, "");
        std::printf("%-6s %-44s %12.1f %12s\n", d, "(c) torch::mm GEMM-mix GFLOP/s", r.gemm_rate, "");
        std::printf("%-6s %-44s %11.0f%% %12s %s\n", d, "(c) scoring / GEMM rate", 100.0 * frac,
                    r.dtype == DType::kBF16 ? ">= 60%" : "(bf16 only)",
                    r.dtype == DType::kBF16 ? pass(frac >= kTargetGemmFraction) : "");
        std::printf("%-6s %-44s %12.3f %12s\n", d, "    breakdown: forward_hidden s", r.forward_s, "");
        std::printf("%-6s %-44s %12.3f %12s\n", d, "    breakdown: output projection (1024 rows) s", r.project_s,
                    "");
        std::printf("%-6s %-44s %12.3f %12s\n", d, "    breakdown: rest of score() (stats, gather) s",
                    r.score_s - r.forward_s - r.project_s, "");
    }
    return 0;
}
