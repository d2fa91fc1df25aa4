// Hugging Face JSON side files of a model folder: config.json (HfConfig),
// generation_config.json + tokenizer_config.json + special_tokens_map.json
// (HfTokenizerConfig), PEFT adapter_config.json (PeftConfig) and the Trainer's
// trainer_state.json (TrainerState). Parsers and writers; no weights, no
// LibTorch.
//
// Defaults follow the transformers config classes (LlamaConfig, MistralConfig,
// Qwen2Config, GPTNeoXConfig, GPT2Config), so a config.json that omits a field
// means what it means to transformers. Fields that fix tensor shapes
// (vocab_size, hidden_size, layers, heads, intermediate_size) are required:
// a guessed default there would only fail later, less clearly.
//
// Errors are FormatError naming the file and the key ("config.json: missing
// required field 'hidden_size'"); unreadable files are IoError.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memskew/file-io.h"

namespace memskew {

// Architecture families memskew runs.
enum class HfArch { kLlama, kMistral, kQwen2, kGptNeoX, kGpt2 };
const char* hf_arch_name(HfArch a);  // the HF class name, "LlamaForCausalLM", ...
// "LlamaForCausalLM, MistralForCausalLM, ..." for error messages.
std::string hf_supported_architectures();

struct HfRopeScaling {
    // "linear", "llama3" or "dynamic" (dynamic NTK changes nothing for
    // sequences within max_position_embeddings). "default"/null means none.
    std::string type;
    double factor = 1.0;
    // llama3 only.
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    int64_t original_max_position_embeddings = 0;
};

struct HfConfig {
    HfArch arch = HfArch::kLlama;
    std::string architecture;  // architectures[0] as written ("LlamaForCausalLM")
    std::string model_type;    // "llama", "mistral", "qwen2", "gpt_neox", "gpt2"

    // Shapes. GPT-2's n_embd/n_layer/n_head/n_positions/n_inner land here too.
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;  // = num_attention_heads unless set (GQA)
    int64_t head_dim = 0;             // = hidden_size / heads unless set (Llama/Mistral allow it)
    int64_t intermediate_size = 0;    // GPT-2: n_inner, null -> 4 * n_embd
    int64_t max_position_embeddings = 0;

    // Normalisation: RMSNorm eps (Llama family) or LayerNorm eps (NeoX, GPT-2),
    // read from rms_norm_eps / layer_norm_eps / layer_norm_epsilon.
    double norm_eps = 1e-6;
    std::string hidden_act;  // "silu", "gelu", "gelu_new", "gelu_fast", "relu", ...

    // Rotary embeddings. GPT-2 has learned positions: partial_rotary_factor 0.
    double rope_theta = 10000.0;             // NeoX: rotary_emb_base
    double partial_rotary_factor = 1.0;      // NeoX: rotary_pct (default 0.25)
    std::optional<HfRopeScaling> rope_scaling;

    bool tie_word_embeddings = false;  // default true for GPT-2, false otherwise

    // Biases of the linear layers, resolved per architecture:
    //   Llama/Mistral: attention_bias -> q,k,v,o; mlp_bias -> gate,up,down
    //   Qwen2: q,k,v always biased, o never (there is no config key for it)
    //   GPT-NeoX: attention_bias (default true) -> qkv and dense; MLP always
    //   GPT-2: every linear layer (c_attn, c_proj, c_fc)
    bool attention_bias = false;  // the config key as read (or its default)
    bool qkv_bias = false;
    bool o_bias = false;
    bool mlp_bias = false;

    bool use_parallel_residual = true;  // GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
    // Sliding-window attention span, 0 when none (Mistral sliding_window;
    // Qwen2 only when use_sliding_window is true).
    int64_t sliding_window = 0;

    std::string torch_dtype;  // "float16", "bfloat16", "float32" or "" (also read from "dtype")
    std::vector<int64_t> bos_token_ids;  // int or list in the file; empty when null/absent
    std::vector<int64_t> eos_token_ids;
    std::optional<int64_t> pad_token_id;

    // Throws FormatError describing the first inconsistency (heads not dividing
    // the hidden size, KV heads not dividing heads, non-positive sizes).
    void validate(const std::string& source = "config.json") const;
    // Dimensions of each head that rotate: int(head_dim * partial_rotary_factor)
    // as in transformers (Pythia-70m: 64 * 0.25 = 16); 0 for GPT-2.
    int64_t rotary_dim() const;
};

// Parses config.json text; `source` names the file in errors.
HfConfig parse_hf_config(const std::string& json, const std::string& source = "config.json");
// Reads <folder>/config.json (or the file itself when given one).
HfConfig load_hf_config(const std::string& folder_or_file);
// config.json text transformers loads back (GPT-2 uses its own key names).
std::string hf_config_to_json(const HfConfig& config);
void save_hf_config(const HfConfig& config, const std::string& path);

// Special tokens and chat template from tokenizer_config.json,
// special_tokens_map.json, generation_config.json and chat_template.jinja.
struct HfTokenizerConfig {
    // Token strings (tokenizer_config / special_tokens_map; the latter wins,
    // as in transformers). Given as "<s>" or {"content": "<s>", ...}.
    std::optional<std::string> bos_token;
    std::optional<std::string> eos_token;
    std::optional<std::string> unk_token;
    std::optional<std::string> pad_token;
    std::vector<std::string> additional_special_tokens;
    std::optional<bool> add_bos_token;  // unset: the tokenizer's own default decides
    std::optional<bool> add_eos_token;
    std::string tokenizer_class;
    std::optional<int64_t> model_max_length;  // unset when absent or the 1e30 "no limit" sentinel
    // The default chat template; named ones when the file holds a list
    // ([{"name": "default", "template": ...}, {"name": "tool_use", ...}]).
    std::string chat_template;
    std::map<std::string, std::string> chat_templates;
    // Token ids from generation_config.json (ints or lists); empty when absent.
    std::vector<int64_t> bos_token_ids;
    std::vector<int64_t> eos_token_ids;
    std::optional<int64_t> pad_token_id;
    std::vector<std::string> files_read;  // which of the side files existed
};

// Individual parsers (text in, fields merged into `out`; `source` names the file).
void parse_hf_tokenizer_config(const std::string& json, HfTokenizerConfig& out,
                               const std::string& source = "tokenizer_config.json");
void parse_hf_special_tokens_map(const std::string& json, HfTokenizerConfig& out,
                                 const std::string& source = "special_tokens_map.json");
void parse_hf_generation_config(const std::string& json, HfTokenizerConfig& out,
                                const std::string& source = "generation_config.json");
// Reads whichever of the files exist in `folder` (none is required).
HfTokenizerConfig load_hf_tokenizer_config(const std::string& folder);

// PEFT adapter_config.json (LoRA only).
struct PeftConfig {
    std::string peft_type = "LORA";
    std::string task_type = "CAUSAL_LM";
    std::string base_model_name_or_path;
    int64_t r = 8;
    double lora_alpha = 8.0;
    double lora_dropout = 0.0;
    // target_modules: a list of module-name suffixes, or (a string) a regex
    // matched against the full module name.
    std::vector<std::string> target_modules;
    std::string target_modules_regex;
    bool all_linear = false;  // target_modules "all-linear": every linear layer but the output
    std::vector<std::string> modules_to_save;
    bool fan_in_fan_out = false;  // weights stored [in, out] (GPT-2 Conv1D)
    std::string bias = "none";    // "none", "all", "lora_only"
    bool use_rslora = false;      // scaling alpha / sqrt(r) instead of alpha / r
    bool use_dora = false;        // parsed so callers can reject it
    bool inference_mode = true;
    std::map<std::string, int64_t> rank_pattern;  // module regex -> r
    std::map<std::string, double> alpha_pattern;  // module regex -> alpha
    std::vector<int64_t> layers_to_transform;     // empty: all layers

    double scaling() const;  // lora_alpha / r, or lora_alpha / sqrt(r) with rslora
    // Whether PEFT would wrap the module `name` ("model.layers.0.self_attn.q_proj"):
    // regex -> full match; list -> equal to an entry or ends with "." + entry.
    bool targets(const std::string& module_name) const;
    void validate(const std::string& source = "adapter_config.json") const;
};

PeftConfig parse_peft_config(const std::string& json, const std::string& source = "adapter_config.json");
PeftConfig load_peft_config(const std::string& folder_or_file);
std::string peft_config_to_json(const PeftConfig& config);  // loadable by peft.LoraConfig
void save_peft_config(const PeftConfig& config, const std::string& path);

// Hugging Face Trainer's trainer_state.json.
struct TrainerLogEntry {
    double epoch = 0.0;
    int64_t step = 0;
    // Every other numeric field of the entry: loss, learning_rate, grad_norm,
    // eval_loss, train_runtime, ... (non-numeric fields are dropped).
    std::map<std::string, double> values;
    std::optional<double> get(const std::string& key) const;
    std::optional<double> loss() const { return get("loss"); }
    std::optional<double> learning_rate() const { return get("learning_rate"); }
};

struct TrainerState {
    int64_t global_step = 0;
    double epoch = 0.0;
    int64_t max_steps = 0;
    double num_train_epochs = 0.0;
    int64_t logging_steps = 500;
    int64_t eval_steps = 500;
    int64_t save_steps = 500;
    int64_t train_batch_size = 0;
    double total_flos = 0.0;
    std::optional<double> best_metric;
    std::optional<std::string> best_model_checkpoint;
    std::vector<TrainerLogEntry> log_history;
};

TrainerState parse_trainer_state(const std::string& json, const std::string& source = "trainer_state.json");
TrainerState load_trainer_state(const std::string& folder_or_file);
// Only keys of transformers' TrainerState dataclass (it rejects unknown ones).
std::string trainer_state_to_json(const TrainerState& state);
void save_trainer_state(const TrainerState& state, const std::string& path);


}  // namespace memskew
