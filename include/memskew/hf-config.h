// A Hugging Face model folder's config.json (HfConfig): parser and writer;
// no weights, no LibTorch. The other side files have headers of their own
// owners: tokenizer-config.h, peft-config.h, trainer-state.h.
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


namespace memskew {

// Architecture families memskew runs.
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
    std::string arch;          // the family memskew runs it as ("llama", "gptneox", "gpt2"): ModelConfig::arch
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

}  // namespace memskew
