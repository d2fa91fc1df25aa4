// LoRA adapters in PEFT's format (issue 4; the base of LoRA training).
//
// An adapter folder as peft's save_pretrained writes it:
//   adapter_config.json          LoraConfig (hf-config.h: PeftConfig)
//   adapter_model.safetensors    "base_model.model.<module>.lora_A.weight" [r, in]
//                                "base_model.model.<module>.lora_B.weight" [out, r]
//                                and, for modules_to_save / bias != "none",
//                                full tensors "base_model.model.<parameter>"
// (the adapter name, "default", is not part of the saved keys).
//
// Attaching is on the fly: the base weights are not changed (except the
// parameters an adapter replaces through modules_to_save, which are backed up
// and restored by unload_adapter). An attached adapter is part of the Model:
// every Engine of that Model sees it. To probe a base model and an adapter
// at the same time, load the model twice; to probe several adapters one after
// another, load -> probe -> unload on one Model (what `memskew probe
// --adapter` does). Not thread-safe: attach/unload while no Engine runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memskew/model.h"
#include "memskew/peft-config.h"

namespace memskew {

struct AdapterInfo {
    std::string path;         // the folder; "" for a fresh adapter (attach_lora)
    std::string fingerprint;  // adapter_fingerprint(path); "" for a fresh adapter
    PeftConfig config;
    std::vector<std::string> lora_modules;         // modules with LoRA, in model order
    std::vector<std::string> replaced_parameters;  // base parameters the adapter replaced
    int64_t n_lora_parameters = 0;                 // elements of all LoRA factors
};

struct AdapterLoadParams {
    // LoRA factors (and replaced parameters) require grad: resuming training
    // from a checkpoint. Inference leaves them frozen.
    bool trainable = false;
};

// Modules LoRA can wrap (every linear projection, the output layer included),
// in model order: "model.layers.0.self_attn.q_proj", ..., "lm_head".
std::vector<std::string> linear_module_names(const Model& model);

// The modules `config` wraps, as PEFT selects them (PeftConfig::targets,
// layers_to_transform; "all-linear" leaves out the output layer). InvalidInput
// when a target_modules entry (or the regex) names no module, listing the
// linear modules the model has; when a target is not a linear layer (e.g. an
// embedding); or when nothing is selected.
std::vector<std::string> lora_target_modules(const Model& model, const PeftConfig& config);

// Attaches a fresh adapter (A Kaiming-uniform from `seed`, B zero: the model's
// output is unchanged) to the modules `config` selects, with rank_pattern /
// alpha_pattern applied. trainable: the LoRA factors and the parameters of
// modules_to_save require grad; everything else stays frozen. InvalidInput when
// an adapter is already attached.
AdapterInfo attach_lora(Model& model, const PeftConfig& config, uint64_t seed, bool trainable = true);

// Loads and attaches a PEFT adapter folder (or its adapter_model.safetensors /
// adapter_config.json). Everything is validated before the model is touched:
//   - IoError: missing folder/files; adapter_model.bin only (pickle) is a FormatError.
//   - FormatError: peft_type other than LORA, DoRA, LoRA on embeddings, a key
//     without the "base_model.model." prefix, a tensor naming a module or
//     parameter the model lacks ("... is this adapter for another base
//     model?"), shapes that disagree with r (rank_pattern) or the module's
//     in/out features, a lora_A without its lora_B.
//   - InvalidInput: an adapter is already attached (unload_adapter first).
AdapterInfo load_adapter(Model& model, const std::string& folder, const AdapterLoadParams& params = {});

// Removes every LoRA factor and restores the parameters the adapter replaced.
// No-op without an adapter.
void unload_adapter(Model& model);

// Folds every LoRA factor into its base weight, as PEFT's merge_and_unload
// (W += B A * scaling, transposed for Conv1D). The base weights change: use a
// Model no one else shares. Replaced parameters stay replaced.
void merge_adapter(Model& model);

// The attached adapter, if any.
std::optional<AdapterInfo> attached_adapter(const Model& model);

// Writes `folder`/adapter_config.json (config) and adapter_model.safetensors
// (F32, metadata {"format": "pt"}) as PEFT's save_pretrained does: the LoRA
// factors of every wrapped module, the parameters of config.modules_to_save,
// and biases per config.bias. InvalidInput when no LoRA is attached or a
// module's rank differs from what config gives it. Creates the folder.
void save_adapter(const Model& model, const std::string& folder, const PeftConfig& config);

// xxh3-64 (hex) of adapter_config.json and adapter_model.safetensors: content,
// not paths, so copies of an adapter give the same run key.
std::string adapter_fingerprint(const std::string& folder);

// PEFT's saved key of a LoRA factor: peft_lora_key("model.layers.0.self_attn.q_proj", 'A')
// == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
std::string peft_lora_key(const std::string& module, char factor);
inline constexpr const char* kPeftKeyPrefix = "base_model.model.";

}  // namespace memskew
