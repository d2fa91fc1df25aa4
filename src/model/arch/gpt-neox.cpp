// GPT-NeoX / Pythia: LayerNorm, partial rotary (rotary_pct), fused QKV laid out
// per head as [q | k | v], parallel residual, GELU MLP. Parameter names as
// Hugging Face's GPTNeoXForCausalLM: gpt_neox.embed_in, gpt_neox.layers.N.
// {input_layernorm, post_attention_layernorm, attention.{query_key_value, dense},
// mlp.{dense_h_to_4h, dense_4h_to_h}}, gpt_neox.final_layer_norm, embed_out.
#include <fmt/format.h>

#include "memskew/error.h"
#include "model/arch/arch.h"
#include "model/layers.h"

namespace memskew {

namespace {

struct AttentionImpl : torch::nn::Module {
    explicit AttentionImpl(const ModelConfig& c) {
        query_key_value = register_module("query_key_value", Linear(c.dim, 3 * c.dim, true));
        dense = register_module("dense", Linear(c.dim, c.dim, true));
    }
    Linear query_key_value{nullptr}, dense{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
    explicit MlpImpl(const ModelConfig& c) : act(c.hidden_act) {
        dense_h_to_4h = register_module("dense_h_to_4h", Linear(c.dim, c.ffn_dim, true));
        dense_4h_to_h = register_module("dense_4h_to_h", Linear(c.ffn_dim, c.dim, true));
    }
    torch::Tensor forward(const torch::Tensor& x) { return dense_4h_to_h(activation(act, dense_h_to_4h(x))); }
    Linear dense_h_to_4h{nullptr}, dense_4h_to_h{nullptr};
    std::string act;
};
TORCH_MODULE(Mlp);

struct LayerImpl : torch::nn::Module {
    explicit LayerImpl(const ModelConfig& c) {
        input_layernorm = register_module("input_layernorm", Norm(c.dim, c.norm_eps, true));
        post_attention_layernorm = register_module("post_attention_layernorm", Norm(c.dim, c.norm_eps, true));
        attention = register_module("attention", Attention(c));
        mlp = register_module("mlp", Mlp(c));
    }
    Norm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
    Attention attention{nullptr};
    Mlp mlp{nullptr};
};
TORCH_MODULE(Layer);

struct BackboneImpl : torch::nn::Module {
    explicit BackboneImpl(const ModelConfig& c) {
        embed_in = register_module("embed_in", torch::nn::Embedding(c.n_vocab, c.dim));
        layers = register_module("layers", torch::nn::ModuleList());
        for (int64_t l = 0; l < c.n_layers; ++l) layers->push_back(Layer(c));
        final_layer_norm = register_module("final_layer_norm", Norm(c.dim, c.norm_eps, true));
    }
    torch::nn::Embedding embed_in{nullptr};
    torch::nn::ModuleList layers;
    Norm final_layer_norm{nullptr};
};
TORCH_MODULE(Backbone);

class GptNeoXLm : public CausalLmImpl {
public:
    explicit GptNeoXLm(const ModelConfig& c) : CausalLmImpl(c), rotary_(c) {
        gpt_neox = register_module("gpt_neox", Backbone(c));
        if (!c.tied_output) embed_out = register_module("embed_out", Linear(c.dim, c.n_vocab, false));
    }

    torch::Tensor forward_hidden(const torch::Tensor& ids, const torch::Tensor& pos, KvCache* cache) override {
        const int64_t B = ids.size(0), T = ids.size(1), H = cfg_.n_heads, hd = cfg_.head_dim();
        auto h = gpt_neox->embed_in(ids);  // [B, T, D]
        const auto [cos, sin] = rotary_.tables(pos);
        const AttentionMask mask = make_attention_mask(pos, cache);
        for (int64_t l = 0; l < cfg_.n_layers; ++l) {
            auto* layer = gpt_neox->layers[l]->as<LayerImpl>();
            auto& attn = layer->attention;
            // Fused projection viewed per head as [q | k | v] (Hugging Face's layout).
            auto qkv = attn->query_key_value(layer->input_layernorm(h)).view({B, T, H, 3 * hd});
            auto q = qkv.narrow(-1, 0, hd).transpose(1, 2);       // [B, H, T, hd]
            auto k = qkv.narrow(-1, hd, hd).transpose(1, 2);
            auto v = qkv.narrow(-1, 2 * hd, hd).transpose(1, 2).contiguous();
            q = rotary_.apply(q, cos, sin);
            k = rotary_.apply(k, cos, sin).contiguous();
            auto attn_out = attn->dense(attend(q, k, v, mask, pos, cache, l));
            if (cfg_.parallel_residual) {
                h = h + attn_out + layer->mlp(layer->post_attention_layernorm(h));
            } else {
                h = h + attn_out;
                h = h + layer->mlp(layer->post_attention_layernorm(h));
            }
        }
        return gpt_neox->final_layer_norm(h);
    }

    torch::Tensor project(const torch::Tensor& h) override {
        if (embed_out) return embed_out(h);
        return torch::matmul(h, gpt_neox->embed_in->weight.t());
    }

    void to_device(const torch::Device& device) override {
        CausalLmImpl::to_device(device);
        rotary_.to(device);
    }

    Backbone gpt_neox{nullptr};
    Linear embed_out{nullptr};

private:
    Rotary rotary_;
};

// --- config.json ----------------------------------------------------------------

void parse_hf(const format::JsonObject& cfg, HfConfig& c) {
    parse_standard_hf_shapes(cfg, c);
    c.num_key_value_heads = c.num_attention_heads;
    c.max_position_embeddings = cfg.int_or("max_position_embeddings", 2048);
    c.norm_eps = cfg.number_or("layer_norm_eps", 1e-5);
    c.hidden_act = cfg.string_or("hidden_act", "gelu");
    // Newer transformers spell these rope_theta / partial_rotary_factor.
    c.rope_theta = cfg.number_or("rotary_emb_base", cfg.number_or("rope_theta", 10000.0));
    c.partial_rotary_factor = cfg.number_or("rotary_pct", cfg.number_or("partial_rotary_factor", 0.25));
    c.use_parallel_residual = cfg.bool_or("use_parallel_residual", true);
    c.tie_word_embeddings = cfg.bool_or("tie_word_embeddings", false);
    c.attention_bias = cfg.bool_or("attention_bias", true);
    c.qkv_bias = c.o_bias = c.attention_bias;
    c.mlp_bias = true;
}

void write_hf(const HfConfig& c, nlohmann::ordered_json& j) {
    write_standard_hf_keys(c, j);
    j["layer_norm_eps"] = c.norm_eps;
    j["rotary_pct"] = c.partial_rotary_factor;
    j["rotary_emb_base"] = c.rope_theta;
    j["use_parallel_residual"] = c.use_parallel_residual;
    j["attention_bias"] = c.attention_bias;
}

void from_hf(const HfConfig& h, ModelConfig& c, const std::string& source) {
    // The GPT-NeoX module always carries attention biases.
    if (!h.attention_bias)
        throw FormatError(fmt::format("{}: attention_bias=false is not supported for GPTNeoXForCausalLM", source));
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.parallel_residual = h.use_parallel_residual;
}

void to_hf(const ModelConfig& c, HfConfig& h) {
    h.architecture = "GPTNeoXForCausalLM";
    h.model_type = "gpt_neox";
    h.attention_bias = true;
    h.use_parallel_residual = c.parallel_residual;
}

std::string shape_source(const std::string& param, const HfConfig& h) {
    return shape_source_with(param, h, "hidden_size", "intermediate_size", "num_attention_heads", false);
}

std::shared_ptr<CausalLmImpl> make(const ModelConfig& cfg) { return std::make_shared<GptNeoXLm>(cfg); }

}  // namespace

const ArchSpec& arch_gpt_neox() {
    static const ArchSpec spec = [] {
        ArchSpec a;
        a.key = "gptneox";
        a.hf_classes = {{"GPTNeoXForCausalLM", "gpt_neox"}};
        a.layer_norm = true;
        a.parse_hf = parse_hf;
        a.write_hf = write_hf;
        a.from_hf = from_hf;
        a.to_hf = to_hf;
        a.shape_source = shape_source;
        a.make = make;
        return a;
    }();
    return spec;
}

}  // namespace memskew
