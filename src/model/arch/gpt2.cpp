// GPT-2: learned positions, LayerNorm, Conv1D projections (weights stored
// [in, out]), fused c_attn split as [q | k | v] over the hidden size, GELU
// (tanh) MLP, output tied to the token embeddings. Parameter names as Hugging
// Face's GPT2LMHeadModel: transformer.{wte, wpe, h.N.{ln_1, attn.{c_attn, c_proj},
// ln_2, mlp.{c_fc, c_proj}}, ln_f}, lm_head (tied).
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

}  // namespace

std::shared_ptr<CausalLmImpl> make_gpt2(const ModelConfig& cfg) { return std::make_shared<Gpt2Lm>(cfg); }

}  // namespace memskew
