// GPT-2: learned positions, LayerNorm, Conv1D projections (weights stored
// [in, out]), fused c_attn split as [q | k | v] over the hidden size, GELU
// (tanh) MLP, output tied to the token embeddings. Parameter names as Hugging
// Face's GPT2LMHeadModel: transformer.{wte, wpe, h.N.{ln_1, attn.{c_attn, c_proj},
// ln_2, mlp.{c_fc, c_proj}}, ln_f}, lm_head (tied).
#include <fmt/format.h>

#include "memskew/error.h"
#include "model/arch/arch.h"
#include "model/layers.h"

namespace memskew {

namespace {

struct AttentionImpl : torch::nn::Module {
    explicit AttentionImpl(const ModelConfig& c) {
        c_attn = register_module("c_attn", Linear(c.dim, 3 * c.dim, true, /*conv1d_layout=*/true));
        c_proj = register_module("c_proj", Linear(c.dim, c.dim, true, true));
    }
    Linear c_attn{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
    explicit MlpImpl(const ModelConfig& c) : act(c.hidden_act) {
        c_fc = register_module("c_fc", Linear(c.dim, c.ffn_dim, true, true));
        c_proj = register_module("c_proj", Linear(c.ffn_dim, c.dim, true, true));
    }
    torch::Tensor forward(const torch::Tensor& x) { return c_proj(activation(act, c_fc(x))); }
    Linear c_fc{nullptr}, c_proj{nullptr};
    std::string act;
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
    explicit BlockImpl(const ModelConfig& c) {
        ln_1 = register_module("ln_1", Norm(c.dim, c.norm_eps, true));
        attn = register_module("attn", Attention(c));
        ln_2 = register_module("ln_2", Norm(c.dim, c.norm_eps, true));
        mlp = register_module("mlp", Mlp(c));
    }
    Norm ln_1{nullptr}, ln_2{nullptr};
    Attention attn{nullptr};
    Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

struct TransformerImpl : torch::nn::Module {
    explicit TransformerImpl(const ModelConfig& c) {
        wte = register_module("wte", torch::nn::Embedding(c.n_vocab, c.dim));
        wpe = register_module("wpe", torch::nn::Embedding(c.max_ctx, c.dim));
        h = register_module("h", torch::nn::ModuleList());
        for (int64_t l = 0; l < c.n_layers; ++l) h->push_back(Block(c));
        ln_f = register_module("ln_f", Norm(c.dim, c.norm_eps, true));
    }
    torch::nn::Embedding wte{nullptr}, wpe{nullptr};
    torch::nn::ModuleList h;
    Norm ln_f{nullptr};
};
TORCH_MODULE(Transformer);

class Gpt2Lm : public CausalLmImpl {
public:
    explicit Gpt2Lm(const ModelConfig& c) : CausalLmImpl(c) {
        transformer = register_module("transformer", Transformer(c));
        if (!c.tied_output) lm_head = register_module("lm_head", Linear(c.dim, c.n_vocab, false));
    }

    torch::Tensor forward_hidden(const torch::Tensor& ids, const torch::Tensor& pos, KvCache* cache) override {
        const int64_t B = ids.size(0), T = ids.size(1), H = cfg_.n_heads, hd = cfg_.head_dim(), D = cfg_.dim;
        auto x = transformer->wte(ids) + transformer->wpe(pos);  // [B, T, D]
        const AttentionMask mask = make_attention_mask(pos, cache);
        for (int64_t l = 0; l < cfg_.n_layers; ++l) {
            auto* block = transformer->h[l]->as<BlockImpl>();
            auto qkv = block->attn->c_attn(block->ln_1(x));  // [B, T, 3D] = [q | k | v]
            auto q = qkv.narrow(-1, 0, D).view({B, T, H, hd}).transpose(1, 2);
            auto k = qkv.narrow(-1, D, D).view({B, T, H, hd}).transpose(1, 2).contiguous();
            auto v = qkv.narrow(-1, 2 * D, D).view({B, T, H, hd}).transpose(1, 2).contiguous();
            x = x + block->attn->c_proj(attend(q, k, v, mask, pos, cache, l));
            x = x + block->mlp(block->ln_2(x));
        }
        return transformer->ln_f(x);
    }

    torch::Tensor project(const torch::Tensor& h) override {
        if (lm_head) return lm_head(h);
        return torch::matmul(h, transformer->wte->weight.t());
    }

    Transformer transformer{nullptr};
    Linear lm_head{nullptr};
};

// --- config.json ----------------------------------------------------------------

void parse_hf(const format::JsonObject& cfg, HfConfig& c) {
    // GPT2Config's attribute_map also accepts the generic names.
    c.vocab_size = cfg.required_int("vocab_size");
    c.hidden_size = cfg.required_int_any({"n_embd", "hidden_size"});
    c.num_hidden_layers = cfg.required_int_any({"n_layer", "num_hidden_layers"});
    c.num_attention_heads = cfg.required_int_any({"n_head", "num_attention_heads"});
    c.num_key_value_heads = c.num_attention_heads;
    c.max_position_embeddings = cfg.int_or("n_positions", cfg.int_or("max_position_embeddings", 1024));
    c.intermediate_size = cfg.int_or("n_inner", 4 * c.hidden_size);  // null -> 4 * n_embd
    c.norm_eps = cfg.number_or("layer_norm_epsilon", 1e-5);
    c.hidden_act = cfg.string_or("activation_function", "gelu_new");
    c.rope_theta = 0.0;
    c.partial_rotary_factor = 0.0;  // learned absolute positions
    c.tie_word_embeddings = cfg.bool_or("tie_word_embeddings", true);
    c.attention_bias = c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.use_parallel_residual = false;
    // Variants of the attention arithmetic memskew does not implement.
    if (!cfg.bool_or("scale_attn_weights", true))
        throw FormatError(fmt::format("{}: scale_attn_weights=false is not supported", cfg.source()));
    if (cfg.bool_or("scale_attn_by_inverse_layer_idx", false))
        throw FormatError(fmt::format("{}: scale_attn_by_inverse_layer_idx=true is not supported", cfg.source()));
}

void write_hf(const HfConfig& c, nlohmann::ordered_json& j) {
    j["n_embd"] = c.hidden_size;
    j["n_layer"] = c.num_hidden_layers;
    j["n_head"] = c.num_attention_heads;
    j["n_positions"] = c.max_position_embeddings;
    j["n_ctx"] = c.max_position_embeddings;
    if (c.intermediate_size == 4 * c.hidden_size) j["n_inner"] = nullptr;
    else j["n_inner"] = c.intermediate_size;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["activation_function"] = c.hidden_act;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
}

void from_hf(const HfConfig&, ModelConfig& c, const std::string&) { c.qkv_bias = c.o_bias = c.mlp_bias = true; }

void to_hf(const ModelConfig&, HfConfig& h) {
    h.architecture = "GPT2LMHeadModel";
    h.model_type = "gpt2";
    h.use_parallel_residual = false;
}

std::string shape_source(const std::string& param, const HfConfig& h) {
    return shape_source_with(param, h, "n_embd", "n_inner", "n_head", false);
}

std::shared_ptr<CausalLmImpl> make(const ModelConfig& cfg) { return std::make_shared<Gpt2Lm>(cfg); }

}  // namespace

const ArchSpec& arch_gpt2() {
    static const ArchSpec spec = [] {
        ArchSpec a;
        a.key = "gpt2";
        a.hf_classes = {{"GPT2LMHeadModel", "gpt2"}};
        a.learned_positions = true;
        a.layer_norm = true;
        a.optional_tensor_prefix = "transformer.";
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
