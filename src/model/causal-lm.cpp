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
    cfg.validate();
    if (cfg.arch == "llama") return make_llama(cfg);
    if (cfg.arch == "gptneox") return make_gpt_neox(cfg);
    if (cfg.arch == "gpt2") return make_gpt2(cfg);
    throw FormatError(fmt::format("unsupported architecture '{}'", cfg.arch),
                      "supported: llama (Llama/Mistral/Qwen2/TinyLlama/SmolLM), gptneox (Pythia), gpt2");
}

}  // namespace memskew
