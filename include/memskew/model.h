// Model configuration and loading. A loaded model is read-only and shared:
// per-run state (KV cache, buffers) lives in engine/.
//
// Internally every architecture uses the Hugging Face layout and tensor names
// (model.layers.N.self_attn.q_proj.weight, ...), with half-split rotary
// ("rotate_half"). GGUF files store q/k rows permuted for interleaved-pair
// rotary; the loader un-permutes them, which is exact (a row reordering).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace memskew {

class Tokenizer;

enum class DType { kF32, kBF16 };
const char* dtype_name(DType d);
DType parse_dtype(const std::string& s);  // "f32"|"fp32"|"float32"|"bf16"|"bfloat16"

struct ModelConfig {
    std::string arch = "llama";       // architecture family: "llama", "gptneox", "gpt2"
    std::string name;                 // general.name or folder name
    int64_t n_vocab = 0;
    int64_t dim = 0;                  // hidden size
    int64_t n_layers = 0;
    int64_t n_heads = 0;
    int64_t n_kv_heads = 0;
    int64_t ffn_dim = 0;
    int64_t max_ctx = 2048;
    double rope_base = 10000.0;
    double norm_eps = 1e-5;
    bool tied_output = false;         // lm_head shares token embeddings
    // Architecture details (defaults are Llama's).
    bool qkv_bias = false;            // q/k/v projections have biases (Qwen2; Llama attention_bias)
    bool o_bias = false;              // output projection has a bias (Llama attention_bias)
    bool mlp_bias = false;            // MLP projections have biases (Llama mlp_bias)
    double rotary_pct = 1.0;          // fraction of each head's dims that rotate (GPT-NeoX)
    bool parallel_residual = false;   // x + attn(ln1 x) + mlp(ln2 x) (GPT-NeoX)
    std::string hidden_act = "silu";  // silu (SwiGLU), gelu, gelu_new, gelu_fast, relu
    // Rotary scaling: "" (none), "linear" or "llama3".
    std::string rope_scaling;
    double rope_factor = 1.0;
    double rope_low_freq_factor = 1.0;
    double rope_high_freq_factor = 4.0;
    int64_t rope_original_ctx = 8192;
    std::string source_dtype = "F32"; // as stored in the file (F32, F16, Q8_0, mixed...)

    int64_t head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
    int64_t rotary_dim() const;  // rotating dims per head (even)
    // Throws InvalidInput describing the first inconsistency.
    void validate() const;
    int64_t n_params() const;  // parameter count implied by the shapes
};

}  // namespace memskew
