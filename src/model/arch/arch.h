// Constructors of the architectures (one file each in this folder).
#pragma once

#include <memory>

#include "model/causal-lm.h"

namespace memskew {

std::shared_ptr<CausalLmImpl> make_llama(const ModelConfig& cfg);    // Llama, Mistral, Qwen2
std::shared_ptr<CausalLmImpl> make_gpt_neox(const ModelConfig& cfg); // GPT-NeoX / Pythia
std::shared_ptr<CausalLmImpl> make_gpt2(const ModelConfig& cfg);     // GPT-2

}  // namespace memskew
