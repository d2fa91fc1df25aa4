// The similarity tables of a results store (METHOD M10 and the data side of
// M12; schema in docs/store-schema.md):
//
//   sample_vectors     per sample: the prompt and full-sample embeddings
//                      (float16), the MinHash signature and the prompt /
//                      reference hashes. Written by the probe with each sample,
//                      so an interrupted probe resumes without recomputing
//                      them; dropped once the run's figures are computed unless
//                      the run keeps its embeddings (--keep-embeddings).
//   sample_similarity  per sample: mean similarity to its k nearest neighbours
//                      under each embedding and their difference, the neighbour
//                      lists, the near-duplicate cluster and its size, and how
//                      many samples share its prompt / its reference exactly.
//   run_similarity     per run: S_input, S_full, ΔS, how the neighbours were
//                      found (exact / approximate with its recall), the
//                      near-duplicate parameters and counts.
//
// Size: the figures and neighbour lists take about 250 bytes per sample and
// run (10,000 samples x 30 checkpoints: about 75 MB) whatever the model's
// dimension; the vectors (2 x d x 2 bytes per sample: 164 MB for 10,000
// samples at d = 4,096) stay only while a run is being probed, or for good
// with --keep-embeddings.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "memskew/store.h"

namespace memskew {

// A run's sample_vectors, in sample_index order.
struct RunVectors {
    int64_t run_id = 0;
    std::vector<std::string> sample_id;
    std::vector<int64_t> sample_index;
    int64_t dim = 0;            // d; 0 when the run has no embeddings
    std::vector<float> prompt;  // [M, d] (empty when dim = 0)
    std::vector<float> full;    // [M, d]
    std::vector<std::vector<uint64_t>> minhash;  // [M][n_permutations]
    std::vector<uint64_t> prompt_hash, reference_hash;
    std::size_t size() const { return sample_id.size(); }
};

// The run row of the similarity figures.
struct RunSimilarity {
    int64_t run_id = 0;
    int64_t n_samples = 0;
    std::string embed_model;       // empty: the model under test
    int64_t embed_dim = 0;         // 0: no embeddings (S, kNN figures absent)
    double s_input = NAN, s_full = NAN, delta_s = NAN;
    int64_t k = 0;                 // neighbours per sample
    std::string knn_method;        // "exact" | "approximate" | "" (no embeddings)
    double knn_recall = NAN;       // approximate: recall@k against exact on a sample
    int64_t knn_recall_queries = 0;
    nlohmann::json near_duplicate_params = nlohmann::json::object();
    int64_t n_clusters = 0;            // near-duplicate clusters of >= 2 samples
    int64_t n_clustered_samples = 0;   // samples in them
    int64_t largest_cluster = 1;
    int64_t n_duplicate_prompts = 0;     // samples whose prompt ids equal another sample's
    int64_t n_duplicate_references = 0;  // samples whose reference ids equal another sample's
    bool vectors_kept = false;
    std::string computed_at;  // ISO 8601 UTC
    double seconds = 0;       // time to compute the figures
};

// One sample's figures.
struct SampleSimilarity {
    std::string sample_id;
    int64_t sample_index = 0;
    // Mean cosine similarity to the k nearest neighbours; NaN without embeddings.
    double knn_sim_prompt = NAN, knn_sim_full = NAN;
    double knn_sim_delta = NAN;  // knn_sim_full - knn_sim_prompt (per-sample ΔS)
    // Neighbours as sample_index values, most similar first, with their similarities.
    std::vector<int32_t> neighbours_prompt, neighbours_full;
    std::vector<float> similarity_prompt, similarity_full;
    int64_t cluster = 0;       // sample_index of the cluster's first sample (its own when alone)
    int64_t cluster_size = 1;
    int64_t prompt_copies = 1;     // samples of the run with exactly this prompt (itself included)
    int64_t reference_copies = 1;  // ... with exactly this reference
};

// Whether the run holds sample_vectors rows (false for a version-1 store).
int64_t count_vectors(const ResultReader& reader, int64_t run_id);
// Loads the run's vectors. FormatError when blobs are damaged or embeddings of
// different dimensions are mixed in the run.
RunVectors load_vectors(const ResultReader& reader, int64_t run_id);
// nullopt when the run's figures were not computed (or the store predates them).
std::optional<RunSimilarity> load_run_similarity(const ResultReader& reader, int64_t run_id);
// The run's per-sample figures in sample_index order (empty when not computed).
std::vector<SampleSimilarity> load_sample_similarity(const ResultReader& reader, int64_t run_id);

// Replaces the run's figures with these (one transaction) and, unless
// run.vectors_kept, deletes its sample_vectors rows (the freed pages are
// reused by later runs; new stores also give them back to the file system).
// InvalidInput for an unknown run or a sample not in the run.
void save_similarity(const std::string& db_path, const RunSimilarity& run,
                     const std::vector<SampleSimilarity>& samples);

// Writes the run's kept embeddings as NumPy files: PREFIX.prompt.npy and
// PREFIX.full.npy (float16, [M, d]) and PREFIX.ids.txt (sample ids, one per
// line, in row order). Returns M. InvalidInput naming the probe option when the
// run holds no embeddings.
int64_t export_embeddings(const ResultReader& reader, int64_t run_id, const std::string& prefix);

}  // namespace memskew
