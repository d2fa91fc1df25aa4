// Near-duplicate samples (METHOD M10, the data side of risk): MinHash
// signatures of token 5-gram sets, locality-sensitive hashing in bands to
// find candidate pairs, each candidate kept when its estimated Jaccard
// similarity reaches the threshold, and clusters as the connected components
// of the kept pairs (union-find).
//
// Parameters in the spirit of text-dedup and datatrove: 5-gram shingles, 128
// permutations in 16 bands of 8 rows. Two sets of Jaccard similarity s share
// at least one band with probability 1 - (1 - s^8)^16: 0.06 at s = 0.5, 0.48
// at s = 0.67, 0.95 at s = 0.8, 0.9999 at s = 0.9; the threshold (0.7 by
// default) then drops the candidates whose signatures agree on fewer than 70%
// of the permutations.
//
// Deterministic in seed; no model needed (token ids in, clusters out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memskew {

struct NearDuplicateParams {
    int shingle = 5;          // tokens per shingle; shorter documents are one shingle
    int n_permutations = 128;
    int n_bands = 16;         // must divide n_permutations
    double threshold = 0.7;   // least estimated Jaccard similarity of a kept pair
    uint64_t seed = 1;
};

// MinHash signature of a token sequence's shingle set: for each permutation
// h_i(x) = (a_i * x + b_i) mod (2^61 - 1) of the shingle's 64-bit hash, the
// minimum over the shingles. An empty sequence gives all-maximum values.
std::vector<uint64_t> minhash_signature(const std::vector<int32_t>& tokens, const NearDuplicateParams& params = {});
// Share of permutations on which two signatures agree: an unbiased estimate
// of the Jaccard similarity of the two shingle sets.
double estimated_jaccard(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b);
// |A ∩ B| / |A ∪ B| of the two shingle sets, computed exactly.
double exact_jaccard(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int shingle = 5);

struct NearDuplicateClusters {
    // Per document: its cluster (the smallest document index in it) and the
    // cluster's size (1 for a document with no near-duplicate).
    std::vector<int64_t> cluster;
    std::vector<int64_t> cluster_size;
    int64_t n_candidate_pairs = 0;  // pairs sharing a band (each counted once)
    int64_t n_kept_pairs = 0;       // candidates at or above the threshold
    int64_t n_clusters = 0;         // clusters of two or more documents
};

// Clusters the documents. Throws InvalidInput for inconsistent parameters.
NearDuplicateClusters near_duplicate_clusters(const std::vector<std::vector<int32_t>>& documents,
                                              const NearDuplicateParams& params = {});
// The same from signatures computed earlier with minhash_signature() and the
// same params (the probe stores them per sample; clusters form once the whole
// run is there). InvalidInput for a signature of the wrong length.
NearDuplicateClusters near_duplicate_clusters_of_signatures(const std::vector<std::vector<uint64_t>>& signatures,
                                                            const NearDuplicateParams& params = {});

}  // namespace memskew
