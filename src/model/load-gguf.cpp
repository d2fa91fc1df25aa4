// GGUF (`llama` architecture) -> ModelConfig + Llama module in Hugging Face layout.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <set>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "model/model-impl.h"

namespace memskew {

namespace {

ModelConfig config_from_gguf(const GgufFile& g) {
    ModelConfig c;
    const std::string arch = g.get_string("general.architecture");
    if (arch != "llama") {
        throw FormatError(fmt::format("unsupported architecture '{}' (general.architecture)", arch),
                          "memskew reads GGUF models of the 'llama' architecture (Llama 2/3, Mistral, "
                          "TinyLlama, SmolLM); Hugging Face folders cover GPT-NeoX and GPT-2");
    }
    c.arch = arch;
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
    if (c.n_heads > 0 && c.dim % c.n_heads == 0) {
        const int64_t rot = g.get_int(key("rope.dimension_count"), c.dim / c.n_heads);
        if (rot != c.dim / c.n_heads)
            throw FormatError(fmt::format("{}.rope.dimension_count = {} but the head dimension is {}; partial "
                                          "rotary is not supported for the llama architecture",
                                          arch, rot, c.dim / c.n_heads));
    }
    if (const GgufValue* scaling = g.find(key("rope.scaling.type"))) {
        const std::string type = scaling->as_string(key("rope.scaling.type"));
        if (type != "none" && type != "llama3")
            throw FormatError(fmt::format("unsupported rope scaling '{}' ({})", type, key("rope.scaling.type")));
    }
    // Which storage types the file uses, for `memskew info`.
    std::set<std::string> types;
    for (const auto& t : g.tensors()) types.insert(ggml_type_name(t.type));
    c.source_dtype = fmt::format("{}", fmt::join(types, "+"));
    try {
        c.validate();
    } catch (const InvalidInput& e) {
        throw FormatError(e.message() + " (from the GGUF metadata)");
    }
    return c;
}

// GGUF stores q/k rows permuted so that rotary acts on adjacent pairs
// (2i, 2i+1); Hugging Face's layout pairs (i, i + hd/2). Undo llama.cpp's
// permute(): [heads, hd/2, 2, in] -> [heads, 2, hd/2, in].
torch::Tensor unpermute_rows(const torch::Tensor& w, int64_t n_heads) {
    const int64_t rows = w.size(0), in = w.size(1), hd = rows / n_heads;
    return w.reshape({n_heads, hd / 2, 2, in}).transpose(1, 2).reshape({rows, in}).contiguous();
}

torch::Tensor read_tensor(const GgufFile& g, const std::string& name, const std::vector<int64_t>& expected,
                          const std::string& why) {
    const GgufTensorInfo* info = g.find_tensor(name);
    if (!info) throw FormatError(fmt::format("missing tensor '{}'", name), "is this a complete llama model file?");
    const auto shape = info->torch_shape();
    if (shape != expected) {
        throw FormatError(fmt::format("tensor '{}' has shape [{}] but the metadata ({}) implies [{}]", name,
                                      fmt::join(shape, ", "), why, fmt::join(expected, ", ")));
    }
    auto t = torch::empty(shape, torch::kFloat);
    g.dequantize_into(*info, t.data_ptr<float>());
    return t;
}

void assign(torch::Tensor& param, const torch::Tensor& value) {
    torch::NoGradGuard no_grad;
    param.copy_(value);
}

}  // namespace

torch::Dtype torch_dtype(DType d) { return d == DType::kBF16 ? torch::kBFloat16 : torch::kFloat; }

std::unique_ptr<Model::Impl> load_gguf_model(const std::string& path, const LoadParams& params) {
    auto impl = std::make_unique<Model::Impl>();
    impl->path = path;
    impl->dtype = params.dtype;
    with_context("error loading " + path, [&] {
        auto g = GgufFile::open(path);
        impl->config = config_from_gguf(*g);
        const ModelConfig& c = impl->config;
        impl->tokenizer = Tokenizer::from_vocab(vocab_from_gguf(*g));
        if (impl->tokenizer->n_vocab() != c.n_vocab) {
            throw FormatError(fmt::format("the tokenizer has {} tokens but token_embd.weight has {} rows",
                                          impl->tokenizer->n_vocab(), c.n_vocab));
        }
        impl->net = Llama(c);
        auto& net = *impl->net;
        const int64_t hd = c.head_dim(), D = c.dim;
        const std::string why_attn = fmt::format("embedding_length={}, head_count={}, head_count_kv={}", D,
                                                 c.n_heads, c.n_kv_heads);
        const std::string why_ffn = fmt::format("embedding_length={}, feed_forward_length={}", D, c.ffn_dim);
        const std::string why_vocab = fmt::format("embedding_length={}, vocabulary={}", D, c.n_vocab);
        assign(net.model->embed_tokens->weight, read_tensor(*g, "token_embd.weight", {c.n_vocab, D}, why_vocab));
        for (int64_t l = 0; l < c.n_layers; ++l) {
            auto* layer = net.model->layers[l]->as<LlamaLayerImpl>();
            auto name = [&](const char* n) { return fmt::format("blk.{}.{}.weight", l, n); };
            assign(layer->input_layernorm->weight, read_tensor(*g, name("attn_norm"), {D}, why_attn));
            assign(layer->self_attn->q_proj->weight,
                   unpermute_rows(read_tensor(*g, name("attn_q"), {c.n_heads * hd, D}, why_attn), c.n_heads));
            assign(layer->self_attn->k_proj->weight,
                   unpermute_rows(read_tensor(*g, name("attn_k"), {c.n_kv_heads * hd, D}, why_attn), c.n_kv_heads));
            assign(layer->self_attn->v_proj->weight, read_tensor(*g, name("attn_v"), {c.n_kv_heads * hd, D}, why_attn));
            assign(layer->self_attn->o_proj->weight, read_tensor(*g, name("attn_output"), {D, c.n_heads * hd}, why_attn));
            assign(layer->post_attention_layernorm->weight, read_tensor(*g, name("ffn_norm"), {D}, why_ffn));
            assign(layer->mlp->gate_proj->weight, read_tensor(*g, name("ffn_gate"), {c.ffn_dim, D}, why_ffn));
            assign(layer->mlp->up_proj->weight, read_tensor(*g, name("ffn_up"), {c.ffn_dim, D}, why_ffn));
            assign(layer->mlp->down_proj->weight, read_tensor(*g, name("ffn_down"), {D, c.ffn_dim}, why_ffn));
        }
        assign(net.model->norm->weight, read_tensor(*g, "output_norm.weight", {D}, why_vocab));
        if (!c.tied_output) assign(net.lm_head->weight, read_tensor(*g, "output.weight", {c.n_vocab, D}, why_vocab));
        if (g->find_tensor("rope_freqs.weight"))
            net.set_rope_freq_factors(read_tensor(*g, "rope_freqs.weight", {hd / 2}, "head dimension / 2"));
        net.eval();
        if (params.dtype == DType::kBF16) net.to(torch::kBFloat16);
        for (auto& p : net.parameters()) p.set_requires_grad(false);
    });
    return impl;
}

}  // namespace memskew
