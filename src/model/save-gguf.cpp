// Model -> GGUF (`llama` architecture), and random initialisation.
#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "model/model-impl.h"

namespace memskew {

namespace {

// Inverse of load-gguf.cpp's unpermute_rows: Hugging Face's half-split rotary
// pairs (i, i + hd/2) -> GGUF's adjacent pairs (2i, 2i+1), as llama.cpp's
// convert_hf_to_gguf.py permute() does.
torch::Tensor permute_rows(const torch::Tensor& w, int64_t n_heads) {
    const int64_t rows = w.size(0), in = w.size(1), hd = rows / n_heads;
    return w.reshape({n_heads, 2, hd / 2, in}).transpose(1, 2).reshape({rows, in}).contiguous();
}

void put_vocab(const Vocab& v, GgufWriter& w) {
    w.set("tokenizer.ggml.model", GgufValue::from_string(v.model));
    if (v.model == "gpt2") w.set("tokenizer.ggml.pre", GgufValue::from_string(v.pre));
    w.set("tokenizer.ggml.tokens", GgufValue::from_strings(v.tokens));
    if (!v.scores.empty()) w.set("tokenizer.ggml.scores", GgufValue::from_floats(v.scores));
    if (!v.types.empty()) w.set("tokenizer.ggml.token_type", GgufValue::from_int32s(v.types));
    if (v.model == "gpt2") w.set("tokenizer.ggml.merges", GgufValue::from_strings(v.merges));
    if (v.bos >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue::from_uint32(static_cast<uint32_t>(v.bos)));
    if (v.eos >= 0) w.set("tokenizer.ggml.eos_token_id", GgufValue::from_uint32(static_cast<uint32_t>(v.eos)));
    if (v.unk >= 0) w.set("tokenizer.ggml.unknown_token_id", GgufValue::from_uint32(static_cast<uint32_t>(v.unk)));
    if (v.pad >= 0) w.set("tokenizer.ggml.padding_token_id", GgufValue::from_uint32(static_cast<uint32_t>(v.pad)));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::from_bool(v.add_bos));
    w.set("tokenizer.ggml.add_eos_token", GgufValue::from_bool(v.add_eos));
    if (v.model == "llama") w.set("tokenizer.ggml.add_space_prefix", GgufValue::from_bool(v.add_space_prefix));
}

void put_tensor(GgufWriter& w, const std::string& name, const torch::Tensor& t, GgmlType type) {
    auto f = t.detach().to(torch::kFloat).contiguous();
    w.add_tensor(name, f.sizes().vec(), f.data_ptr<float>(), type);
}

}  // namespace

void Model::save_gguf(const std::string& path, GgmlType stored) const {
    if (stored != GgmlType::kF32 && stored != GgmlType::kF16 && stored != GgmlType::kBF16)
        throw InvalidInput("GGUF output type must be F32, F16 or BF16");
    c10::InferenceMode guard;
    const ModelConfig& c = impl_->config;
    auto& net = *impl_->net;
    GgufWriter w;
    w.set("general.architecture", GgufValue::from_string("llama"));
    w.set("general.name", GgufValue::from_string(c.name.empty() ? "memskew-model" : c.name));
    w.set("general.file_type", GgufValue::from_uint32(stored == GgmlType::kF32 ? 0 : stored == GgmlType::kF16 ? 1 : 32));
    w.set("llama.context_length", GgufValue::from_uint32(static_cast<uint32_t>(c.max_ctx)));
    w.set("llama.embedding_length", GgufValue::from_uint32(static_cast<uint32_t>(c.dim)));
    w.set("llama.block_count", GgufValue::from_uint32(static_cast<uint32_t>(c.n_layers)));
    w.set("llama.feed_forward_length", GgufValue::from_uint32(static_cast<uint32_t>(c.ffn_dim)));
    w.set("llama.attention.head_count", GgufValue::from_uint32(static_cast<uint32_t>(c.n_heads)));
    w.set("llama.attention.head_count_kv", GgufValue::from_uint32(static_cast<uint32_t>(c.n_kv_heads)));
    w.set("llama.rope.dimension_count", GgufValue::from_uint32(static_cast<uint32_t>(c.head_dim())));
    w.set("llama.rope.freq_base", GgufValue::from_float32(static_cast<float>(c.rope_base)));
    w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::from_float32(static_cast<float>(c.norm_eps)));
    w.set("llama.vocab_size", GgufValue::from_uint32(static_cast<uint32_t>(c.n_vocab)));
    put_vocab(impl_->tokenizer->vocab(), w);
    // Norm weights stay F32, as llama.cpp's converter keeps 1-D tensors.
    put_tensor(w, "token_embd.weight", net.model->embed_tokens->weight, stored);
    for (int64_t l = 0; l < c.n_layers; ++l) {
        auto* layer = net.model->layers[l]->as<LlamaLayerImpl>();
        auto name = [&](const char* n) { return fmt::format("blk.{}.{}.weight", l, n); };
        put_tensor(w, name("attn_norm"), layer->input_layernorm->weight, GgmlType::kF32);
        put_tensor(w, name("attn_q"), permute_rows(layer->self_attn->q_proj->weight.to(torch::kFloat), c.n_heads), stored);
        put_tensor(w, name("attn_k"), permute_rows(layer->self_attn->k_proj->weight.to(torch::kFloat), c.n_kv_heads), stored);
        put_tensor(w, name("attn_v"), layer->self_attn->v_proj->weight, stored);
        put_tensor(w, name("attn_output"), layer->self_attn->o_proj->weight, stored);
        put_tensor(w, name("ffn_norm"), layer->post_attention_layernorm->weight, GgmlType::kF32);
        put_tensor(w, name("ffn_gate"), layer->mlp->gate_proj->weight, stored);
        put_tensor(w, name("ffn_up"), layer->mlp->up_proj->weight, stored);
        put_tensor(w, name("ffn_down"), layer->mlp->down_proj->weight, stored);
    }
    put_tensor(w, "output_norm.weight", net.model->norm->weight, GgmlType::kF32);
    if (!c.tied_output) put_tensor(w, "output.weight", net.lm_head->weight, stored);
    with_context("error writing " + path, [&] { w.write(path); });
}

std::shared_ptr<Model> Model::random_llama(const ModelConfig& config, Vocab vocab, uint64_t seed,
                                           const LoadParams& params, double init_std) {
    set_compute_threads(params.n_threads);
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    impl->config.n_vocab = static_cast<int64_t>(vocab.tokens.size());
    impl->config.validate();
    impl->tokenizer = Tokenizer::from_vocab(std::move(vocab));
    impl->dtype = params.dtype;
    impl->path = "(random)";
    torch::manual_seed(seed);
    impl->net = Llama(impl->config);
    {
        torch::NoGradGuard no_grad;
        for (auto& item : impl->net->named_parameters()) {
            auto& p = item.value();
            if (p.dim() == 1) p.fill_(1.0);  // norm weights
            else p.normal_(0.0, init_std);
        }
    }
    impl->net->eval();
    if (params.dtype == DType::kBF16) impl->net->to(torch::kBFloat16);
    for (auto& p : impl->net->parameters()) p.set_requires_grad(false);
    return std::make_shared<Model>(std::move(impl));
}

}  // namespace memskew
