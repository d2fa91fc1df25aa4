// The architecture families memskew runs, one file each in this folder.
//
// An architecture file defines `const ArchSpec& arch_<file name>()` ('-' as
// '_'), holding everything that differs between families: the Hugging Face
// classes it covers, its config.json keys (parse and write), how those become
// a ModelConfig and back, its GGUF name if any, and the factory of its module
// (whose parameters carry the checkpoint's tensor names). CMake lists the
// folder and generates the registry (arch-list.cpp), so adding an
// architecture touches only its own file; nothing else dispatches on
// ModelConfig::arch.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "format/hf-json.h"
#include "memskew/hf-config.h"
#include "memskew/model.h"
#include "model/causal-lm.h"

namespace memskew {

// One Hugging Face class: architectures[0] and model_type in config.json.
struct HfClass {
    const char* class_name;  // "LlamaForCausalLM"
    const char* model_type;  // "llama"
};

struct ArchSpec {
    const char* key = "";               // ModelConfig::arch and HfConfig::arch ("llama")
    std::vector<HfClass> hf_classes;    // config.json classes this family reads
    const char* gguf_name = nullptr;    // GGUF general.architecture, when memskew reads/writes it as GGUF
    bool learned_positions = false;     // absolute position embeddings instead of rotary (GPT-2)
    bool layer_norm = false;            // LayerNorm with bias (else RMSNorm): counts parameters
    // A prefix some checkpoints of this family leave out of tensor names
    // ("transformer." in GPT-2 checkpoints saved from GPT2Model), or "".
    const char* optional_tensor_prefix = "";

    // config.json -> HfConfig: shapes, norm, activation, rotary, biases, for
    // the class in c.architecture. Set c.head_dim only when the file gives
    // one explicitly (else hidden_size / heads). FormatError naming the key.
    void (*parse_hf)(const format::JsonObject& cfg, HfConfig& c) = nullptr;
    // HfConfig -> this family's config.json keys (the caller writes
    // architectures, model_type, vocab_size, rope_scaling, dtype and token ids).
    void (*write_hf)(const HfConfig& c, nlohmann::ordered_json& j) = nullptr;
    // HfConfig -> the ModelConfig fields only this family sets (biases,
    // residual layout); FormatError for what the module cannot run.
    void (*from_hf)(const HfConfig& h, ModelConfig& c, const std::string& source) = nullptr;
    // ModelConfig -> HfConfig: the class (architecture, model_type) and the
    // family's fields; InvalidInput when no class of the family fits.
    void (*to_hf)(const ModelConfig& c, HfConfig& h) = nullptr;
    // The config.json keys that fix a parameter's shape, for error messages.
    std::string (*shape_source)(const std::string& param, const HfConfig& h) = nullptr;
    // The module, parameters named as the family's checkpoints name them.
    std::shared_ptr<CausalLmImpl> (*make)(const ModelConfig& c) = nullptr;
};

// Helpers for the families that share Hugging Face's usual key names.
// vocab_size, hidden_size, intermediate_size, num_hidden_layers and
// num_attention_heads, all required.
void parse_standard_hf_shapes(const format::JsonObject& cfg, HfConfig& c);
// hidden_size ... tie_word_embeddings, in transformers' order.
void write_standard_hf_keys(const HfConfig& c, nlohmann::ordered_json& j);
// "hidden_size=64, num_attention_heads=4" for a parameter, given the
// family's names of the hidden size, MLP width and head count keys.
std::string shape_source_with(const std::string& param, const HfConfig& h, const char* hidden, const char* inter,
                              const char* heads, bool kv_heads);

// Every family, in a fixed order (generated from this folder).
const std::vector<const ArchSpec*>& all_archs();
// By ModelConfig::arch; FormatError listing the known keys otherwise.
const ArchSpec& arch_spec(const std::string& key);
// By config.json's class name (or, when that is empty, its model_type); the
// matching class in *cls. nullptr when no family covers it.
const ArchSpec* arch_for_hf(const std::string& class_name, const std::string& model_type, const HfClass** cls);
// By GGUF general.architecture; nullptr when memskew reads no such GGUF.
const ArchSpec* arch_for_gguf(const std::string& gguf_name);

}  // namespace memskew
