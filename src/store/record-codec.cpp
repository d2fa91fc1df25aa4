// SampleRecords as bytes: how the ranks of a distributed probe hand their
// results to rank 0, the store's one writer. CBOR (nlohmann/json) carries the
// structure; every array travels as a binary blob in the store's own packed
// little-endian encodings (records.cpp), so floats arrive bit for bit and the
// stored rows are those a one-process run writes. Embeddings travel as
// float32 (the writer rounds them to float16 as it would locally).
#include <fmt/format.h>

#include "memskew/error.h"
#include "store-impl.h"

namespace memskew {

namespace {

using json = nlohmann::json;

json blob(const std::string& bytes) { return json::binary(std::vector<uint8_t>(bytes.begin(), bytes.end())); }

// The bytes of a binary field; FormatError when the field is missing or not binary.
const std::vector<uint8_t>& blob_of(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_binary())
        throw FormatError(fmt::format("sample record bytes: field '{}' missing or not binary", key),
                          "the ranks of one job must run the same memskew build");
    return it->get_binary();
}

template <typename Decode>
auto decode_blob(const json& j, const char* key, Decode decode) {
    const auto& b = blob_of(j, key);
    return decode(b.data(), b.size());
}

json optional_text(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }
std::optional<std::string> text_of(const json& j) {
    if (j.is_null()) return std::nullopt;
    return j.get<std::string>();
}

json metrics_json(const MetricsRow& m) {
    json o = json::object();
    for (const auto& c : store_detail::metric_columns()) {
        if (c.as_int && m.*c.as_int) o[c.name] = *(m.*c.as_int);
        if (c.as_bool && m.*c.as_bool) o[c.name] = *(m.*c.as_bool);
        if (c.as_real && m.*c.as_real) o[c.name] = *(m.*c.as_real);
    }
    o["extra"] = m.extra;
    return o;
}

MetricsRow metrics_from(const json& o) {
    MetricsRow m;
    for (const auto& c : store_detail::metric_columns()) {
        const auto it = o.find(c.name);
        if (it == o.end()) continue;
        if (c.as_int) m.*c.as_int = it->get<int64_t>();
        if (c.as_bool) m.*c.as_bool = it->get<bool>();
        if (c.as_real) m.*c.as_real = it->get<double>();
    }
    m.extra = o.at("extra");
    return m;
}

json record_json(const SampleRecord& r) {
    json o;
    o["id"] = r.sample_id;
    o["index"] = r.sample_index;
    o["prompt_tokens"] = r.prompt_tokens;
    o["reference_tokens"] = r.reference_tokens;
    o["truncated"] = r.truncated;
    o["prompt_text"] = optional_text(r.prompt_text);
    o["reference_text"] = optional_text(r.reference_text);
    o["generated_text"] = optional_text(r.generated_text);
    o["metrics"] = metrics_json(r.metrics);
    if (r.tokens) {
        const StoredTokens& t = *r.tokens;
        json tj;
        tj["match"] = blob(encode_u8(t.match));
        tj["argmax"] = blob(encode_i32(t.argmax));
        tj["logprob"] = blob(encode_f32(t.logprob));
        tj["rank"] = blob(encode_i32(t.rank));
        tj["entropy"] = blob(encode_f32(t.entropy));
        tj["logprob_sampling"] = blob(encode_f32(t.logprob_sampling));
        tj["reference"] = blob(encode_i32(t.reference));
        if (t.generated) tj["generated"] = blob(encode_i32(*t.generated));
        o["tokens"] = std::move(tj);
    }
    if (r.vectors) {
        const SampleVectors& v = *r.vectors;
        json vj;
        vj["prompt_embedding"] = blob(encode_f32(v.prompt_embedding));
        vj["full_embedding"] = blob(encode_f32(v.full_embedding));
        vj["minhash"] = blob(store_detail::encode_u64(v.minhash));
        vj["prompt_hash"] = v.prompt_hash;
        vj["reference_hash"] = v.reference_hash;
        o["vectors"] = std::move(vj);
    }
    return o;
}

SampleRecord record_from(const json& o) {
    SampleRecord r;
    r.sample_id = o.at("id").get<std::string>();
    r.sample_index = o.at("index").get<int64_t>();
    r.prompt_tokens = o.at("prompt_tokens").get<int64_t>();
    r.reference_tokens = o.at("reference_tokens").get<int64_t>();
    r.truncated = o.at("truncated").get<bool>();
    r.prompt_text = text_of(o.at("prompt_text"));
    r.reference_text = text_of(o.at("reference_text"));
    r.generated_text = text_of(o.at("generated_text"));
    r.metrics = metrics_from(o.at("metrics"));
    if (const auto it = o.find("tokens"); it != o.end()) {
        const json& tj = *it;
        StoredTokens t;
        t.match = decode_blob(tj, "match", decode_u8);
        t.argmax = decode_blob(tj, "argmax", decode_i32);
        t.logprob = decode_blob(tj, "logprob", decode_f32);
        t.rank = decode_blob(tj, "rank", decode_i32);
        t.entropy = decode_blob(tj, "entropy", decode_f32);
        t.logprob_sampling = decode_blob(tj, "logprob_sampling", decode_f32);
        t.reference = decode_blob(tj, "reference", decode_i32);
        if (tj.contains("generated")) t.generated = decode_blob(tj, "generated", decode_i32);
        r.tokens = std::move(t);
    }
    if (const auto it = o.find("vectors"); it != o.end()) {
        const json& vj = *it;
        SampleVectors v;
        v.prompt_embedding = decode_blob(vj, "prompt_embedding", decode_f32);
        v.full_embedding = decode_blob(vj, "full_embedding", decode_f32);
        v.minhash = decode_blob(vj, "minhash", store_detail::decode_u64);
        v.prompt_hash = vj.at("prompt_hash").get<uint64_t>();
        v.reference_hash = vj.at("reference_hash").get<uint64_t>();
        r.vectors = std::move(v);
    }
    return r;
}

}  // namespace

std::string encode_sample_records(const std::vector<SampleRecord>& records) {
    json arr = json::array();
    for (const auto& r : records) arr.push_back(record_json(r));
    const std::vector<uint8_t> bytes = json::to_cbor(arr);
    return std::string(bytes.begin(), bytes.end());
}

std::vector<SampleRecord> decode_sample_records(const std::string& bytes) {
    try {
        const json arr = json::from_cbor(bytes);
        if (!arr.is_array()) throw FormatError("sample record bytes: not an array of records");
        std::vector<SampleRecord> out;
        out.reserve(arr.size());
        for (const auto& o : arr) out.push_back(record_from(o));
        return out;
    } catch (const json::exception& e) {
        throw FormatError(fmt::format("sample record bytes are malformed: {}", e.what()),
                          "the ranks of one job must run the same memskew build");
    }
}

}  // namespace memskew
