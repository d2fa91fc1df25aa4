// compute_similarity_figures (see include/memskew/similarity-figures.h).
#include "memskew/similarity-figures.h"

#include <fmt/format.h>

#include <chrono>
#include <limits>
#include <unordered_map>

#include "memskew/error.h"
#include "memskew/similarity.h"

namespace memskew {

namespace {

// How many rows share each row's value: [M].
std::vector<int64_t> copies_of(const std::vector<uint64_t>& hashes) {
    std::unordered_map<uint64_t, int64_t> count;
    count.reserve(hashes.size());
    for (uint64_t h : hashes) count[h]++;
    std::vector<int64_t> out(hashes.size());
    for (std::size_t i = 0; i < hashes.size(); ++i) out[i] = count[hashes[i]];
    return out;
}

int64_t n_shared(const std::vector<int64_t>& copies) {
    int64_t n = 0;
    for (int64_t c : copies) n += c > 1;
    return n;
}

int32_t as_index32(int64_t sample_index) {
    if (sample_index < 0 || sample_index > std::numeric_limits<int32_t>::max())
        throw InvalidInput(fmt::format("sample index {} does not fit the neighbour lists (int32)", sample_index),
                           "split the dataset into files of fewer than 2^31 records");
    return static_cast<int32_t>(sample_index);
}

// One embedding's neighbour lists into the samples' figures.
void fill_neighbours(const KnnResult& knn, const RunVectors& v, std::vector<SampleSimilarity>& out, bool prompt) {
    const auto mean = knn.mean_similarity();
    for (std::size_t i = 0; i < out.size(); ++i) {
        auto& ids = prompt ? out[i].neighbours_prompt : out[i].neighbours_full;
        auto& sims = prompt ? out[i].similarity_prompt : out[i].similarity_full;
        ids.resize(static_cast<std::size_t>(knn.k));
        sims.resize(static_cast<std::size_t>(knn.k));
        for (int j = 0; j < knn.k; ++j) {
            const std::size_t at = i * static_cast<std::size_t>(knn.k) + static_cast<std::size_t>(j);
            ids[static_cast<std::size_t>(j)] = as_index32(v.sample_index[static_cast<std::size_t>(knn.index[at])]);
            sims[static_cast<std::size_t>(j)] = knn.similarity[at];
        }
        (prompt ? out[i].knn_sim_prompt : out[i].knn_sim_full) = mean[i];
    }
}

}  // namespace

SimilarityFigures compute_similarity_figures(const RunVectors& v, const SimilarityParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t m = v.size();
    if (m == 0)
        throw InvalidInput(fmt::format("run {} holds no sample vectors to compute similarity figures from", v.run_id),
                           "probe the run again: the vectors are written with each sample and dropped once the "
                           "figures are computed (keep them with --keep-embeddings)");
    SimilarityFigures f;
    f.samples.resize(m);
    for (std::size_t i = 0; i < m; ++i) {
        f.samples[i].sample_id = v.sample_id[i];
        f.samples[i].sample_index = v.sample_index[i];
    }
    RunSimilarity& r = f.run;
    r.run_id = v.run_id;
    r.n_samples = static_cast<int64_t>(m);
    r.embed_dim = v.dim;

    // Global similarity and neighbours (M10).
    if (v.dim > 0 && m >= 2) {
        auto matrix = [&](const std::vector<float>& values) {
            EmbeddingMatrix e;
            e.n = static_cast<int64_t>(m);
            e.dim = v.dim;
            e.values = values;
            // The stored float16 values are unit length to about 1e-3:
            // normalise again so S and the neighbour similarities are cosines.
            normalize_rows(e);
            return e;
        };
        const EmbeddingMatrix prompt = matrix(v.prompt), full = matrix(v.full);
        r.s_input = mean_pairwise_cosine(prompt);
        r.s_full = mean_pairwise_cosine(full);
        r.delta_s = r.s_full - r.s_input;
        const KnnResult kp = nearest_neighbours(prompt, params.knn);
        const KnnResult kf = nearest_neighbours(full, params.knn);
        fill_neighbours(kp, v, f.samples, true);
        fill_neighbours(kf, v, f.samples, false);
        for (auto& s : f.samples) s.knn_sim_delta = s.knn_sim_full - s.knn_sim_prompt;
        r.k = kp.k;
        r.knn_method = kp.approximate ? "approximate" : "exact";
        if (kp.approximate) {
            // The worse of the two indexes' recalls.
            r.knn_recall = std::min(kp.recall, kf.recall);
            r.knn_recall_queries = kp.recall_queries;
        }
    }

    // Near-duplicate clusters (MinHash + LSH over the full sample's 5-grams).
    NearDuplicateParams nd = params.near_duplicates;
    nd.n_permutations = static_cast<int>(v.minhash.front().size());
    const NearDuplicateClusters clusters = near_duplicate_clusters_of_signatures(v.minhash, nd);
    r.near_duplicate_params = {{"shingle", nd.shingle},     {"permutations", nd.n_permutations},
                               {"bands", nd.n_bands},       {"threshold", nd.threshold},
                               {"seed", nd.seed},           {"candidate_pairs", clusters.n_candidate_pairs},
                               {"kept_pairs", clusters.n_kept_pairs}};
    r.n_clusters = clusters.n_clusters;
    r.largest_cluster = 1;
    for (std::size_t i = 0; i < m; ++i) {
        auto& s = f.samples[i];
        s.cluster = v.sample_index[static_cast<std::size_t>(clusters.cluster[i])];
        s.cluster_size = clusters.cluster_size[i];
        if (s.cluster_size > 1) r.n_clustered_samples++;
        r.largest_cluster = std::max(r.largest_cluster, s.cluster_size);
    }

    // Exact duplicates by hash of the token ids.
    const auto prompt_copies = copies_of(v.prompt_hash), reference_copies = copies_of(v.reference_hash);
    for (std::size_t i = 0; i < m; ++i) {
        f.samples[i].prompt_copies = prompt_copies[i];
        f.samples[i].reference_copies = reference_copies[i];
    }
    r.n_duplicate_prompts = n_shared(prompt_copies);
    r.n_duplicate_references = n_shared(reference_copies);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return f;
}

}  // namespace memskew
