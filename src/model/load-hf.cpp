// Hugging Face model folder (config.json + model.safetensors or a sharded
// index + tokenizer.json) -> ModelConfig + module. The module's parameters
// carry the checkpoint names, so loading is a by-name copy with shape checks;
// weights are converted to fp32 from F32/F16/BF16 (F64) as they are read from
// the memory-mapped files.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "memskew/error.h"
#include "memskew/hf-config.h"
#include "memskew/safetensors.h"
#include "model/arch/arch.h"
#include "model/model-impl.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ModelConfig config_from_hf(const HfConfig& h, const std::string& source) {
    const ArchSpec& spec = arch_spec(h.arch);
    ModelConfig c;
    c.arch = spec.key;
    c.n_vocab = h.vocab_size;
    c.dim = h.hidden_size;
    c.n_layers = h.num_hidden_layers;
    c.n_heads = h.num_attention_heads;
    c.n_kv_heads = h.num_key_value_heads;
    c.ffn_dim = h.intermediate_size;
    c.max_ctx = h.max_position_embeddings;
    c.norm_eps = h.norm_eps;
    c.tied_output = h.tie_word_embeddings;
    c.hidden_act = h.hidden_act == "swish" ? "silu" : h.hidden_act;  // the same function
    if (h.head_dim != h.hidden_size / h.num_attention_heads) {
        throw FormatError(fmt::format("{}: head_dim {} differs from hidden_size / num_attention_heads = {}", source,
                                      h.head_dim, h.hidden_size / h.num_attention_heads),
                          "memskew's architectures derive the head size from the hidden size");
    }
    spec.from_hf(h, c, source);
    if (spec.learned_positions) return c;
    c.rope_base = h.rope_theta;
    c.rotary_pct = h.partial_rotary_factor;
    if (h.rope_scaling) {
        const HfRopeScaling& rs = *h.rope_scaling;
        if (rs.type == "linear") {
            c.rope_scaling = "linear";
            c.rope_factor = rs.factor;
        } else if (rs.type == "llama3") {
            c.rope_scaling = "llama3";
            c.rope_factor = rs.factor;
            c.rope_low_freq_factor = rs.low_freq_factor;
            c.rope_high_freq_factor = rs.high_freq_factor;
            c.rope_original_ctx = rs.original_max_position_embeddings;
        }
        // "dynamic" NTK scaling changes nothing within max_position_embeddings.
    }
    if (h.sliding_window > 0 && h.sliding_window < c.max_ctx) {
        // memskew attends over the whole context; within the window that is
        // exactly what sliding-window attention computes.
        spdlog::warn("{}: sliding_window {} < max_position_embeddings {}; limiting the context to {} tokens",
                     source, h.sliding_window, c.max_ctx, h.sliding_window);
        c.max_ctx = h.sliding_window;
    }
    return c;
}

// Buffers some checkpoints carry that are not parameters: GPT-2's causal mask
// (attn.bias, attn.masked_bias), old GPT-NeoX masks and rotary tables.
bool is_known_buffer(const std::string& name) {
    return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") ||
           ends_with(name, ".attention.bias") || ends_with(name, ".attention.masked_bias") ||
           ends_with(name, "rotary_emb.inv_freq");
}

const char* dtype_label(SafetensorsDtype d) { return safetensors_dtype_name(d); }

}  // namespace

std::unique_ptr<Model::Impl> load_hf_model(const std::string& path, const LoadParams& params) {
    std::error_code ec;
    const fs::path folder = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
    const std::string dir = folder.empty() ? std::string(".") : folder.string();
    auto impl = std::make_unique<Model::Impl>();
    impl->path = path;
    with_context("error loading " + dir, [&] {
        const HfConfig h = load_hf_config(dir);
        const std::string config_path = (fs::path(dir) / "config.json").string();
        ModelConfig c = config_from_hf(h, config_path);
        fs::path abs = fs::absolute(dir, ec).lexically_normal();
        if (abs.filename().empty()) abs = abs.parent_path();  // "folder/" ends in an empty name
        c.name = abs.filename().string();
        try {
            c.validate();
        } catch (const InvalidInput& e) {
            throw FormatError(e.message() + " (from " + config_path + ")");
        }
        const auto weights = SafetensorsModel::open(dir);

        // Some checkpoints leave out a prefix of the family's tensor names
        // (GPT-2 saved from GPT2Model: no "transformer.").
        const ArchSpec& spec = arch_spec(c.arch);
        std::string strip_prefix = spec.optional_tensor_prefix;
        if (!strip_prefix.empty()) {
            for (const std::string& name : weights->names()) {
                if (name.compare(0, strip_prefix.size(), strip_prefix) == 0) {
                    strip_prefix.clear();  // the names carry it
                    break;
                }
            }
        }

        std::set<std::string> dtypes;
        std::set<std::string> used;
        impl->net = make_causal_lm(c);
        load_weights(*impl->net, [&](const std::string& param, const std::vector<int64_t>& shape) {
            std::string name = param;
            if (!strip_prefix.empty() && name.compare(0, strip_prefix.size(), strip_prefix) == 0)
                name = name.substr(strip_prefix.size());
            const SafetensorsTensorInfo* info = weights->find(name);
            if (!info) {
                throw FormatError(fmt::format("missing tensor '{}' (config.json: {})", name, h.architecture),
                                  "is this a complete checkpoint of that architecture?");
            }
            if (!safetensors_dtype_is_float(info->dtype)) {
                throw FormatError(fmt::format("tensor '{}' has dtype {}; expected a floating-point weight "
                                              "(F32, F16 or BF16)",
                                              name, dtype_label(info->dtype)));
            }
            if (info->shape != shape) {
                throw FormatError(fmt::format("tensor '{}' has shape [{}] but config.json ({}) implies [{}]", name,
                                              fmt::join(info->shape, ", "), spec.shape_source(param, h),
                                              fmt::join(shape, ", ")),
                                  "config.json and the weights come from different models");
            }
            used.insert(name);
            dtypes.insert(dtype_label(info->dtype));
            auto t = torch::empty(shape, torch::kFloat);
            weights->read_float_into(name, t.data_ptr<float>());
            return t;
        });

        // Tied models may still store the output matrix (a copy of the embeddings).
        std::vector<std::string> unexpected;
        for (const std::string& name : weights->names()) {
            if (used.count(name) || is_known_buffer(name)) continue;
            if (c.tied_output && (name == "lm_head.weight" || name == "embed_out.weight")) continue;
            unexpected.push_back(name);
        }
        if (!unexpected.empty()) {
            std::vector<std::string> some(unexpected.begin(), unexpected.begin() + std::min<size_t>(5, unexpected.size()));
            spdlog::warn("{}: {} tensor(s) not used by {} were ignored: {}{}", weights->path(), unexpected.size(),
                         h.architecture, fmt::join(some, ", "), unexpected.size() > some.size() ? ", ..." : "");
        }
        c.source_dtype = dtypes.empty() ? "F32" : fmt::format("{}", fmt::join(dtypes, "+"));

        impl->tokenizer = load_tokenizer(dir);
        // Embeddings are often padded past the tokenizer (Pythia: 50304 rows for
        // 50277 tokens); a tokenizer larger than the embeddings would produce
        // ids the model cannot look up.
        if (impl->tokenizer->n_vocab() > c.n_vocab) {
            throw FormatError(fmt::format("the tokenizer has {} tokens but config.json has vocab_size={}",
                                          impl->tokenizer->n_vocab(), c.n_vocab),
                              "tokenizer.json belongs to a different model");
        }
        impl->config = c;
        finish_loading(*impl, params.dtype, params.device);
    });
    return impl;
}

}  // namespace memskew
