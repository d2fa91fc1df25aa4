// Llama family (Llama 2/3, Mistral, TinyLlama, SmolLM, Qwen2): RMSNorm,
// rotary, grouped-query attention, SwiGLU. Parameter names as Hugging Face's
// LlamaForCausalLM: model.embed_tokens, model.layers.N.{self_attn.{q,k,v,o}_proj,
// mlp.{gate,up,down}_proj, input_layernorm, post_attention_layernorm},
// model.norm, lm_head (absent when tied).
#include "memskew/error.h"
#include "model/arch/arch.h"
#include "model/cpu-kernels.h"
#include "model/layers.h"

namespace memskew {

namespace {

struct AttentionImpl : torch::nn::Module {
    explicit AttentionImpl(const ModelConfig& c) {
        const int64_t hd = c.head_dim();
        q_proj = register_module("q_proj", Linear(c.dim, c.n_heads * hd, c.qkv_bias));
        k_proj = register_module("k_proj", Linear(c.dim, c.n_kv_heads * hd, c.qkv_bias));
        v_proj = register_module("v_proj", Linear(c.dim, c.n_kv_heads * hd, c.qkv_bias));
        o_proj = register_module("o_proj", Linear(c.n_heads * hd, c.dim, c.o_bias));
    }
    Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
    explicit MlpImpl(const ModelConfig& c) : act(c.hidden_act) {
        gate_proj = register_module("gate_proj", Linear(c.dim, c.ffn_dim, c.mlp_bias));
        up_proj = register_module("up_proj", Linear(c.dim, c.ffn_dim, c.mlp_bias));
        down_proj = register_module("down_proj", Linear(c.ffn_dim, c.dim, c.mlp_bias));
    }
    torch::Tensor forward(const torch::Tensor& x) {
        auto gate = gate_proj(x);
        auto up = up_proj(x);
        if (act == "silu" && gate.is_contiguous() && kernels::fused_ok(gate) && kernels::fused_ok(up))
            return down_proj(kernels::silu_mul_(gate, up));  // inference: one pass, no temporaries
        if (act == "silu" && gate.sizes() == up.sizes() && kernels::supported(gate, up))
            return down_proj(kernels::silu_mul_autograd(gate, up));  // training: fused, with its backward
        return down_proj(activation(act, gate) * up);
    }
    Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
    std::string act;
};
TORCH_MODULE(Mlp);

struct LayerImpl : torch::nn::Module {
    explicit LayerImpl(const ModelConfig& c) {
        self_attn = register_module("self_attn", Attention(c));
        mlp = register_module("mlp", Mlp(c));
        input_layernorm = register_module("input_layernorm", Norm(c.dim, c.norm_eps, false));
        post_attention_layernorm = register_module("post_attention_layernorm", Norm(c.dim, c.norm_eps, false));
    }
    Attention self_attn{nullptr};
    Mlp mlp{nullptr};
    Norm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(Layer);

struct BackboneImpl : torch::nn::Module {
    explicit BackboneImpl(const ModelConfig& c) {
        embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.n_vocab, c.dim));
        layers = register_module("layers", torch::nn::ModuleList());
        for (int64_t l = 0; l < c.n_layers; ++l) layers->push_back(Layer(c));
        norm = register_module("norm", Norm(c.dim, c.norm_eps, false));
    }
    torch::nn::Embedding embed_tokens{nullptr};
    torch::nn::ModuleList layers;
    Norm norm{nullptr};
};
TORCH_MODULE(Backbone);

class LlamaLm : public CausalLmImpl {
public:
    explicit LlamaLm(const ModelConfig& c) : CausalLmImpl(c), rotary_(c) {
        model = register_module("model", Backbone(c));
        if (!c.tied_output) lm_head = register_module("lm_head", Linear(c.dim, c.n_vocab, false));
    }

    torch::Tensor forward_hidden(const torch::Tensor& ids, const torch::Tensor& pos, KvCache* cache) override {
        return run(ids, pos, cache, 0);
    }

    torch::Tensor forward_hidden_tail(const torch::Tensor& ids, const torch::Tensor& pos, int64_t first) override {
        return run(ids, pos, nullptr, first);
    }

    torch::Tensor project(const torch::Tensor& h) override {
        if (lm_head) return lm_head(h);
        return torch::matmul(h, model->embed_tokens->weight.t());
    }

    void set_rope_freq_factors(const torch::Tensor& factors) override { rotary_.set_freq_factors(factors); }
    void to_device(const torch::Device& device) override {
        CausalLmImpl::to_device(device);
        rotary_.to(device);
    }

    Backbone model{nullptr};
    Linear lm_head{nullptr};

private:
    // All layers over all T positions, except that the last layer computes
    // queries, attention output and MLP only for positions first..T-1.
    torch::Tensor run(const torch::Tensor& ids, const torch::Tensor& pos, KvCache* cache, int64_t first) {
        const int64_t B = ids.size(0), T = ids.size(1);
        const int64_t H = cfg_.n_heads, Hkv = cfg_.n_kv_heads, hd = cfg_.head_dim();
        auto h = model->embed_tokens(ids);  // [B, T, D]
        const auto [cos, sin] = rotary_.tables(pos);
        const AttentionMask mask = make_attention_mask(pos, cache);
        // Each sublayer's output waits in `pending` and joins the residual
        // stream just before the next norm; without gradients both happen in
        // one fused pass (h updated in place).
        torch::Tensor pending;
        auto add_norm = [&](NormImpl& norm) {
            if (!pending.defined()) return norm.forward(h);
            torch::Tensor x;
            if (h.is_contiguous() && h.sizes() == pending.sizes() && kernels::fused_ok(h, norm.weight) &&
                kernels::fused_ok(pending)) {
                x = kernels::add_rms_norm_(h, pending, norm.weight, norm.eps);
            } else {
                h = h + pending;
                x = norm.forward(h);
            }
            pending = torch::Tensor();
            return x;
        };
        for (int64_t l = 0; l < cfg_.n_layers; ++l) {
            auto* layer = model->layers[l]->as<LayerImpl>();
            auto& attn = layer->self_attn;
            const bool tail = l == cfg_.n_layers - 1 && first > 0;
            const int64_t Tq = tail ? T - first : T;  // query positions in this layer
            auto x = add_norm(*layer->input_layernorm);
            auto xq = tail ? x.narrow(1, first, Tq) : x;
            auto q = attn->q_proj(xq).view({B, Tq, H, hd}).transpose(1, 2);  // [B, H, Tq, hd]
            auto k = attn->k_proj(x).view({B, T, Hkv, hd}).transpose(1, 2);  // [B, Hkv, T, hd]
            auto v = attn->v_proj(x).view({B, T, Hkv, hd}).transpose(1, 2);  // [B, Hkv, T, hd]
            q = tail ? rotary_.apply(q, cos.narrow(2, first, Tq), sin.narrow(2, first, Tq)) : rotary_.apply(q, cos, sin);
            k = rotary_.apply(k, cos, sin);
            if (tail) h = h.narrow(1, first, Tq).contiguous();
            pending = attn->o_proj(attend(q, k, v, tail ? narrow_queries(mask, first, Tq) : mask, pos, cache, l));
            pending = layer->mlp(add_norm(*layer->post_attention_layernorm));
        }
        return add_norm(*model->norm);
    }

    Rotary rotary_;
};


// --- config.json ----------------------------------------------------------------

bool is_class(const HfConfig& c, const char* name) { return c.architecture == name; }

void parse_hf(const format::JsonObject& cfg, HfConfig& c) {
    parse_standard_hf_shapes(cfg, c);
    c.num_key_value_heads = cfg.int_or("num_key_value_heads", c.num_attention_heads);
    if (cfg.get("head_dim")) c.head_dim = cfg.required_int("head_dim");
    const bool mistral = is_class(c, "MistralForCausalLM"), qwen2 = is_class(c, "Qwen2ForCausalLM");
    const int64_t default_ctx = mistral ? 4096 * 32 : qwen2 ? 32768 : 2048;
    c.max_position_embeddings = cfg.int_or("max_position_embeddings", default_ctx);
    c.norm_eps = cfg.number_or("rms_norm_eps", 1e-6);
    c.hidden_act = cfg.string_or("hidden_act", "silu");
    c.rope_theta = cfg.number_or("rope_theta", 10000.0);
    c.partial_rotary_factor = cfg.number_or("partial_rotary_factor", 1.0);
    c.tie_word_embeddings = cfg.bool_or("tie_word_embeddings", false);
    c.use_parallel_residual = false;
    if (qwen2) {
        // Qwen2Attention hard-codes bias=True for q/k/v and False for o_proj.
        c.attention_bias = true;
        c.qkv_bias = true;
        c.o_bias = false;
        if (cfg.bool_or("use_sliding_window", false)) c.sliding_window = cfg.int_or("sliding_window", 4096);
    } else if (mistral) {  // no biases; sliding_window null (v0.2+) means full attention
        c.sliding_window = cfg.present("sliding_window") ? cfg.int_or("sliding_window", 0) : 4096;
    } else {
        c.attention_bias = cfg.bool_or("attention_bias", false);
        c.qkv_bias = c.o_bias = c.attention_bias;
        c.mlp_bias = cfg.bool_or("mlp_bias", false);
    }
}

void write_hf(const HfConfig& c, nlohmann::ordered_json& j) {
    write_standard_hf_keys(c, j);
    j["num_key_value_heads"] = c.num_key_value_heads;
    if (c.num_attention_heads > 0 && c.head_dim != c.hidden_size / c.num_attention_heads) j["head_dim"] = c.head_dim;
    j["rms_norm_eps"] = c.norm_eps;
    j["rope_theta"] = c.rope_theta;
    if (c.partial_rotary_factor != 1.0) j["partial_rotary_factor"] = c.partial_rotary_factor;
    if (is_class(c, "MistralForCausalLM")) {
        if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
        else j["sliding_window"] = nullptr;
    } else if (is_class(c, "Qwen2ForCausalLM")) {
        j["use_sliding_window"] = c.sliding_window > 0;
        if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
    } else {
        j["attention_bias"] = c.attention_bias;
        j["mlp_bias"] = c.mlp_bias;
    }
}

void from_hf(const HfConfig& h, ModelConfig& c, const std::string&) {
    c.qkv_bias = h.qkv_bias;
    c.o_bias = h.o_bias;
    c.mlp_bias = h.mlp_bias;
}

void to_hf(const ModelConfig& c, HfConfig& h) {
    // Llama's attention_bias covers q, k, v and o together; Qwen2 has
    // biases on q, k, v only.
    if (c.qkv_bias && !c.o_bias) {
        if (c.mlp_bias)
            throw InvalidInput("a Llama model with q/k/v and MLP biases but no output-projection bias has no "
                               "Hugging Face equivalent");
        h.architecture = "Qwen2ForCausalLM";
        h.model_type = "qwen2";
        h.attention_bias = true;
    } else if (c.qkv_bias != c.o_bias) {
        throw InvalidInput("a Llama model with an output-projection bias but no q/k/v biases has no Hugging Face "
                           "equivalent");
    } else {
        h.architecture = "LlamaForCausalLM";
        h.model_type = "llama";
    }
}

std::string shape_source(const std::string& param, const HfConfig& h) {
    return shape_source_with(param, h, "hidden_size", "intermediate_size", "num_attention_heads", true);
}

std::shared_ptr<CausalLmImpl> make(const ModelConfig& cfg) { return std::make_shared<LlamaLm>(cfg); }

}  // namespace

const ArchSpec& arch_llama() {
    static const ArchSpec spec = [] {
        ArchSpec a;
        a.key = "llama";
        a.hf_classes = {{"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"}, {"Qwen2ForCausalLM", "qwen2"}};
        a.gguf_name = "llama";
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
