// Model -> Hugging Face folder: config.json, model.safetensors and the
// tokenizer (tokenizer.json + tokenizer_config.json).
//
// A tokenizer that came from a tokenizer.json is copied with its side files.
// A GGUF vocabulary is converted the way transformers / llama.cpp convert
// them, so that tokenizer.json gives the same ids as the GGUF tokenizer:
//   - `llama` (SentencePiece): BPE with byte_fallback over the pieces; merges
//     are every split of a piece into two vocabulary pieces, ordered by the
//     merged piece's score, highest first (transformers' SentencePieceExtractor).
//     Merging the lowest-ranked pair is then merging the highest-scoring
//     piece, which is what SentencePiece BPE does.
//   - `gpt2` (byte-level): BPE over the ranked merges with the GPT-2 ByteLevel
//     pre-tokenizer.
// Everything is written to a temporary folder that is renamed into place, so
// a failure never leaves a half-written model.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "memskew/hf-config.h"
#include "memskew/file-io.h"
#include "memskew/safetensors.h"
#include "model/arch/arch.h"
#include "model/model-impl.h"

namespace memskew {

namespace fs = std::filesystem;
// Sorted keys (std::map): ordered_json looks keys up linearly, quadratic for
// 150k-token vocabularies, and no reader cares about key order.
using Json = nlohmann::json;

namespace {

constexpr const char* kSpaceMarker = "\xE2\x96\x81";  // "▁"

HfConfig hf_config_for(const ModelConfig& c, const Vocab& v, GgmlType stored) {
    const ArchSpec& spec = arch_spec(c.arch);
    HfConfig h;
    h.arch = spec.key;
    h.vocab_size = c.n_vocab;
    h.hidden_size = c.dim;
    h.num_hidden_layers = c.n_layers;
    h.num_attention_heads = c.n_heads;
    h.num_key_value_heads = c.n_kv_heads;
    h.head_dim = c.head_dim();
    h.intermediate_size = c.ffn_dim;
    h.max_position_embeddings = c.max_ctx;
    h.norm_eps = c.norm_eps;
    h.hidden_act = c.hidden_act;
    h.tie_word_embeddings = c.tied_output;
    h.qkv_bias = c.qkv_bias;
    h.o_bias = c.o_bias;
    h.mlp_bias = c.mlp_bias;
    h.attention_bias = c.qkv_bias;
    h.use_parallel_residual = c.parallel_residual;
    if (!spec.learned_positions) {
        h.rope_theta = c.rope_base;
        h.partial_rotary_factor = c.rotary_pct;
        if (c.rope_scaling == "linear" || c.rope_scaling == "llama3") {
            HfRopeScaling rs;
            rs.type = c.rope_scaling;
            rs.factor = c.rope_factor;
            if (c.rope_scaling == "llama3") {
                rs.low_freq_factor = c.rope_low_freq_factor;
                rs.high_freq_factor = c.rope_high_freq_factor;
                rs.original_max_position_embeddings = c.rope_original_ctx;
            }
            h.rope_scaling = rs;
        } else if (!c.rope_scaling.empty()) {
            throw InvalidInput(fmt::format("rope scaling '{}' has no config.json form", c.rope_scaling));
        }
    } else {
        h.rope_theta = 0.0;
        h.partial_rotary_factor = 0.0;
    }
    spec.to_hf(c, h);  // the class, and what only the family sets
    h.torch_dtype = stored == GgmlType::kF16 ? "float16" : stored == GgmlType::kBF16 ? "bfloat16" : "float32";
    if (v.bos >= 0) h.bos_token_ids = {v.bos};
    if (v.eos >= 0) h.eos_token_ids = {v.eos};
    if (v.pad >= 0) h.pad_token_id = v.pad;
    return h;
}

TokenType type_of(const Vocab& v, size_t id) {
    return v.types.empty() ? TokenType::kNormal : static_cast<TokenType>(v.types[id]);
}

// Control and user-defined tokens are matched in the raw text by HF
// tokenizers (added_tokens), as llama.cpp does with special-token parsing.
Json added_tokens(const Vocab& v) {
    Json list = Json::array();
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        const TokenType t = type_of(v, id);
        if (t != TokenType::kControl && t != TokenType::kUnknown && t != TokenType::kUserDefined) continue;
        if (v.tokens[id].empty()) continue;
        list.push_back({{"id", id},
                        {"content", v.tokens[id]},
                        {"single_word", false},
                        {"lstrip", false},
                        {"rstrip", false},
                        {"normalized", false},
                        {"special", t != TokenType::kUserDefined}});
    }
    return list;
}

Json special_token_ref(const std::string& name, int type_id) {
    return {{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
}
Json sequence_ref(const char* id, int type_id) { return {{"Sequence", {{"id", id}, {"type_id", type_id}}}}; }

// What encode(add_special_tokens=True) adds: BOS before / EOS after, per the vocabulary's flags.
Json template_processor(const Vocab& v) {
    const bool bos = v.add_bos && v.bos >= 0, eos = v.add_eos && v.eos >= 0;
    Json single = Json::array(), pair = Json::array(), specials = Json::object();
    auto add_special = [&](int32_t id) {
        const std::string& name = v.tokens[static_cast<size_t>(id)];
        specials[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
    };
    if (bos) add_special(v.bos);
    if (eos) add_special(v.eos);
    for (int seq = 0; seq < 2; ++seq) {
        Json& out = seq == 0 ? single : pair;
        for (int part = 0; part <= seq; ++part) {
            if (bos) out.push_back(special_token_ref(v.tokens[static_cast<size_t>(v.bos)], part));
            out.push_back(sequence_ref(part == 0 ? "A" : "B", part));
            if (eos) out.push_back(special_token_ref(v.tokens[static_cast<size_t>(v.eos)], part));
        }
    }
    return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

Json model_vocab(const Vocab& v) {
    Json vocab = Json::object();
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        const std::string& piece = v.tokens[id];
        if (piece.empty()) continue;  // damaged entry: never produced (see hf-tokenizer-json.cpp)
        if (vocab.contains(piece)) {
            throw InvalidInput(fmt::format("token '{}' appears twice in the vocabulary (ids {} and {}); "
                                           "tokenizer.json cannot express that",
                                           piece, vocab[piece].get<int64_t>(), id));
        }
        vocab[piece] = id;
    }
    return vocab;
}

size_t utf8_len(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead >> 5) == 0x6) return 2;
    if ((lead >> 4) == 0xE) return 3;
    if ((lead >> 3) == 0x1E) return 4;
    return 1;  // invalid lead byte: a character of its own
}

// transformers' SentencePieceExtractor.extract(vocab_scores): for every piece,
// every split at a character boundary into two vocabulary pieces (ordered by
// the ids of the parts); all of them sorted stably by the piece's score, highest
// first.
std::vector<std::pair<std::string, std::string>> spm_merges(const Vocab& v) {
    std::unordered_map<std::string, int32_t> id_of;
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        if (!v.tokens[id].empty()) id_of[v.tokens[id]] = static_cast<int32_t>(id);  // later ids win, as in a dict
    }
    struct Merge {
        int32_t left, right;
        float score;
    };
    std::vector<Merge> merges;
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        const std::string& piece = v.tokens[id];
        if (piece.empty() || id_of[piece] != static_cast<int32_t>(id)) continue;
        std::vector<Merge> local;
        for (size_t at = utf8_len(static_cast<unsigned char>(piece[0])); at < piece.size();
             at += utf8_len(static_cast<unsigned char>(piece[at]))) {
            const auto l = id_of.find(piece.substr(0, at));
            const auto r = id_of.find(piece.substr(at));
            if (l == id_of.end() || r == id_of.end()) continue;
            local.push_back({l->second, r->second, v.scores.empty() ? 0.0f : v.scores[id]});
        }
        std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
            return a.left != b.left ? a.left < b.left : a.right < b.right;
        });
        merges.insert(merges.end(), local.begin(), local.end());
    }
    std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(merges.size());
    for (const Merge& m : merges) out.emplace_back(v.tokens[static_cast<size_t>(m.left)], v.tokens[static_cast<size_t>(m.right)]);
    return out;
}

// "a b" strings (every tokenizers version reads them) unless a piece holds a
// space; then ["a", "b"] pairs (tokenizers >= 0.20).
Json merges_json(const std::vector<std::pair<std::string, std::string>>& merges) {
    bool spaces = false;
    for (const auto& [a, b] : merges) spaces = spaces || a.find(' ') != std::string::npos || b.find(' ') != std::string::npos;
    Json out = Json::array();
    for (const auto& [a, b] : merges) {
        if (spaces) out.push_back(Json::array({a, b}));  // {a, b} alone would read as an object
        else out.push_back(a + " " + b);
    }
    return out;
}

int32_t unk_id(const Vocab& v) {
    if (v.unk >= 0) return v.unk;
    for (size_t id = 0; id < v.types.size(); ++id) {
        if (type_of(v, id) == TokenType::kUnknown) return static_cast<int32_t>(id);
    }
    return -1;
}

Json spm_tokenizer_json(const Vocab& v) {
    const int32_t unk = unk_id(v);
    Json normalizers = Json::array();
    if (v.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpaceMarker}});
    normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceMarker}});
    Json decoders = Json::array();
    decoders.push_back({{"type", "Replace"}, {"pattern", {{"String", kSpaceMarker}}}, {"content", " "}});
    decoders.push_back({{"type", "ByteFallback"}});
    decoders.push_back({{"type", "Fuse"}});
    if (v.add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    Json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = added_tokens(v);
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
    j["pre_tokenizer"] = nullptr;
    j["post_processor"] = template_processor(v);
    j["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    j["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", unk >= 0 ? Json(v.tokens[static_cast<size_t>(unk)]) : Json(nullptr)},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", true},
                  {"byte_fallback", true},
                  {"ignore_merges", false},
                  {"vocab", model_vocab(v)},
                  {"merges", merges_json(spm_merges(v))}};
    return j;
}

Json byte_level_tokenizer_json(const Vocab& v) {
    if (v.pre != "default" && v.pre != "gpt-2" && !v.pre.empty()) {
        throw InvalidInput(fmt::format("cannot write a tokenizer.json for the byte-level pre-tokenizer '{}'", v.pre),
                           "only the GPT-2 pre-tokenizer (tokenizer.ggml.pre = default / gpt-2) is converted");
    }
    std::vector<std::pair<std::string, std::string>> merges;
    for (const std::string& m : v.merges) {
        const size_t sep = m.find(' ');
        if (sep == std::string::npos) throw InvalidInput(fmt::format("malformed merge '{}' in the vocabulary", m));
        merges.emplace_back(m.substr(0, sep), m.substr(sep + 1));
    }
    const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    Json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = added_tokens(v);
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = byte_level;
    if ((v.add_bos && v.bos >= 0) || (v.add_eos && v.eos >= 0)) {
        j["post_processor"] = template_processor(v);
    } else {
        j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
    }
    j["decoder"] = byte_level;
    j["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", model_vocab(v)},
                  {"merges", merges_json(merges)}};
    return j;
}

Json tokenizer_config_json(const Vocab& v, const ModelConfig& c) {
    auto name = [&](int32_t id) { return id >= 0 ? Json(v.tokens[static_cast<size_t>(id)]) : Json(nullptr); };
    Json j;
    j["add_bos_token"] = v.add_bos && v.bos >= 0;
    j["add_eos_token"] = v.add_eos && v.eos >= 0;
    j["bos_token"] = name(v.bos);
    j["eos_token"] = name(v.eos);
    if (v.model == "llama") j["unk_token"] = name(unk_id(v));
    j["pad_token"] = name(v.pad);
    j["clean_up_tokenization_spaces"] = false;
    j["model_max_length"] = c.max_ctx;
    if (v.model == "llama") {
        // legacy: tokenizer.json's Prepend normalizer is what runs (no Metaspace rewrite).
        j["legacy"] = true;
        j["tokenizer_class"] = "LlamaTokenizerFast";
    } else {
        j["tokenizer_class"] = "PreTrainedTokenizerFast";
    }
    return j;
}

// The folder a model was loaded from, when its tokenizer came from a tokenizer.json there.
std::string tokenizer_json_folder(const Model::Impl& impl) {
    if (impl.tokenizer->vocab().pre != "tokenizer.json") return {};
    std::error_code ec;
    const fs::path p(impl.path);
    const fs::path folder = fs::is_directory(p, ec) ? p : p.parent_path();
    if (!fs::exists(folder / "tokenizer.json", ec)) {
        throw IoError(fmt::format("the tokenizer came from {} but that file is gone",
                                  (folder / "tokenizer.json").string()));
    }
    return folder.string();
}

// A GGUF-loaded Llama 3.1 keeps its rotary scaling as rope_freqs.weight, which
// the module holds but config.json cannot carry as such.
void check_no_rope_freqs(const Model::Impl& impl) {
    std::error_code ec;
    if (!fs::is_regular_file(impl.path, ec)) return;
    if (!impl.config.rope_scaling.empty()) return;
    char magic[4] = {};
    if (FILE* f = std::fopen(impl.path.c_str(), "rb")) {
        const size_t n = std::fread(magic, 1, 4, f);
        std::fclose(f);
        if (n != 4 || std::string(magic, 4) != "GGUF") return;
    } else {
        return;
    }
    if (GgufFile::open(impl.path)->find_tensor("rope_freqs.weight")) {
        throw InvalidInput("the model's rotary scaling is stored as rope_freqs.weight (Llama 3.1 style), which "
                           "memskew cannot express in config.json yet",
                           "convert the original Hugging Face checkpoint instead");
    }
}

// Whether a tokenizer.json prepends "▁" to the text: a Prepend normalizer
// (Llama-2 legacy) or a Metaspace pre-tokenizer that prepends.
bool prepends_space_marker(const std::string& tokenizer_json_path) {
    const Json j = Json::parse(read_text_file(tokenizer_json_path), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return false;
    bool found = false;
    std::function<void(const Json&)> visit = [&](const Json& node) {
        if (node.is_array()) {
            for (const auto& x : node) visit(x);
            return;
        }
        if (!node.is_object()) return;
        const std::string type = node.value("type", "");
        if (type == "Prepend" && node.value("prepend", "") == kSpaceMarker) found = true;
        if (type == "Metaspace") {
            const std::string scheme = node.value("prepend_scheme", node.value("add_prefix_space", true) ? "always" : "never");
            found = found || scheme != "never";
        }
        for (const char* key : {"normalizers", "pretokenizers"}) {
            if (node.contains(key)) visit(node[key]);
        }
    };
    for (const char* key : {"normalizer", "pre_tokenizer"}) {
        if (j.contains(key)) visit(j[key]);
    }
    return found;
}

void write_folder(const Model::Impl& impl, const std::string& dir, GgmlType stored) {
    const ModelConfig& c = impl.config;
    const Vocab& v = impl.tokenizer->vocab();
    const std::string tok_folder = tokenizer_json_folder(impl);
    save_hf_config(hf_config_for(c, v, stored), (fs::path(dir) / "config.json").string());

    const SafetensorsDtype dt = stored == GgmlType::kF16    ? SafetensorsDtype::kF16
                                : stored == GgmlType::kBF16 ? SafetensorsDtype::kBF16
                                                            : SafetensorsDtype::kF32;
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const auto& item : impl.net->named_parameters()) {
        auto t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
        w.add_tensor(item.key(), t.sizes().vec(), t.data_ptr<float>(), dt);
    }
    w.write((fs::path(dir) / "model.safetensors").string());

    if (!tok_folder.empty()) {
        for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "generation_config.json", "chat_template.jinja", "tokenizer.model",
                                 "added_tokens.json", "vocab.json", "merges.txt"}) {
            const fs::path from = fs::path(tok_folder) / name;
            std::error_code ec;
            if (!fs::exists(from, ec)) continue;
            fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing, ec);
            if (ec) throw IoError(fmt::format("cannot copy {}: {}", from.string(), ec.message()));
        }
        return;
    }
    Json tok;
    if (v.model == "llama") {
        tok = spm_tokenizer_json(v);
    } else if (v.model == "gpt2") {
        tok = byte_level_tokenizer_json(v);
    } else {
        throw InvalidInput(fmt::format("cannot write a tokenizer.json for tokenizer model '{}'", v.model));
    }
    write_text_file_atomic((fs::path(dir) / "tokenizer.json").string(), tok.dump(2) + "\n");
    write_text_file_atomic((fs::path(dir) / "tokenizer_config.json").string(),
                           tokenizer_config_json(v, c).dump(2) + "\n");
}

}  // namespace

void Model::save_hf(const std::string& folder, GgmlType stored) const {
    if (stored != GgmlType::kF32 && stored != GgmlType::kF16 && stored != GgmlType::kBF16)
        throw InvalidInput("Hugging Face output type must be F32, F16 or BF16");
    c10::InferenceMode guard;
    with_context("error writing " + folder, [&] {
        std::error_code ec;
        const fs::path out(folder);
        if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec))) {
            throw IoError("the output already exists and is not an empty folder",
                          "choose a new folder or remove the old one");
        }
        check_no_rope_freqs(*impl_);
        fs::path tmp = out;
        if (tmp.filename().empty()) tmp = tmp.parent_path();  // "folder/"
        tmp += fmt::format(".tmp-{}", static_cast<long>(::getpid()));
        fs::remove_all(tmp, ec);
        if (!fs::create_directories(tmp, ec) || ec)
            throw IoError(fmt::format("cannot create folder {}: {}", tmp.string(), ec ? ec.message() : "exists"));
        try {
            write_folder(*impl_, tmp.string(), stored);
            if (fs::exists(out, ec)) fs::remove(out, ec);  // the empty folder checked above
            fs::rename(tmp, out.filename().empty() ? out.parent_path() : out, ec);
            if (ec) throw IoError(fmt::format("cannot rename {} into place: {}", tmp.string(), ec.message()));
        } catch (...) {
            std::error_code ignored;
            fs::remove_all(tmp, ignored);
            throw;
        }
    });
}

Vocab vocab_for_gguf(const Model::Impl& impl) {
    Vocab v = impl.tokenizer->vocab();
    if (v.pre != "tokenizer.json" || v.model != "llama") return v;
    // SentencePiece BPE merges the adjacent pair whose concatenation scores
    // highest; HF BPE merges the pair of lowest rank. Scoring each token by
    // minus the rank of the first merge producing it makes the two agree (the
    // inverse of spm_merges above). Tokens no merge produces (characters,
    // bytes, specials) score lowest.
    std::unordered_map<std::string, int32_t> id_of;
    for (size_t id = 0; id < v.tokens.size(); ++id) id_of.emplace(v.tokens[id], static_cast<int32_t>(id));
    v.scores.assign(v.tokens.size(), -1e9f);
    std::vector<bool> scored(v.tokens.size(), false);
    for (size_t rank = 0; rank < v.merges.size(); ++rank) {
        const std::string& m = v.merges[rank];
        const size_t sep = m.find(' ');
        if (sep == std::string::npos) continue;
        const auto it = id_of.find(m.substr(0, sep) + m.substr(sep + 1));
        if (it == id_of.end() || scored[static_cast<size_t>(it->second)]) continue;
        scored[static_cast<size_t>(it->second)] = true;
        v.scores[static_cast<size_t>(it->second)] = -static_cast<float>(rank);
    }
    std::error_code ec;
    const fs::path p(impl.path);
    const fs::path folder = fs::is_directory(p, ec) ? p : p.parent_path();
    v.add_space_prefix = prepends_space_marker((folder / "tokenizer.json").string());
    v.pre = "default";
    return v;
}

}  // namespace memskew
