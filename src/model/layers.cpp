#include "model/layers.h"

#include "model/cpu-kernels.h"

#include <cmath>
#include <limits>

namespace memskew {

namespace F = torch::nn::functional;

KvCache KvCache::allocate(const ModelConfig& cfg, int64_t batch, int64_t capacity, torch::Dtype dtype,
                          torch::Device device) {
    KvCache c;
    c.capacity = capacity;
    const auto opts = torch::TensorOptions().dtype(dtype).device(device);
    for (int64_t l = 0; l < cfg.n_layers; ++l) {
        c.k.push_back(torch::zeros({batch, cfg.n_kv_heads, capacity, cfg.head_dim()}, opts));
        c.v.push_back(torch::zeros({batch, cfg.n_kv_heads, capacity, cfg.head_dim()}, opts));
    }
    return c;
}

void KvCache::select_rows(const torch::Tensor& rows) {
    for (auto& t : k) t = t.index_select(0, rows);
    for (auto& t : v) t = t.index_select(0, rows);
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias, bool conv1d)
    : in_features(in), out_features(out), conv1d_layout(conv1d) {
    weight = register_parameter("weight", conv1d ? torch::empty({in, out}) : torch::empty({out, in}));
    if (has_bias) bias = register_parameter("bias", torch::zeros({out}));
}

LoraWeightImpl::LoraWeightImpl(int64_t rows, int64_t cols) {
    weight = register_parameter("weight", torch::zeros({rows, cols}, torch::kFloat));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
    if (!lora_A.is_empty() && kernels::lora_linear_ok(x, weight, bias, lora_A->weight, lora_B->weight)) {
        return kernels::lora_linear(x, weight, bias, conv1d_layout, lora_A->weight, lora_B->weight, lora_scaling,
                                    is_training() ? lora_dropout : 0.0);
    }
    torch::Tensor y;
    if (conv1d_layout) {
        y = torch::matmul(x, weight);
        if (bias.defined()) y = y + bias;
    } else {
        y = F::linear(x, weight, bias.defined() ? bias : torch::Tensor());
    }
    if (lora_A.is_empty()) return y;
    auto xa = x.to(lora_A->weight.scalar_type());
    // Dropout as PEFT's nn.Dropout (zero with probability p, scale the rest by
    // 1/(1-p)), with a hash-based mask: bernoulli_ is slow on this CPU build.
    if (lora_dropout > 0.0 && is_training()) xa = xa * kernels::dropout_mask(xa, lora_dropout).to(xa.scalar_type());
    // The scaling goes on the rank-r intermediate (r values per row instead of out).
    auto delta = F::linear(F::linear(xa, lora_A->weight) * lora_scaling, lora_B->weight);  // [.., out]
    return (y + delta).to(y.scalar_type());
}

void LinearImpl::attach_lora(int64_t rank, double alpha, double dropout, bool use_rslora, bool trainable) {
    TORCH_CHECK(rank > 0, "LoRA rank must be positive");
    if (has_lora()) detach_lora();
    lora_rank = rank;
    lora_alpha = alpha;
    lora_dropout = dropout;
    lora_scaling = use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
    lora_A = register_module("lora_A", LoraWeight(rank, in_features));
    lora_B = register_module("lora_B", LoraWeight(out_features, rank));
    {
        torch::NoGradGuard no_grad;
        // kaiming_uniform_(a=sqrt(5)) on [r, in]: U(-1/sqrt(in), 1/sqrt(in)).
        // Drawn on the CPU, so the default CPU generator moves as it does for
        // a CPU model whatever the device; then beside the base weight.
        const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
        lora_A->weight.uniform_(-bound, bound);
    }
    lora_A->to(weight.device());
    lora_B->to(weight.device());
    lora_A->weight.set_requires_grad(trainable);
    lora_B->weight.set_requires_grad(trainable);
}

torch::Tensor LinearImpl::lora_delta_weight() const {
    TORCH_CHECK(has_lora(), "no LoRA adapter attached");
    auto delta = torch::matmul(lora_B->weight.detach().to(torch::kFloat), lora_A->weight.detach().to(torch::kFloat)) *
                 lora_scaling;  // [out, in]
    return conv1d_layout ? delta.t().contiguous() : delta;
}

void LinearImpl::merge_lora() {
    if (!has_lora()) return;
    {
        torch::NoGradGuard no_grad;
        weight.add_(lora_delta_weight().to(weight.scalar_type()));
    }
    detach_lora();
}

void LinearImpl::detach_lora() {
    if (!has_lora()) return;
    unregister_module("lora_A");
    unregister_module("lora_B");
    lora_A = LoraWeight(nullptr);
    lora_B = LoraWeight(nullptr);
    lora_rank = 0;
    lora_alpha = lora_scaling = lora_dropout = 0.0;
}

NormImpl::NormImpl(int64_t dim, double eps_, bool layer_norm_) : eps(eps_), layer_norm(layer_norm_) {
    weight = register_parameter("weight", torch::ones({dim}));
    if (layer_norm) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
    if (layer_norm) {
        // As torch's LayerNorm, computed in fp32 for low-precision inputs.
        auto y = F::layer_norm(x.to(torch::kFloat), F::LayerNormFuncOptions({x.size(-1)})
                                                         .weight(weight.to(torch::kFloat))
                                                         .bias(bias.to(torch::kFloat))
                                                         .eps(eps));
        return y.to(x.scalar_type());
    }
    // As Hugging Face's LlamaRMSNorm: normalize in fp32, cast back, then scale.
    // Inference takes the fused kernel (one pass per row instead of five).
    if (kernels::fused_ok(x, weight)) return kernels::rms_norm(x, weight, eps);
    if (kernels::supported(x, weight))
        return kernels::rms_norm_autograd(x, weight, eps);  // training: the kernel, with its backward
    // mean(x^2) comes from one reduction (the 2-norm) instead of a squared copy.
    auto xf = x.to(torch::kFloat);
    const double dim = static_cast<double>(x.size(-1));
    auto norm = at::norm(xf, 2, {-1}, /*keepdim=*/true);  // [..., 1]
    auto normed = xf * torch::rsqrt(norm * norm / dim + eps);
    return weight * normed.to(x.scalar_type());
}

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
    if (name == "silu") return F::silu(x);
    if (name == "gelu") return F::gelu(x);  // exact (erf)
    if (name == "relu") return F::relu(x);
    // gelu_new / gelu_fast / gelu_pytorch_tanh: the tanh approximation.
    constexpr double kSqrt2OverPi = 0.7978845608028654;
    return 0.5 * x * (1.0 + torch::tanh(kSqrt2OverPi * (x + 0.044715 * torch::pow(x, 3))));
}

Rotary::Rotary(const ModelConfig& cfg) : cfg_(cfg), rotary_dim_(cfg.rotary_dim()) { rebuild(); }

void Rotary::set_freq_factors(const torch::Tensor& factors) {
    factors_ = factors.to(torch::kCPU, torch::kDouble).reshape({-1});
    rebuild();
}

void Rotary::to(const torch::Device& device) {
    device_ = device;
    rebuild();
}

void Rotary::rebuild() {
    if (rotary_dim_ == 0) return;
    auto inv_freq = 1.0 / torch::pow(torch::tensor(cfg_.rope_base, torch::kDouble),
                                     torch::arange(0, rotary_dim_, 2, torch::kDouble) / static_cast<double>(rotary_dim_));
    if (cfg_.rope_scaling == "linear") {
        inv_freq = inv_freq / cfg_.rope_factor;
    } else if (cfg_.rope_scaling == "llama3") {
        // Hugging Face's _compute_llama3_parameters.
        const double factor = cfg_.rope_factor, lo = cfg_.rope_low_freq_factor, hi = cfg_.rope_high_freq_factor;
        const double old_ctx = static_cast<double>(cfg_.rope_original_ctx);
        const double low_freq_wavelen = old_ctx / lo, high_freq_wavelen = old_ctx / hi;
        auto wavelen = 2.0 * M_PI / inv_freq;
        auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq);
        auto smooth = (old_ctx / wavelen - lo) / (hi - lo);
        auto smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
        auto medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
        inv_freq = torch::where(medium, smoothed, scaled);
    }
    if (factors_.defined()) inv_freq = inv_freq / factors_;
    auto t = torch::arange(cfg_.max_ctx, torch::kDouble);
    auto freqs = torch::outer(t, inv_freq);     // [ctx, rot/2]
    auto emb = torch::cat({freqs, freqs}, -1);  // [ctx, rot]
    // Built in double on the CPU (the same tables whatever the device), then moved.
    cos_ = emb.cos().to(device_, torch::kFloat);
    sin_ = emb.sin().to(device_, torch::kFloat);
}

std::pair<torch::Tensor, torch::Tensor> Rotary::tables(const torch::Tensor& pos) const {
    const int64_t B = pos.size(0), T = pos.size(1);
    auto flat = pos.reshape({-1});
    return {cos_.index_select(0, flat).view({B, 1, T, rotary_dim_}),
            sin_.index_select(0, flat).view({B, 1, T, rotary_dim_})};
}

torch::Tensor Rotary::apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const {
    const bool kernel_layout = rotary_dim_ > 0 && x.dim() == 4 && x.stride(3) == 1;
    if (kernel_layout && kernels::fused_ok(x)) return kernels::rotary(x, cos, sin, rotary_dim_);
    // Training: the same kernel, with the inverse rotation as its backward.
    if (kernel_layout && !cos.requires_grad() && !sin.requires_grad() && kernels::supported(x))
        return kernels::rotary_autograd(x, cos, sin, rotary_dim_);
    const auto dt = x.scalar_type();
    const int64_t hd = x.size(-1);
    auto rot = x.narrow(-1, 0, rotary_dim_).to(torch::kFloat);
    const int64_t half = rotary_dim_ / 2;
    auto rotated = torch::cat({-rot.narrow(-1, half, half), rot.narrow(-1, 0, half)}, -1);
    auto out = (rot * cos + rotated * sin).to(dt);
    if (rotary_dim_ == hd) return out;
    return torch::cat({out, x.narrow(-1, rotary_dim_, hd - rotary_dim_)}, -1);
}

AttentionMask make_attention_mask(const torch::Tensor& pos, const KvCache* cache) {
    const int64_t B = pos.size(0), T = pos.size(1);
    int64_t n_slots = T;
    torch::Tensor key_pos;  // [B, S]
    if (cache) {
        n_slots = pos.max().item<int64_t>() + 1;
        TORCH_CHECK(n_slots <= cache->capacity, "KV cache overflow");
        key_pos = torch::arange(n_slots, pos.options().dtype(torch::kLong)).unsqueeze(0).expand({B, n_slots});
    } else {
        key_pos = pos;
    }
    auto visible = key_pos.unsqueeze(1) <= pos.unsqueeze(2);  // [B, T, S]
    auto mask = torch::zeros({B, T, n_slots}, pos.options().dtype(torch::kFloat))
                    .masked_fill_(visible.logical_not(), -std::numeric_limits<float>::infinity())
                    .view({B, 1, 1, T, n_slots});
    torch::Tensor n_visible;
    const bool monotone =
        n_slots < 2 || (key_pos.narrow(1, 1, n_slots - 1) >= key_pos.narrow(1, 0, n_slots - 1)).all().item<bool>();
    if (monotone) n_visible = visible.sum(-1);  // [B, T]
    return {mask, n_slots, n_visible};
}

AttentionMask narrow_queries(const AttentionMask& m, int64_t first, int64_t n) {
    AttentionMask out{m.mask.narrow(3, first, n), m.n_slots, torch::Tensor()};
    if (m.n_visible.defined()) out.n_visible = m.n_visible.narrow(1, first, n).contiguous();
    return out;
}

torch::Tensor attend(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, const AttentionMask& mask,
                     const torch::Tensor& pos, KvCache* cache, int64_t layer) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3);
    const int64_t Hkv = k.size(1), R = H / Hkv;
    const auto dt = q.scalar_type();
    if (cache) {
        auto idx = pos.view({B, 1, T, 1}).expand({B, Hkv, T, hd});
        cache->k[layer].scatter_(2, idx, k);
        cache->v[layer].scatter_(2, idx, v);
        k = cache->k[layer].narrow(2, 0, mask.n_slots);  // [B, Hkv, S, hd]
        v = cache->v[layer].narrow(2, 0, mask.n_slots);
    }
    if (mask.n_visible.defined() && kernels::supported(q, k) && kernels::supported(q, v)) {
        // q k^T, then one fused pass per row scales, masks (the visible keys
        // are a prefix) and normalises in fp32, as Hugging Face's eager
        // attention (matmul, / sqrt(hd), + mask, softmax in fp32); in training
        // its backward is one fused pass per row as well.
        // Queries go in chunks that bound the scores to about 16M entries (at
        // least one query row per chunk), and each chunk multiplies only the
        // keys its queries can see (causal: the first chunks skip most of them).
        const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
        const int64_t S = k.size(2);
        const int64_t chunk = std::max<int64_t>(1, kernels::attention_score_budget() / std::max<int64_t>(1, B * H * S));
        const auto n_visible = mask.n_visible;  // [B, T]
        auto attend_chunk = [&](const torch::Tensor& qc, int64_t t0, int64_t n) {  // qc [B, Hkv, R*n, hd]
            const auto nv = n_visible.narrow(1, t0, n);
            const int64_t s_max = std::min<int64_t>(S, std::max<int64_t>(1, nv.max().item<int64_t>()));
            auto scores = torch::matmul(qc, k.narrow(2, 0, s_max).transpose(-1, -2));  // [B, Hkv, R*n, s_max]
            if (kernels::fused_ok(scores)) kernels::prefix_softmax_(scores, nv.repeat({1, R}), scale);
            else scores = kernels::prefix_softmax_autograd(scores, nv.repeat({1, R}), scale);
            return torch::matmul(scores, v.narrow(2, 0, s_max));  // [B, Hkv, R*n, hd]
        };
        if (T <= chunk) {
            auto out = attend_chunk(q.reshape({B, Hkv, R * T, hd}), 0, T);
            return out.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
        }
        const auto qg = q.reshape({B, Hkv, R, T, hd});
        auto out = torch::empty({B, T, Hkv, R, hd}, q.options());
        for (int64_t t0 = 0; t0 < T; t0 += chunk) {
            const int64_t n = std::min(chunk, T - t0);
            auto oc = attend_chunk(qg.narrow(3, t0, n).reshape({B, Hkv, R * n, hd}), t0, n);
            out.narrow(1, t0, n).copy_(oc.view({B, Hkv, R, n, hd}).permute({0, 3, 1, 2, 4}));
        }
        return out.view({B, T, H * hd});
    }
    // Other dtypes/devices, or keys not in position order (no visible prefix):
    // the scale goes on q (smaller than the scores; exact for power-of-two head
    // dims), the mask is added in place, and softmax accumulates in fp32 inside
    // the kernel even for bf16 scores: three passes over [.., T, S] instead of five.
    auto qg = (q * (1.0 / std::sqrt(static_cast<double>(hd)))).reshape({B, Hkv, R, T, hd});
    auto scores = torch::matmul(qg, k.unsqueeze(2).transpose(-1, -2));  // [B, Hkv, R, T, S]
    scores.add_(dt == torch::kFloat ? mask.mask : mask.mask.to(dt));
    auto probs = torch::softmax(scores, -1);
    auto out = torch::matmul(probs, v.unsqueeze(2));  // [B, Hkv, R, T, hd]
    return out.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
}

}  // namespace memskew
