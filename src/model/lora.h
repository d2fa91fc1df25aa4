// LibTorch side of LoRA adapters (include/memskew/adapter.h): what a trainer
// needs beyond the public API.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "memskew/adapter.h"
#include "model/causal-lm.h"
#include "model/layers.h"

namespace memskew {

// Every LinearImpl of the network with its module name, in model order.
std::vector<std::pair<std::string, LinearImpl*>> linear_modules(CausalLmImpl& net);

// The parameters that require grad (after attach_lora(..., trainable=true):
// the LoRA factors and the parameters of modules_to_save), named as in
// named_parameters(), e.g. "model.layers.0.self_attn.q_proj.lora_A.weight".
std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(CausalLmImpl& net);

// The LoRA rank and alpha PEFT gives `module` (rank_pattern / alpha_pattern:
// the first pattern key k with re.match(rf"(.*\.)?({k})$", module)).
int64_t lora_rank_for(const PeftConfig& config, const std::string& module);
double lora_alpha_for(const PeftConfig& config, const std::string& module);

}  // namespace memskew
