#include "model/causal-lm.h"

#include <fmt/format.h>

#include "memskew/error.h"
#include "model/arch/arch.h"

namespace memskew {

void CausalLmImpl::set_rope_freq_factors(const torch::Tensor&) {
    throw FormatError(fmt::format("rope frequency factors given for the '{}' architecture, which has no rotary "
                                  "embeddings",
                                  cfg_.arch));
}

std::shared_ptr<CausalLmImpl> make_causal_lm(const ModelConfig& cfg) {
    const ArchSpec& spec = arch_spec(cfg.arch);  // FormatError naming the known families
    cfg.validate();
    return spec.make(cfg);
}

ReferenceRows reference_rows(const std::vector<int64_t>& prompt_lens, const std::vector<int64_t>& reference_lens,
                             int64_t T) {
    TORCH_CHECK(prompt_lens.size() == reference_lens.size(), "reference_rows: one prompt length per reference length");
    ReferenceRows r;
    r.first = T;
    for (size_t b = 0; b < prompt_lens.size(); ++b) {
        TORCH_CHECK(prompt_lens[b] >= 1 && prompt_lens[b] + reference_lens[b] - 1 <= T,
                    "reference_rows: sample ", b, " does not fit ", T, " positions");
        r.first = std::min(r.first, prompt_lens[b] - 1);
    }
    r.kept = T - r.first;
    for (size_t b = 0; b < prompt_lens.size(); ++b) {
        const int64_t start = static_cast<int64_t>(b) * r.kept + prompt_lens[b] - 1 - r.first;
        for (int64_t j = 0; j < reference_lens[b]; ++j) r.rows.push_back(start + j);
    }
    return r;
}

}  // namespace memskew
