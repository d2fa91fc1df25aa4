// Per-sample k-nearest neighbours over unit-length embeddings (METHOD M10's
// neighbourhood similarity): cosine similarity is the dot product, so the
// exact search is a blocked matrix product with a running top-k per row, and
// the approximate one an HNSW graph (hnswlib) in inner-product space whose
// recall is measured against the exact lists of a sample of rows.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "memskew/similarity.h"  // EmbeddingMatrix [M, d]

namespace memskew {

struct KnnParams {
    int k = 10;                       // neighbours per row (self excluded); capped at M - 1
    int64_t exact_limit = 200000;     // nearest_neighbours(): exact up to this many rows, approximate beyond
    int hnsw_m = 16;                  // hnswlib graph degree
    int hnsw_ef_construction = 200;
    int hnsw_ef_search = 100;         // raised to at least k
    int64_t recall_queries = 1000;    // approximate: rows whose approximate lists are checked against exact kNN
    uint64_t seed = 1;                // hnswlib level generator and the recall sample
    int threads = 0;                  // 0: all hardware threads
};

struct KnnResult {
    int64_t n = 0;                    // M rows
    int k = 0;                        // neighbours per row actually found (min(params.k, M - 1))
    std::vector<int32_t> index;       // [M, k] neighbour row numbers, most similar first; ties: smaller row first
    std::vector<float> similarity;    // [M, k] dot products, non-increasing along each row
    bool approximate = false;
    double recall = NAN;              // approximate: mean recall@k over recall_queries sampled rows against exact; exact: 1
    int64_t recall_queries = 0;
    double build_seconds = 0;         // approximate: wall-clock seconds building the graph (0 for exact)
    double query_seconds = 0;         // wall-clock seconds finding every row's list (recall check excluded)
    // Mean of row i's k similarities (what M10 calls the neighbourhood similarity).
    std::vector<double> mean_similarity() const;
};

// Exact kNN of every row: blocked single-precision products (CBLAS sgemm),
// each pair of rows computed once and offered to both rows' top-k, so the
// cost is M² d multiply-adds and the memory O(M k) beyond the input. The
// output depends on the similarities only, not on params.threads (which
// parallelises the selection; the BLAS threads itself).
KnnResult exact_knn(const EmbeddingMatrix& e, const KnnParams& params = {});
// Approximate kNN of every row: an hnswlib graph in inner-product space (rows
// added in parallel on params.threads threads, so the graph, and the lists,
// may differ from run to run beyond one thread), each row queried for k + 1
// neighbours and itself dropped. recall is measured on params.recall_queries
// rows drawn from params.seed (all rows when fewer) against exact_knn_of.
KnnResult approximate_knn(const EmbeddingMatrix& e, const KnnParams& params = {});
// exact_knn when e.n <= params.exact_limit, else approximate_knn.
KnnResult nearest_neighbours(const EmbeddingMatrix& e, const KnnParams& params = {});

// Exact top-k of a few query rows against all rows (used for recall); rows
// listed in `queries` (row numbers of e). The result holds one list per query,
// in the order given: n = queries.size(), row r of index/similarity is query
// queries[r]'s list (its own row excluded).
KnnResult exact_knn_of(const EmbeddingMatrix& e, const std::vector<int64_t>& queries, const KnnParams& params = {});

}  // namespace memskew
