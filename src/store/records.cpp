// Blob encoding, record helpers and SampleMetrics -> MetricsRow.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "memskew/error.h"
#include "store-impl.h"
#include "util/f16.h"

namespace memskew {

namespace {

static_assert(sizeof(float) == 4, "float32 blobs need a 4-byte float");

// Blobs are little-endian. On a little-endian host (every machine memskew runs
// on today) encoding is a memcpy; the swap keeps big-endian hosts correct.
constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

template <typename T>
std::string encode(const std::vector<T>& values) {
    std::string out(values.size() * sizeof(T), '\0');
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
    if constexpr (!kLittleEndian && sizeof(T) > 1)
        for (std::size_t i = 0; i < out.size(); i += sizeof(T)) std::reverse(out.begin() + i, out.begin() + i + sizeof(T));
    return out;
}

template <typename T>
std::vector<T> decode(const void* data, std::size_t n_bytes, const char* type) {
    if (n_bytes % sizeof(T) != 0)
        throw FormatError(fmt::format("blob of {} bytes is not a whole number of {} values", n_bytes, type),
                          store_detail::kCorruptHint);
    std::vector<T> out(n_bytes / sizeof(T));
    if (n_bytes) std::memcpy(out.data(), data, n_bytes);
    if constexpr (!kLittleEndian && sizeof(T) > 1) {
        auto* bytes = reinterpret_cast<unsigned char*>(out.data());
        for (std::size_t i = 0; i < n_bytes; i += sizeof(T)) std::reverse(bytes + i, bytes + i + sizeof(T));
    }
    return out;
}

std::optional<double> finite_or_inf(double v) {
    if (std::isnan(v)) return std::nullopt;
    return v;
}

// Float arrays compare bitwise so NaN entries round-trip as equal.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool same_double(const std::optional<double>& a, const std::optional<double>& b) {
    if (a.has_value() != b.has_value()) return false;
    if (!a) return true;
    return *a == *b || (std::isnan(*a) && std::isnan(*b));
}

}  // namespace

std::string encode_u8(const std::vector<uint8_t>& values) { return encode(values); }
std::string encode_i32(const std::vector<int32_t>& values) { return encode(values); }
std::string encode_f32(const std::vector<float>& values) { return encode(values); }
std::vector<uint8_t> decode_u8(const void* data, std::size_t n_bytes) { return decode<uint8_t>(data, n_bytes, "uint8"); }
std::vector<int32_t> decode_i32(const void* data, std::size_t n_bytes) { return decode<int32_t>(data, n_bytes, "int32"); }
std::vector<float> decode_f32(const void* data, std::size_t n_bytes) { return decode<float>(data, n_bytes, "float32"); }

namespace store_detail {

std::string encode_f16(const std::vector<float>& values) {
    std::vector<uint16_t> bits(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) bits[i] = float_to_f16(values[i]);
    return encode(bits);
}

std::vector<float> decode_f16(const void* data, std::size_t n_bytes) {
    const auto bits = decode<uint16_t>(data, n_bytes, "float16");
    std::vector<float> out(bits.size());
    for (std::size_t i = 0; i < bits.size(); ++i) out[i] = f16_to_float(bits[i]);
    return out;
}

std::string encode_u64(const std::vector<uint64_t>& values) { return encode(values); }
std::vector<uint64_t> decode_u64(const void* data, std::size_t n_bytes) { return decode<uint64_t>(data, n_bytes, "uint64"); }

}  // namespace store_detail

bool MetricsRow::operator==(const MetricsRow& o) const {
    for (const auto& c : store_detail::metric_columns()) {
        if (c.as_int && this->*c.as_int != o.*c.as_int) return false;
        if (c.as_bool && this->*c.as_bool != o.*c.as_bool) return false;
        if (c.as_real && !same_double(this->*c.as_real, o.*c.as_real)) return false;
    }
    return extra == o.extra;
}

nlohmann::json metrics_row_json(const MetricsRow& row) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& c : store_detail::metric_columns()) {
        auto& v = j[c.name];
        if (c.as_int && row.*c.as_int) v = *(row.*c.as_int);
        else if (c.as_bool && row.*c.as_bool) v = *(row.*c.as_bool);
        else if (c.as_real && row.*c.as_real && std::isfinite(*(row.*c.as_real))) v = *(row.*c.as_real);
        else v = nullptr;
    }
    j["extra_json"] = row.extra.is_null() ? nlohmann::json() : row.extra;
    return j;
}

bool StoredTokens::operator==(const StoredTokens& o) const {
    return match == o.match && argmax == o.argmax && same_bits(logprob, o.logprob) && rank == o.rank &&
           same_bits(entropy, o.entropy) && same_bits(logprob_sampling, o.logprob_sampling) &&
           reference == o.reference && generated == o.generated;
}

bool SampleRecord::operator==(const SampleRecord& o) const {
    return sample_id == o.sample_id && sample_index == o.sample_index && prompt_tokens == o.prompt_tokens &&
           reference_tokens == o.reference_tokens && truncated == o.truncated && prompt_text == o.prompt_text &&
           reference_text == o.reference_text && generated_text == o.generated_text && metrics == o.metrics &&
           tokens == o.tokens;
}

MetricsRow to_metrics_row(const SampleMetrics& m, const std::vector<double>* log_survival) {
    MetricsRow r;
    r.n_pre = m.prefix.n_pre;
    r.length = m.prefix.length;
    r.exact = m.prefix.exact;
    r.n_pre_frac = finite_or_inf(m.prefix.fraction);
    r.log_p_full_t1 = finite_or_inf(m.log_p_full_t1);
    r.expected_n_pre_t1 = finite_or_inf(m.expected_n_pre_t1);
    r.log_p_z = finite_or_inf(m.log_p_z);
    r.expected_n_pre = finite_or_inf(m.expected_n_pre);
    r.log_p_extract_n = finite_or_inf(m.log_p_extracted);
    r.log_tries = finite_or_inf(m.log_tries);
    r.loss = finite_or_inf(m.nll_mean);
    r.perplexity = finite_or_inf(m.perplexity);
    r.min_k_prob = finite_or_inf(m.min_k_prob);
    r.min_k_plus_plus = finite_or_inf(m.min_k_plus_plus);
    r.zlib_ratio = finite_or_inf(m.zlib_ratio);
    r.mean_entropy = finite_or_inf(m.mean_entropy);
    if (log_survival) {
        const auto& s = *log_survival;
        auto at = [&](std::size_t k) { return s.size() >= k ? finite_or_inf(s[k - 1]) : std::nullopt; };
        r.log_p_ge_5 = at(5);
        r.log_p_ge_10 = at(10);
        r.log_p_ge_20 = at(20);
        r.log_p_ge_50 = at(50);
    }
    if (m.generation) {
        const auto& g = *m.generation;
        r.n_pre_generated = g.n_pre_generated;
        r.gen_exact = g.exact_match;
        r.rouge1 = g.rouge1.f1;
        r.rouge2 = g.rouge2.f1;
        r.rouge_l = g.rouge_l.f1;
        r.lev_tokens = static_cast<int64_t>(g.levenshtein_tokens);
        r.lev_sim_tokens = finite_or_inf(g.levenshtein_similarity_tokens);
        if (g.levenshtein_chars) r.lev_chars = static_cast<int64_t>(*g.levenshtein_chars);
        if (g.levenshtein_similarity_chars) r.lev_sim_chars = finite_or_inf(*g.levenshtein_similarity_chars);
        r.pythia_score = finite_or_inf(g.pythia_score);
        r.k_extractable = g.k_extractable;
        r.gen_lcs = static_cast<int64_t>(g.longest_common_substring);
        r.gen_approx = g.approximately_memorized;
        r.gen_mean_logprob = finite_or_inf(g.mean_logprob);
    }
    if (m.guarded) {
        const auto& g = *m.guarded;
        r.guard_n_pre = g.n_pre_generated;
        r.guard_exact = g.exact_match;
        r.guard_rouge_l = g.rouge_l.f1;
        r.guard_lev_sim_tokens = finite_or_inf(g.levenshtein_similarity_tokens);
        r.guard_lcs = static_cast<int64_t>(g.longest_common_substring);
        r.guard_approx = g.approximately_memorized;
        r.guard_blocked = g.n_blocked;
        r.guard_mean_logprob = finite_or_inf(g.mean_logprob);
    }
    return r;
}

const std::vector<std::string>& metric_column_names() {
    static const std::vector<std::string> kNames = [] {
        std::vector<std::string> n;
        for (const auto& c : store_detail::metric_columns()) n.emplace_back(c.name);
        return n;
    }();
    return kNames;
}

const std::vector<double>& RunColumns::metric(std::string_view name) const {
    for (std::size_t i = 0; i < metric_names.size(); ++i)
        if (metric_names[i] == name) return metric_values[i];
    throw InvalidInput(fmt::format("unknown metric column '{}'", name),
                       "see docs/store-schema.md for the metric column names");
}

}  // namespace memskew
