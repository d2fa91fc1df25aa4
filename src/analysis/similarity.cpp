// Global inter-sample similarity (see include/memskew/similarity.h).
#include "memskew/similarity.h"

#include <fmt/format.h>

#include <cmath>

#include "memskew/error.h"

namespace memskew {

namespace {

void check_shape(const EmbeddingMatrix& e) {
    if (e.n < 0 || e.dim <= 0 || static_cast<int64_t>(e.values.size()) != e.n * e.dim)
        throw InvalidInput(fmt::format("embedding matrix of {} x {} holds {} values", e.n, e.dim, e.values.size()));
}

}  // namespace

void normalize_rows(EmbeddingMatrix& e) {
    check_shape(e);
    for (int64_t i = 0; i < e.n; ++i) {
        float* r = e.values.data() + i * e.dim;
        double ss = 0;
        for (int64_t k = 0; k < e.dim; ++k) ss += static_cast<double>(r[k]) * r[k];
        if (!(ss > 0) || !std::isfinite(ss))
            throw InvalidInput(fmt::format("embedding {} has norm {}: it cannot be normalised", i, std::sqrt(ss)),
                               "an all-zero or non-finite hidden state points at a broken model or input");
        const double inv = 1.0 / std::sqrt(ss);
        for (int64_t k = 0; k < e.dim; ++k) r[k] = static_cast<float>(r[k] * inv);
    }
}

double mean_pairwise_cosine(const EmbeddingMatrix& e) {
    check_shape(e);
    if (e.n < 2)
        throw InvalidInput(fmt::format("mean pairwise similarity needs at least 2 embeddings, got {}", e.n));
    std::vector<double> sum(static_cast<size_t>(e.dim), 0.0);  // [d]
    double self = 0;                                            // Σ ||e_i||²
    for (int64_t i = 0; i < e.n; ++i) {
        const float* r = e.row(i);
        for (int64_t k = 0; k < e.dim; ++k) {
            sum[static_cast<size_t>(k)] += r[k];
            self += static_cast<double>(r[k]) * r[k];
        }
    }
    double total = 0;  // ||Σ e_i||²
    for (double s : sum) total += s * s;
    const double pairs = static_cast<double>(e.n) * static_cast<double>(e.n - 1);  // ordered pairs i ≠ j
    return (total - self) / pairs;
}

}  // namespace memskew
