// Inter-sample similarity (METHOD M10): sample embeddings and the global
// similarity of a set of samples. S_input is the mean pairwise cosine
// similarity of the prompt embeddings, S_full of the full-sample embeddings,
// and ΔS = S_full − S_input, per run.
#pragma once

#include <cstdint>
#include <vector>

namespace memskew {

// M embeddings of dimension d, row-major. Shape legend: [M, d].
struct EmbeddingMatrix {
    int64_t n = 0;              // M
    int64_t dim = 0;            // d
    std::vector<float> values;  // [M, d]
    const float* row(int64_t i) const { return values.data() + i * dim; }
};

// Scales every row to unit length (in place). InvalidInput naming the first
// row of zero or non-finite norm, or for values.size() != n * dim.
void normalize_rows(EmbeddingMatrix& e);

// Mean cosine similarity over all M (M − 1) / 2 pairs of the rows, assumed of
// unit length (normalize_rows). Exact for any M in O(M d): the sum over pairs
// i ≠ j of e_i · e_j is ||Σ_i e_i||² − Σ_i ||e_i||², so no pair is visited.
// Sums in double. InvalidInput for fewer than two rows.
double mean_pairwise_cosine(const EmbeddingMatrix& e);

}  // namespace memskew
