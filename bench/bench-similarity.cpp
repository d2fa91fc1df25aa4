// Inter-sample similarity at scale, two parts.
//
// 1. Near-duplicate detection (issue 12's target: MinHash + LSH over 100,000
// medquad-sized samples in under 30 s on this machine).
//
// Corpus: the medquad samples (question + answer) tokenized with the GPT-2
// tokenizer.json from ../shared, cycled to --docs documents; every copy after
// the first has --edit-rate of its tokens replaced (deterministically), so the
// corpus holds real near-duplicate clusters as well as exact repeats.
//
// Baseline, measured in the same run: one pass that hashes every 5-gram
// shingle once (XXH3), the floor of any shingle-based method. The ratio says
// how many such passes MinHash + LSH cost.
//
// 2. Per-sample k-nearest neighbours over unit embeddings (M10's
// neighbourhood similarity; target: exact k = 10 over 100,000 x 768 in under
// 60 s). Baseline, measured in the same run: the BLAS's single-precision GEMM
// rate on a [4096, 768] x [768, 4096] product. The exact search is a blocked
// product that computes each pair once: M² d / 2 multiply-adds, counted as
// M² d flops (half of the full product's 2 M² d), so its rate over the GEMM's
// is the share of the machine's matrix-product speed it keeps. Then the
// approximate index (hnswlib) on --ann-rows vectors: build, query, and
// recall@10 against the exact lists of 1000 rows.
//
// Options: --docs N --edit-rate R (part 1); --knn-rows N --ann-rows N --dim D
// --k K --recall-queries N --threads T (part 2); --ann-data clustered|random
// (default clustered: see clustered_unit), --hnsw-m, --ef-construction,
// --ef-search; --skip-minhash, --skip-gemm, --skip-knn, --skip-ann.
#include <cblas.h>
#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "memskew/data.h"
#include "memskew/knn.h"
#include "memskew/near-duplicates.h"
#include "memskew/similarity.h"
#include "memskew/tokenizer.h"

using namespace memskew;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string shared_dir() {
    if (const char* d = std::getenv("MEMSKEW_SHARED_DIR")) return d;
    return MEMSKEW_SHARED_DIR_DEFAULT;
}

// n unit vectors of dimension d, each a normalised Gaussian (Box-Muller over
// splitmix64, seeded per row: the same matrix for any thread count), filled on
// all hardware threads (a million rows of 768 is 768 M draws).
EmbeddingMatrix random_unit(int64_t n, int64_t d, uint64_t seed) {
    EmbeddingMatrix e{n, d, std::vector<float>(static_cast<size_t>(n * d))};
    auto fill = [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
            uint64_t state = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ull;
            auto next = [&] {
                uint64_t z = (state += 0x9E3779B97F4A7C15ull);
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                return ((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
            };
            float* r = e.values.data() + i * d;
            double ss = 0;
            for (int64_t c = 0; c < d; c += 2) {
                const double u = 1.0 - next(), v = next();
                const double rad = std::sqrt(-2.0 * std::log(u));
                r[c] = static_cast<float>(rad * std::cos(2 * M_PI * v));
                if (c + 1 < d) r[c + 1] = static_cast<float>(rad * std::sin(2 * M_PI * v));
            }
            for (int64_t c = 0; c < d; ++c) ss += static_cast<double>(r[c]) * r[c];
            const double inv = 1.0 / std::sqrt(ss);
            for (int64_t c = 0; c < d; ++c) r[c] = static_cast<float>(r[c] * inv);
        }
    };
    const int64_t t = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (int64_t c = 0; c < t; ++c) pool.emplace_back(fill, n * c / t, n * (c + 1) / t);
    for (auto& th : pool) th.join();
    return e;
}

// Clustered unit vectors, closer to real sample embeddings than uniform ones
// (the demo's have a mean pairwise cosine near 0.9): n / cluster_size random
// unit centres, each row its centre plus Gaussian noise of norm ~0.75 (cosine
// ~0.8 to the centre, ~0.64 between rows of one cluster), normalised.
EmbeddingMatrix clustered_unit(int64_t n, int64_t d, int64_t cluster_size, uint64_t seed) {
    const int64_t n_centres = std::max<int64_t>(1, n / cluster_size);
    const EmbeddingMatrix centres = random_unit(n_centres, d, seed + 1000);
    EmbeddingMatrix e = random_unit(n, d, seed);  // the noise directions
    for (int64_t i = 0; i < n; ++i) {
        float* r = e.values.data() + i * d;
        const float* c = centres.row(i % n_centres);
        double ss = 0;
        for (int64_t j = 0; j < d; ++j) {
            r[j] = c[j] + 0.75f * r[j];
            ss += static_cast<double>(r[j]) * r[j];
        }
        const float inv = static_cast<float>(1.0 / std::sqrt(ss));
        for (int64_t j = 0; j < d; ++j) r[j] *= inv;
    }
    return e;
}

// The BLAS's sgemm rate on C [4096, 4096] = A [4096, d] B^T, as the exact kNN
// calls it (row-major, B transposed): best of 5 after a warm-up, GFLOP/s.
double gemm_gflops(int64_t d) {
    const int n = 4096;
    std::vector<float> a(static_cast<size_t>(n * d)), b(a.size()), c(static_cast<size_t>(n) * n);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto& x : a) x = u(rng);
    for (auto& x : b) x = u(rng);
    double best = 1e30;
    for (int rep = 0; rep < 6; ++rep) {
        const auto t0 = Clock::now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, static_cast<int>(d), 1.0f, a.data(),
                    static_cast<int>(d), b.data(), static_cast<int>(d), 0.0f, c.data(), n);
        if (rep > 0) best = std::min(best, seconds_since(t0));
    }
    return 2.0 * n * n * static_cast<double>(d) / best / 1e9;
}

// Part 1: MinHash + LSH near-duplicates. Returns false when ../shared lacks the data.
bool bench_minhash(size_t n_docs, double edit_rate) {
    const std::string shared = shared_dir();
    const std::string data = shared + "/data/medquad.jsonl", tok_path = shared + "/tokenizers/hf/gpt-2";
    if (!std::filesystem::exists(data) || !std::filesystem::exists(tok_path)) {
        std::fprintf(stderr, "bench-similarity: the MinHash part needs %s and %s (set MEMSKEW_SHARED_DIR)\n",
                     data.c_str(), tok_path.c_str());
        return false;
    }
    DatasetParams dp;
    dp.skip_empty_reference = true;
    dp.dedupe_ids = true;
    const Dataset ds = load_dataset(data, dp);
    const auto tok = load_tokenizer(tok_path);
    std::vector<std::vector<int32_t>> base;
    size_t base_tokens = 0;
    for (const Sample& s : ds.samples) {
        base.push_back(tok->encode(s.prompt + s.reference));
        base_tokens += base.back().size();
    }
    std::vector<std::vector<int32_t>> docs;
    docs.reserve(n_docs);
    std::mt19937 rng(17);
    size_t n_tokens = 0;
    for (size_t i = 0; i < n_docs; ++i) {
        std::vector<int32_t> d = base[i % base.size()];
        if (i >= base.size())
            for (auto& t : d)
                if (std::uniform_real_distribution<double>(0, 1)(rng) < edit_rate) t = static_cast<int32_t>(rng() % 50257);
        n_tokens += d.size();
        docs.push_back(std::move(d));
    }
    fmt::print("corpus: {} medquad samples ({:.0f} GPT-2 tokens each on average) cycled to {} documents, "
               "{:.1f} M tokens, {:.0f}% of tokens edited in repeats\n",
               base.size(), static_cast<double>(base_tokens) / base.size(), docs.size(), n_tokens / 1e6,
               100 * edit_rate);

    // Baseline: hash every shingle once.
    auto t0 = Clock::now();
    uint64_t sink = 0;
    for (const auto& d : docs) {
        const size_t k = std::min<size_t>(5, d.size());
        for (size_t i = 0; k > 0 && i + k <= d.size(); ++i) sink ^= XXH3_64bits(d.data() + i, k * sizeof(int32_t));
    }
    const double base_s = seconds_since(t0);

    t0 = Clock::now();
    const NearDuplicateClusters c = near_duplicate_clusters(docs);
    const double s = seconds_since(t0);
    int64_t in_clusters = 0, largest = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
        if (c.cluster_size[i] > 1) ++in_clusters;
        largest = std::max(largest, c.cluster_size[i]);
    }
    fmt::print("baseline: hash every 5-gram once          {:8.2f} s  ({:.0f} M shingles/s)  [{:x}]\n", base_s,
               n_tokens / base_s / 1e6, sink & 0xf);
    fmt::print("MinHash (128) + LSH (16 x 8) + union-find {:8.2f} s  ({:.0f} docs/s)  {:.1f}x the baseline\n", s,
               docs.size() / s, s / base_s);
    fmt::print("  {} candidate pairs, {} kept (estimated Jaccard >= 0.7), {} clusters, {} documents in them, "
               "largest {}\n",
               c.n_candidate_pairs, c.n_kept_pairs, c.n_clusters, in_clusters, largest);
    fmt::print("target: under 30 s for 100,000 documents -> {:.2f} of the budget{}\n", s / 30.0,
               docs.size() == 100000 ? "" : " (at this document count)");
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    size_t n_docs = 100000;
    double edit_rate = 0.02;
    int64_t knn_rows = 100000, ann_rows = 1000000, dim = 768, recall_queries = 1000;
    int k = 10, threads = 0;
    bool skip_minhash = false, skip_gemm = false, skip_knn = false, skip_ann = false;
    std::string ann_data = "clustered";
    KnnParams p;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench-similarity: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--docs") n_docs = std::stoul(value());
        else if (a == "--edit-rate") edit_rate = std::stod(value());
        else if (a == "--knn-rows") knn_rows = std::stoll(value());
        else if (a == "--ann-rows") ann_rows = std::stoll(value());
        else if (a == "--dim") dim = std::stoll(value());
        else if (a == "--k") k = std::stoi(value());
        else if (a == "--recall-queries") recall_queries = std::stoll(value());
        else if (a == "--threads") threads = std::stoi(value());
        else if (a == "--skip-minhash") skip_minhash = true;
        else if (a == "--skip-gemm") skip_gemm = true;
        else if (a == "--skip-knn") skip_knn = true;
        else if (a == "--skip-ann") skip_ann = true;
        else if (a == "--ann-data") ann_data = value();
        else if (a == "--hnsw-m") p.hnsw_m = std::stoi(value());
        else if (a == "--ef-construction") p.hnsw_ef_construction = std::stoi(value());
        else if (a == "--ef-search") p.hnsw_ef_search = std::stoi(value());
        else {
            std::fprintf(stderr, "bench-similarity: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    bool ran = false;
    if (!skip_minhash) ran |= bench_minhash(n_docs, edit_rate);

    double gemm_rate = NAN;  // GFLOP/s
    if (!skip_gemm) {
        gemm_rate = gemm_gflops(dim);
        fmt::print("baseline: sgemm [4096, {}] x [{}, 4096]      {:8.1f} GFLOP/s (best of 5)\n", dim, dim, gemm_rate);
        ran = true;
    }

    p.k = k;
    p.threads = threads;
    p.recall_queries = recall_queries;
    if (!skip_knn) {
        const EmbeddingMatrix e = random_unit(knn_rows, dim, 1);
        const KnnResult r = exact_knn(e, p);
        const double s = r.query_seconds;
        // Each pair is computed once: M² d multiply-adds' worth counted as
        // M² d flops (the full product, 2 M² d, would be twice that).
        const double flops = static_cast<double>(knn_rows) * knn_rows * dim;
        const double rate = flops / s / 1e9;
        double mean = 0;
        for (double m : r.mean_similarity()) mean += m;
        mean /= static_cast<double>(r.n);
        fmt::print("exact kNN, k = {}, {} x {} unit vectors    {:8.2f} s  ({:.1f} GFLOP/s counting M^2 d flops, "
                   "{:.1f} as a full 2 M^2 d product)  {:.2f} of the GEMM rate\n",
                   r.k, knn_rows, dim, s, rate, 2 * rate, rate / gemm_rate);
        fmt::print("  mean neighbourhood similarity {:.4f}\n", mean);
        fmt::print("target: under 60 s for 100,000 x 768 -> {:.2f} of the budget{}\n", s / 60.0,
                   knn_rows == 100000 && dim == 768 ? "" : " (at this size)");
        ran = true;
    }

    if (!skip_ann) {
        if (ann_data != "random" && ann_data != "clustered") {
            std::fprintf(stderr, "bench-similarity: --ann-data is random or clustered\n");
            return 2;
        }
        const EmbeddingMatrix e = ann_data == "random" ? random_unit(ann_rows, dim, 2) : clustered_unit(ann_rows, dim, 100, 2);
        p.exact_limit = 0;
        const auto t0 = Clock::now();
        const KnnResult r = approximate_knn(e, p);
        const double total = seconds_since(t0);
        fmt::print("approximate kNN (hnswlib, M {}, ef {}/{}), {} x {} {} unit vectors\n", p.hnsw_m,
                   p.hnsw_ef_construction, p.hnsw_ef_search, ann_rows, dim,
                   ann_data == "random" ? "uniform random" : "clustered (100 per cluster)");
        fmt::print("  build  {:8.2f} s  ({:.0f} inserts/s, {:.1f} s per 100,000)\n", r.build_seconds,
                   ann_rows / r.build_seconds, r.build_seconds * 1e5 / ann_rows);
        fmt::print("  query  {:8.2f} s  ({:.0f} queries/s, every row, k + 1 = {} each)\n", r.query_seconds,
                   ann_rows / r.query_seconds, r.k + 1);
        fmt::print("  recall {:8.2f} s  recall@{} = {:.4f} over {} rows against exact top-{}\n",
                   total - r.build_seconds - r.query_seconds, r.k, r.recall, r.recall_queries, r.k);
        ran = true;
    }
    return ran ? 0 : 77;
}
