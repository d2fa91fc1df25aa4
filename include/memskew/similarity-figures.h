// A run's similarity figures (METHOD M10, data side of M12) from its stored
// per-sample vectors: global S_input / S_full / ΔS, each sample's k nearest
// neighbours under the prompt and the full-sample embedding, near-duplicate
// clusters from the MinHash signatures, and exact duplicate prompts and
// references from their hashes. The result is what store-similarity.h saves.
#pragma once

#include "memskew/knn.h"
#include "memskew/near-duplicates.h"
#include "memskew/store-similarity.h"

namespace memskew {

struct SimilarityParams {
    KnnParams knn;                          // k = 10; exact up to knn.exact_limit samples
    NearDuplicateParams near_duplicates;    // must match the signatures' permutations
};

struct SimilarityFigures {
    RunSimilarity run;  // embed_model and vectors_kept left for the caller
    std::vector<SampleSimilarity> samples;  // in the vectors' (sample_index) order
};

// InvalidInput for a run without vectors; the kNN figures are NaN (and
// knn_method empty) when the run has no embeddings or a single sample.
SimilarityFigures compute_similarity_figures(const RunVectors& vectors, const SimilarityParams& params = {});

}  // namespace memskew
