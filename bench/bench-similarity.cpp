// Near-duplicate detection at scale (issue 12's target: MinHash + LSH over
// 100,000 medquad-sized samples in under 30 s on this machine).
//
// Corpus: the medquad samples (question + answer) tokenized with the GPT-2
// tokenizer.json from ../shared, cycled to --docs documents; every copy after
// the first has --edit-rate of its tokens replaced (deterministically), so the
// corpus holds real near-duplicate clusters as well as exact repeats.
//
// Baseline, measured in the same run: one pass that hashes every 5-gram
// shingle once (XXH3), the floor of any shingle-based method. The ratio says
// how many such passes MinHash + LSH cost.
#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "memskew/data.h"
#include "memskew/near-duplicates.h"
#include "memskew/tokenizer.h"

using namespace memskew;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string shared_dir() {
    if (const char* d = std::getenv("MEMSKEW_SHARED_DIR")) return d;
    return MEMSKEW_SHARED_DIR_DEFAULT;
}

}  // namespace

int main(int argc, char** argv) {
    size_t n_docs = 100000;
    double edit_rate = 0.02;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--docs") n_docs = std::stoul(argv[i + 1]);
        else if (a == "--edit-rate") edit_rate = std::stod(argv[i + 1]);
    }
    const std::string shared = shared_dir();
    const std::string data = shared + "/data/medquad.jsonl", tok_path = shared + "/tokenizers/hf/gpt-2";
    if (!std::filesystem::exists(data) || !std::filesystem::exists(tok_path)) {
        std::fprintf(stderr, "bench-similarity: needs %s and %s (set MEMSKEW_SHARED_DIR)\n", data.c_str(),
                     tok_path.c_str());
        return 77;
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
    return 0;
}
