// Model -> GGUF (`llama` architecture), and random initialisation.
#include <fmt/format.h>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "model/arch/arch.h"
#include "model/model-impl.h"

namespace memskew {

namespace {

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
    auto f = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    w.add_tensor(name, f.sizes().vec(), f.data_ptr<float>(), type);
}

}  // namespace

void Model::save_gguf(const std::string& path, GgmlType stored) const {
    if (stored != GgmlType::kF32 && stored != GgmlType::kF16 && stored != GgmlType::kBF16 &&
        stored != GgmlType::kQ8_0 && stored != GgmlType::kQ4_0)
        throw InvalidInput("GGUF output type must be F32, F16, BF16, Q8_0 or Q4_0");
    c10::InferenceMode guard;
    const ModelConfig& c = impl_->config;
    const ArchSpec& spec = arch_spec(c.arch);
    if (!spec.gguf_name)
        throw InvalidInput(fmt::format("GGUF output supports the llama architecture, not '{}'", c.arch),
                           "write a Hugging Face folder instead (memskew convert --to hf)");
    auto& net = *impl_->net;
    GgufWriter w;
    w.set("general.architecture", GgufValue::from_string(spec.gguf_name));
    w.set("general.name", GgufValue::from_string(c.name.empty() ? "memskew-model" : c.name));
    // llama.cpp's LLAMA_FTYPE values.
    const uint32_t file_type = stored == GgmlType::kF32    ? 0
                               : stored == GgmlType::kF16  ? 1
                               : stored == GgmlType::kQ4_0 ? 2
                               : stored == GgmlType::kQ8_0 ? 7
                                                           : 32;
    w.set("general.file_type", GgufValue::from_uint32(file_type));
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
    put_vocab(vocab_for_gguf(*impl_), w);
    // 1-D tensors (norms, biases) stay F32, as llama.cpp's converter keeps them.
    for (const auto& item : net.named_parameters()) {
        int64_t heads = 0;
        const std::string name = gguf_name_for(item.key(), c, &heads);
        if (name.empty()) throw InvalidInput(fmt::format("parameter '{}' has no GGUF name", item.key()));
        auto t = item.value().detach().to(torch::kFloat);
        if (heads) t = hf_to_gguf_rows(t, heads);
        put_tensor(w, name, t, t.dim() == 1 ? GgmlType::kF32 : stored);
    }
    with_context("error writing " + path, [&] { w.write(path); });
}

std::shared_ptr<Model> Model::random_llama(const ModelConfig& config, Vocab vocab, uint64_t seed,
                                           const LoadParams& params, double init_std) {
    set_compute_threads(params.n_threads);
    parse_device(params.device);  // before any work
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    impl->config.n_vocab = static_cast<int64_t>(vocab.tokens.size());
    impl->config.validate();
    impl->tokenizer = Tokenizer::from_vocab(std::move(vocab));
    impl->dtype = params.dtype;
    impl->path = "(random)";
    torch::manual_seed(seed);
    impl->net = make_causal_lm(impl->config);
    {
        torch::NoGradGuard no_grad;
        for (auto& item : impl->net->named_parameters()) {
            auto& p = item.value();
            const auto& key = item.key();
            const bool is_bias = key.size() >= 5 && key.compare(key.size() - 5, 5, ".bias") == 0;
            if (is_bias) p.normal_(0.0, init_std);
            else if (p.dim() == 1) p.fill_(1.0);  // norm weights
            else p.normal_(0.0, init_std);
        }
    }
    finish_loading(*impl, params.dtype, params.device);
    return ModelAccess::make(std::move(impl));
}

}  // namespace memskew
