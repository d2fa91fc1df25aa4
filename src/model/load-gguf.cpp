// GGUF (`llama` architecture) -> ModelConfig + module in Hugging Face layout.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "model/arch/arch.h"
#include "model/model-impl.h"

namespace memskew {

namespace {

ModelConfig config_from_gguf(const GgufFile& g) {
    ModelConfig c;
    const std::string arch = g.get_string("general.architecture");
    const ArchSpec* spec = arch_for_gguf(arch);
    if (!spec) {
        throw FormatError(fmt::format("unsupported architecture '{}' (general.architecture)", arch),
                          "memskew reads GGUF models of the 'llama' architecture (Llama 2/3, Mistral, "
                          "TinyLlama, SmolLM); Hugging Face folders cover GPT-NeoX and GPT-2");
    }
    c.arch = spec->key;
    c.name = g.get_string("general.name", std::string());
    auto key = [&](const char* k) { return arch + "." + k; };
    c.dim = g.get_int(key("embedding_length"));
    c.n_layers = g.get_int(key("block_count"));
    c.ffn_dim = g.get_int(key("feed_forward_length"));
    c.n_heads = g.get_int(key("attention.head_count"));
    c.n_kv_heads = g.get_int(key("attention.head_count_kv"), c.n_heads);
    c.max_ctx = g.get_int(key("context_length"), 2048);
    c.rope_base = g.get_double(key("rope.freq_base"), 10000.0);
    c.norm_eps = g.get_double(key("attention.layer_norm_rms_epsilon"), 1e-5);
    const GgufTensorInfo& emb = g.tensor("token_embd.weight");
    if (emb.ne.size() != 2)
        throw FormatError(fmt::format("tensor 'token_embd.weight' has {} dimensions, expected 2", emb.ne.size()));
    c.n_vocab = g.get_int(key("vocab_size"), emb.ne[1]);
    c.tied_output = g.find_tensor("output.weight") == nullptr;
    c.qkv_bias = g.find_tensor("blk.0.attn_q.bias") != nullptr;
    c.o_bias = g.find_tensor("blk.0.attn_output.bias") != nullptr;
    if (c.n_heads > 0 && c.dim % c.n_heads == 0) {
        const int64_t rot = g.get_int(key("rope.dimension_count"), c.dim / c.n_heads);
        if (rot != c.dim / c.n_heads)
            throw FormatError(fmt::format("{}.rope.dimension_count = {} but the head dimension is {}; partial "
                                          "rotary is not supported for the llama architecture",
                                          arch, rot, c.dim / c.n_heads));
    }
    if (const GgufValue* scaling = g.find(key("rope.scaling.type"))) {
        const std::string type = scaling->as_string(key("rope.scaling.type"));
        if (type == "linear") {
            c.rope_scaling = "linear";
            c.rope_factor = g.get_double(key("rope.scaling.factor"), 1.0);
        } else if (type != "none" && type != "llama3") {
            // llama3 scaling is stored in GGUF as the rope_freqs.weight tensor.
            throw FormatError(fmt::format("unsupported rope scaling '{}' ({})", type, key("rope.scaling.type")));
        }
    }
    std::set<std::string> types;  // storage types in the file, for `memskew info`
    for (const auto& t : g.tensors()) types.insert(ggml_type_name(t.type));
    c.source_dtype = fmt::format("{}", fmt::join(types, "+"));
    try {
        c.validate();
    } catch (const InvalidInput& e) {
        throw FormatError(e.message() + " (from the GGUF metadata)");
    }
    return c;
}

std::string shape_source(const ModelConfig& c) {
    return fmt::format("embedding_length={}, feed_forward_length={}, head_count={}, head_count_kv={}, vocabulary={}",
                       c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.n_vocab);
}

}  // namespace

torch::Dtype torch_dtype(DType d) { return d == DType::kBF16 ? torch::kBFloat16 : torch::kFloat; }

torch::Tensor gguf_to_hf_rows(const torch::Tensor& w, int64_t n_heads) {
    const int64_t rows = w.size(0), hd = rows / n_heads;
    auto m = w.reshape({rows, -1});
    const int64_t in = m.size(1);
    return m.reshape({n_heads, hd / 2, 2, in}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

torch::Tensor hf_to_gguf_rows(const torch::Tensor& w, int64_t n_heads) {
    const int64_t rows = w.size(0), hd = rows / n_heads;
    auto m = w.reshape({rows, -1});
    const int64_t in = m.size(1);
    return m.reshape({n_heads, 2, hd / 2, in}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

std::string gguf_name_for(const std::string& hf, const ModelConfig& cfg, int64_t* permute_heads) {
    *permute_heads = 0;
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    const std::string prefix = "model.layers.";
    if (hf.compare(0, prefix.size(), prefix) != 0) return {};
    const size_t dot = hf.find('.', prefix.size());
    if (dot == std::string::npos) return {};
    const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
    std::string rest = hf.substr(dot + 1);  // e.g. self_attn.q_proj.weight
    const size_t last = rest.rfind('.');
    const std::string suffix = rest.substr(last);  // .weight / .bias
    rest = rest.substr(0, last);
    static const std::pair<const char*, const char*> kMap[] = {
        {"input_layernorm", "attn_norm"},   {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},     {"self_attn.o_proj", "attn_output"},
        {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
    };
    for (const auto& [from, to] : kMap) {
        if (rest == from) {
            if (rest == "self_attn.q_proj") *permute_heads = cfg.n_heads;
            if (rest == "self_attn.k_proj") *permute_heads = cfg.n_kv_heads;
            return "blk." + layer + "." + to + suffix;
        }
    }
    return {};
}

void load_weights(CausalLmImpl& net, const WeightFetcher& fetch) {
    torch::NoGradGuard no_grad;
    for (auto& item : net.named_parameters()) {
        auto value = fetch(item.key(), item.value().sizes().vec());
        item.value().copy_(value);
    }
}

void finish_loading(Model::Impl& impl, DType dtype, const std::string& device) {
    impl.dtype = dtype;
    impl.device = parse_device(device);
    impl.net->eval();
    // Convert first: a bf16 model crosses to the GPU at half the bytes.
    if (dtype == DType::kBF16) impl.net->to(torch::kBFloat16);
    impl.net->to_device(torch::Device(impl.device));
    for (auto& p : impl.net->parameters()) p.set_requires_grad(false);
}

std::unique_ptr<Model::Impl> load_gguf_model(const std::string& path, const LoadParams& params) {
    auto impl = std::make_unique<Model::Impl>();
    impl->path = path;
    with_context("error loading " + path, [&] {
        auto g = GgufFile::open(path);
        impl->config = config_from_gguf(*g);
        const ModelConfig& c = impl->config;
        impl->tokenizer = Tokenizer::from_vocab(vocab_from_gguf(*g));
        if (impl->tokenizer->n_vocab() != c.n_vocab) {
            throw FormatError(fmt::format("the tokenizer has {} tokens but token_embd.weight has {} rows",
                                          impl->tokenizer->n_vocab(), c.n_vocab));
        }
        impl->net = make_causal_lm(c);
        load_weights(*impl->net, [&](const std::string& hf, const std::vector<int64_t>& shape) {
            int64_t heads = 0;
            const std::string name = gguf_name_for(hf, c, &heads);
            if (name.empty()) throw FormatError(fmt::format("no GGUF tensor corresponds to parameter '{}'", hf));
            const GgufTensorInfo* info = g->find_tensor(name);
            if (!info)
                throw FormatError(fmt::format("missing tensor '{}'", name), "is this a complete llama model file?");
            if (info->torch_shape() != shape) {
                throw FormatError(fmt::format("tensor '{}' has shape [{}] but the metadata ({}) implies [{}]", name,
                                              fmt::join(info->torch_shape(), ", "), shape_source(c),
                                              fmt::join(shape, ", ")));
            }
            auto t = torch::empty(shape, torch::kFloat);
            g->dequantize_into(*info, t.data_ptr<float>());
            return heads ? gguf_to_hf_rows(t, heads) : t;
        });
        if (const GgufTensorInfo* f = g->find_tensor("rope_freqs.weight")) {
            auto t = torch::empty(f->torch_shape(), torch::kFloat);
            g->dequantize_into(*f, t.data_ptr<float>());
            impl->net->set_rope_freq_factors(t);
        }
        finish_loading(*impl, params.dtype, params.device);
    });
    return impl;
}

}  // namespace memskew
