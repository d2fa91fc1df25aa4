// Per-sample k-nearest neighbours (see include/memskew/knn.h).
#include "memskew/knn.h"

#include <cblas.h>
#include <fmt/format.h>
// Header-only, and it defines non-inline functions (cpuid, xgetbv): include it
// in this one translation unit only.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "memskew/error.h"

// One copy per instruction set, chosen at load time (GCC function multiversioning).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MEMSKEW_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define MEMSKEW_CLONES
#endif

namespace memskew {

namespace {

// Block sizes of the exact search. A [2048, d] x [d, 4096] product keeps
// OpenBLAS near its peak, and the [2048, 4096] block of similarities (32 MiB)
// is read twice by the selection, which costs a few per cent of the product.
constexpr int64_t kRowBlock = 2048;
constexpr int64_t kColBlock = 4096;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int resolve_threads(int threads) {
    if (threads > 0) return threads;
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Runs fn(begin, end) over [0, count) split into `threads` contiguous chunks,
// the first on the calling thread. Rethrows the first exception.
template <typename Fn>
void parallel_chunks(int threads, int64_t count, Fn&& fn) {
    const int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, count));
    if (t == 1) {
        if (count > 0) fn(int64_t{0}, count);
        return;
    }
    std::vector<std::thread> pool;
    std::exception_ptr error;
    std::mutex error_mutex;
    auto run = [&](int64_t b, int64_t e) {
        try {
            fn(b, e);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    };
    for (int64_t c = 1; c < t; ++c) pool.emplace_back(run, count * c / t, count * (c + 1) / t);
    run(0, count / t);
    for (auto& th : pool) th.join();
    if (error) std::rethrow_exception(error);
}

void validate(const EmbeddingMatrix& e, const KnnParams& p) {
    if (e.dim < 1)
        throw InvalidInput(fmt::format("nearest neighbours need an embedding dimension of at least 1, got {}", e.dim),
                           "the embeddings are empty: was the model's hidden size read?");
    if (e.n < 0 || static_cast<int64_t>(e.values.size()) != e.n * e.dim)
        throw InvalidInput(fmt::format("embedding matrix of {} x {} holds {} values", e.n, e.dim, e.values.size()),
                           "values must hold n * dim floats, row after row");
    if (e.n < 2)
        throw InvalidInput(fmt::format("nearest neighbours need at least 2 embeddings, got {}", e.n),
                           "a row's neighbours are the other rows");
    if (e.n > std::numeric_limits<int32_t>::max())
        throw InvalidInput(fmt::format("nearest neighbours support at most {} embeddings, got {}",
                                       std::numeric_limits<int32_t>::max(), e.n),
                           "neighbour row numbers are stored as 32-bit integers");
    if (p.k < 1)
        throw InvalidInput(fmt::format("nearest neighbours need k of at least 1, got {}", p.k),
                           "k is the number of neighbours per row, itself excluded");
    if (p.hnsw_m < 2 || p.hnsw_ef_construction < 1 || p.hnsw_ef_search < 1)
        throw InvalidInput(fmt::format("HNSW parameters out of range: M {}, ef_construction {}, ef_search {}",
                                       p.hnsw_m, p.hnsw_ef_construction, p.hnsw_ef_search),
                           "M must be at least 2 and the ef values at least 1 (hnswlib's defaults: 16, 200, 10)");
    if (p.recall_queries < 0)
        throw InvalidInput(fmt::format("recall_queries must not be negative, got {}", p.recall_queries));
    // A NaN would never enter a top-k (every comparison with it is false), and
    // rows would come back short: refuse it here, naming the row.
    for (int64_t i = 0; i < e.n; ++i) {
        const float* r = e.row(i);
        for (int64_t c = 0; c < e.dim; ++c)
            if (!std::isfinite(r[c]))
                throw InvalidInput(fmt::format("embedding {} holds a non-finite value ({}) at {}", i, r[c], c),
                                   "a non-finite hidden state points at a broken model or input");
    }
}

int effective_k(const EmbeddingMatrix& e, const KnnParams& p) {
    return static_cast<int>(std::min<int64_t>(p.k, e.n - 1));
}

// The top-k lists of `rows` rows, each kept sorted by (similarity descending,
// row ascending), a strict total order: the final lists depend on the offered
// candidates only, not on the order they arrive in (so neither on the block
// order nor on the threads). thr[r] is the k-th similarity once the list is
// full (-inf before): a candidate below it is rejected by one comparison,
// which is what almost every candidate meets.
struct TopLists {
    int k = 0;
    std::vector<float> sim;     // [rows, k]
    std::vector<int32_t> idx;   // [rows, k]
    std::vector<int32_t> count; // [rows]
    std::vector<float> thr;     // [rows]

    TopLists(int64_t rows, int k_)
        : k(k_), sim(static_cast<size_t>(rows * k_)), idx(static_cast<size_t>(rows * k_)),
          count(static_cast<size_t>(rows), 0), thr(static_cast<size_t>(rows), -std::numeric_limits<float>::infinity()) {}

    // Row r's candidate j of similarity v (the caller has checked v >= thr[r]).
    void offer(int64_t r, float v, int32_t j) {
        float* s = sim.data() + r * k;
        int32_t* ix = idx.data() + r * k;
        int32_t& c = count[static_cast<size_t>(r)];
        int pos;
        if (c == k) {
            if (v < s[k - 1] || (v == s[k - 1] && j > ix[k - 1])) return;
            pos = k - 1;
        } else {
            pos = c++;
        }
        while (pos > 0 && (s[pos - 1] < v || (s[pos - 1] == v && ix[pos - 1] > j))) {
            s[pos] = s[pos - 1];
            ix[pos] = ix[pos - 1];
            --pos;
        }
        s[pos] = v;
        ix[pos] = j;
        if (c == k) thr[static_cast<size_t>(r)] = s[k - 1];
    }
};

// Row r's candidates c[j0..j1) (row numbers first + j).
inline void scan_row(TopLists& t, int64_t r, const float* c, int64_t j0, int64_t j1, int64_t first) {
    float thr = t.thr[static_cast<size_t>(r)];
    for (int64_t j = j0; j < j1; ++j) {
        if (c[j] >= thr) {
            t.offer(r, c[j], static_cast<int32_t>(first + j));
            thr = t.thr[static_cast<size_t>(r)];
        }
    }
}

// S = A B^T for A [m, d], B [n, d] (rows of stride d): S [m, n].
void similarity_block(const float* a, int64_t m, const float* b, int64_t n, int64_t d, float* s) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(d),
                1.0f, a, static_cast<int>(d), b, static_cast<int>(d), 0.0f, s, static_cast<int>(n));
}

KnnResult to_result(const TopLists& t, int64_t rows) {
    KnnResult r;
    r.n = rows;
    r.k = t.k;
    r.index = t.idx;
    r.similarity = t.sim;
    return r;
}

// ---- approximate: hnswlib ---------------------------------------------------

MEMSKEW_CLONES float dot(const float* a, const float* b, size_t n) {
    typedef float v8 __attribute__((vector_size(32)));
    v8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        v8 x0, x1, x2, x3, y0, y1, y2, y3;
        std::memcpy(&x0, a + i, 32), std::memcpy(&y0, b + i, 32);
        std::memcpy(&x1, a + i + 8, 32), std::memcpy(&y1, b + i + 8, 32);
        std::memcpy(&x2, a + i + 16, 32), std::memcpy(&y2, b + i + 16, 32);
        std::memcpy(&x3, a + i + 24, 32), std::memcpy(&y3, b + i + 24, 32);
        s0 += x0 * y0, s1 += x1 * y1, s2 += x2 * y2, s3 += x3 * y3;
    }
    const v8 s = (s0 + s1) + (s2 + s3);
    float r = 0;
    for (int t = 0; t < 8; ++t) r += s[t];
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
}

float unit_dot_distance(const void* a, const void* b, const void* dim) {
    return 1.0f - dot(static_cast<const float*>(a), static_cast<const float*>(b), *static_cast<const size_t*>(dim));
}

// hnswlib's inner-product space (distance 1 - a.b) with the dot product
// vectorised for the running CPU: hnswlib picks its SIMD at compile time, and
// this library is built for baseline x86-64 (SSE only), where the 768-float
// products are a large part of the graph's build.
class UnitDotSpace : public hnswlib::SpaceInterface<float> {
public:
    explicit UnitDotSpace(size_t dim) : dim_(dim) {}
    size_t get_data_size() override { return dim_ * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return unit_dot_distance; }
    void* get_dist_func_param() override { return &dim_; }

private:
    size_t dim_;
};

// `count` rows of [0, n) drawn without replacement from seed, ascending (all
// rows when count >= n).
std::vector<int64_t> sample_rows(int64_t n, int64_t count, uint64_t seed) {
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), int64_t{0});
    if (count >= n) return all;
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < count; ++i) {  // partial Fisher-Yates
        const int64_t j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(n - i));
        std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
    }
    all.resize(static_cast<size_t>(count));
    std::sort(all.begin(), all.end());
    return all;
}

// Mean recall@k of approx's lists for `queries` against exact (one list per
// query, as exact_knn_of returns). A neighbour counts when it is in the exact
// list, or when its similarity reaches the exact k-th one (within float
// rounding of the two products): a tie at the boundary is not a miss.
double recall_at_k(const KnnResult& approx, const std::vector<int64_t>& queries, const KnnResult& exact) {
    const int k = exact.k;
    double sum = 0;
    for (size_t q = 0; q < queries.size(); ++q) {
        const int32_t* want = exact.index.data() + q * k;
        const float kth = exact.similarity[q * k + k - 1];
        const size_t r = static_cast<size_t>(queries[q]);
        int hits = 0;
        for (int c = 0; c < k; ++c) {
            const int32_t got = approx.index[r * k + c];
            if (std::find(want, want + k, got) != want + k || approx.similarity[r * k + c] >= kth - 1e-6f) ++hits;
        }
        sum += static_cast<double>(hits) / k;
    }
    return sum / static_cast<double>(queries.size());
}

}  // namespace

std::vector<double> KnnResult::mean_similarity() const {
    std::vector<double> m(static_cast<size_t>(n), NAN);
    if (k < 1) return m;
    for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int c = 0; c < k; ++c) s += similarity[static_cast<size_t>(i * k + c)];
        m[static_cast<size_t>(i)] = s / k;
    }
    return m;
}

KnnResult exact_knn(const EmbeddingMatrix& e, const KnnParams& params) {
    validate(e, params);
    const auto t0 = Clock::now();
    const int threads = resolve_threads(params.threads);
    const int64_t n = e.n, d = e.dim;
    TopLists top(n, effective_k(e, params));
    std::vector<float> block(static_cast<size_t>(std::min(n, kRowBlock) * std::min(n, kColBlock)));  // [bi, bj]
    // Row block I = [i0, i1) against column blocks J = [j0, j1) with j0 >= i0:
    // pair (i, j) with i < j is computed once and offered to row i (the row
    // pass, rows split over the threads) and to row j (the column pass,
    // columns split over the threads), so no two threads touch one list.
    // The lower triangle of the diagonal square is computed and skipped.
    for (int64_t i0 = 0; i0 < n; i0 += kRowBlock) {
        const int64_t i1 = std::min(n, i0 + kRowBlock), bi = i1 - i0;
        for (int64_t j0 = i0; j0 < n; j0 += kColBlock) {
            const int64_t j1 = std::min(n, j0 + kColBlock), bj = j1 - j0;
            float* s = block.data();
            similarity_block(e.row(i0), bi, e.row(j0), bj, d, s);
            parallel_chunks(threads, bi, [&](int64_t a, int64_t b) {
                for (int64_t i = a; i < b; ++i)
                    scan_row(top, i0 + i, s + i * bj, std::max<int64_t>(0, i0 + i + 1 - j0), bj, j0);
            });
            parallel_chunks(threads, bj, [&](int64_t a, int64_t b) {
                for (int64_t i = 0; i < bi; ++i) {
                    const float* c = s + i * bj;
                    const int32_t row = static_cast<int32_t>(i0 + i);
                    const float* thr = top.thr.data() + j0;
                    for (int64_t j = std::max(a, i0 + i + 1 - j0); j < b; ++j)
                        if (c[j] >= thr[j]) top.offer(j0 + j, c[j], row);
                }
            });
        }
    }
    KnnResult r = to_result(top, n);
    r.recall = 1.0;
    r.query_seconds = seconds_since(t0);
    return r;
}

KnnResult exact_knn_of(const EmbeddingMatrix& e, const std::vector<int64_t>& queries, const KnnParams& params) {
    validate(e, params);
    for (int64_t q : queries)
        if (q < 0 || q >= e.n)
            throw InvalidInput(fmt::format("query row {} is outside the {} embeddings", q, e.n));
    const auto t0 = Clock::now();
    const int threads = resolve_threads(params.threads);
    const int64_t n = e.n, d = e.dim, nq = static_cast<int64_t>(queries.size());
    TopLists top(nq, effective_k(e, params));
    std::vector<float> a(static_cast<size_t>(std::min(nq, kRowBlock) * d));                       // [bq, d]
    std::vector<float> block(static_cast<size_t>(std::min(nq, kRowBlock) * std::min(n, kColBlock)));  // [bq, bj]
    for (int64_t q0 = 0; q0 < nq; q0 += kRowBlock) {
        const int64_t q1 = std::min(nq, q0 + kRowBlock), bq = q1 - q0;
        for (int64_t q = q0; q < q1; ++q)
            std::memcpy(a.data() + (q - q0) * d, e.row(queries[static_cast<size_t>(q)]), sizeof(float) * d);
        for (int64_t j0 = 0; j0 < n; j0 += kColBlock) {
            const int64_t j1 = std::min(n, j0 + kColBlock), bj = j1 - j0;
            float* s = block.data();
            similarity_block(a.data(), bq, e.row(j0), bj, d, s);
            parallel_chunks(threads, bq, [&](int64_t lo, int64_t hi) {
                for (int64_t i = lo; i < hi; ++i) {
                    // Skip the query's own row: the scan around it.
                    const int64_t self = queries[static_cast<size_t>(q0 + i)] - j0;
                    const float* c = s + i * bj;
                    if (self < 0 || self >= bj) {
                        scan_row(top, q0 + i, c, 0, bj, j0);
                    } else {
                        scan_row(top, q0 + i, c, 0, self, j0);
                        scan_row(top, q0 + i, c, self + 1, bj, j0);
                    }
                }
            });
        }
    }
    KnnResult r = to_result(top, nq);
    r.recall = 1.0;
    r.query_seconds = seconds_since(t0);
    return r;
}

KnnResult approximate_knn(const EmbeddingMatrix& e, const KnnParams& params) {
    validate(e, params);
    const int threads = resolve_threads(params.threads);
    const int64_t n = e.n;
    const size_t d = static_cast<size_t>(e.dim);
    const int k = effective_k(e, params);
    auto t0 = Clock::now();
    UnitDotSpace space(d);
    hnswlib::HierarchicalNSW<float> index(&space, static_cast<size_t>(n), static_cast<size_t>(params.hnsw_m),
                                          static_cast<size_t>(params.hnsw_ef_construction),
                                          static_cast<size_t>(params.seed));
    // The first row alone (it becomes the entry point), then the rest in
    // parallel, handed out in small chunks: insertion costs vary with the
    // graph's state. addPoint is thread-safe for distinct labels.
    index.addPoint(e.row(0), 0);
    std::atomic<int64_t> next{1};
    constexpr int64_t kChunk = 64;
    parallel_chunks(threads, threads, [&](int64_t, int64_t) {
        for (int64_t b; (b = next.fetch_add(kChunk)) < n;)
            for (int64_t i = b; i < std::min(n, b + kChunk); ++i) index.addPoint(e.row(i), static_cast<size_t>(i));
    });

    // Query k + 1 and drop the row itself; the similarities are recomputed as
    // dot products (not 1 - distance, which loses low bits) and the lists
    // ordered as the exact ones.
    const double build_seconds = seconds_since(t0);
    t0 = Clock::now();
    index.setEf(static_cast<size_t>(std::max(params.hnsw_ef_search, k + 1)));
    KnnResult r;
    r.build_seconds = build_seconds;
    r.n = n;
    r.k = k;
    r.approximate = true;
    r.index.assign(static_cast<size_t>(n * k), -1);
    r.similarity.assign(static_cast<size_t>(n * k), NAN);
    std::vector<int64_t> short_rows;  // rows the graph returned fewer than k others for
    std::mutex short_mutex;
    next = 0;
    parallel_chunks(threads, threads, [&](int64_t, int64_t) {
        std::vector<std::pair<float, int32_t>> found;
        for (int64_t b; (b = next.fetch_add(kChunk)) < n;)
            for (int64_t i = b; i < std::min(n, b + kChunk); ++i) {
                auto pq = index.searchKnn(e.row(i), static_cast<size_t>(k + 1));
                found.clear();
                for (; !pq.empty(); pq.pop()) {
                    const int32_t j = static_cast<int32_t>(pq.top().second);
                    if (j != i) found.emplace_back(dot(e.row(i), e.row(j), d), j);
                }
                std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) {
                    return x.first > y.first || (x.first == y.first && x.second < y.second);
                });
                if (static_cast<int>(found.size()) < k) {
                    std::lock_guard<std::mutex> lock(short_mutex);
                    short_rows.push_back(i);
                    continue;
                }
                for (int c = 0; c < k; ++c) {
                    r.index[static_cast<size_t>(i * k + c)] = found[static_cast<size_t>(c)].second;
                    r.similarity[static_cast<size_t>(i * k + c)] = found[static_cast<size_t>(c)].first;
                }
            }
    });
    // A graph that returns too few neighbours for a row (possible, rarely,
    // when its links are cut by the heuristic): that row's exact list.
    if (!short_rows.empty()) {
        std::sort(short_rows.begin(), short_rows.end());
        const KnnResult fill = exact_knn_of(e, short_rows, params);
        for (size_t q = 0; q < short_rows.size(); ++q)
            for (int c = 0; c < k; ++c) {
                const size_t to = static_cast<size_t>(short_rows[q] * k + c), from = q * k + static_cast<size_t>(c);
                r.index[to] = fill.index[from];
                r.similarity[to] = fill.similarity[from];
            }
    }

    r.query_seconds = seconds_since(t0);

    if (params.recall_queries > 0) {
        const std::vector<int64_t> queries = sample_rows(n, params.recall_queries, params.seed);
        KnnParams exact_params = params;
        exact_params.k = k;
        const KnnResult exact = exact_knn_of(e, queries, exact_params);
        r.recall = recall_at_k(r, queries, exact);
        r.recall_queries = static_cast<int64_t>(queries.size());
    }
    return r;
}

KnnResult nearest_neighbours(const EmbeddingMatrix& e, const KnnParams& params) {
    return e.n <= params.exact_limit ? exact_knn(e, params) : approximate_knn(e, params);
}

}  // namespace memskew
