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

#include "memskew/gguf.h"
#include "memskew/tokenizer.h"

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

// Whether memskew reads and writes the architecture family `arch`
// (ModelConfig::arch, HfConfig::arch) as GGUF.
bool arch_supports_gguf(const std::string& arch);

// A from-scratch shape, "dim=64,layers=2,heads=4,kv_heads=2,ffn=128,ctx=256[,arch=llama]"
// (`memskew train --init`, a study's model.init). kv_heads defaults to heads,
// ffn to 4 x dim. InvalidInput naming the bad key; validated when the model is built.
ModelConfig parse_init_config(const std::string& spec);

// The device a model runs on: "cpu", "cuda" (the first visible GPU) or
// "cuda:N". Returns the canonical name ("cpu" or "cuda:N"). Throws
// InvalidInput for any other spelling, and for a GPU this process cannot use
// (a LibTorch build without CUDA, no visible GPU, N >= the GPU count): callers
// check a device here before they write anything.
std::string parse_device(const std::string& device);

struct LoadParams {
    DType dtype = DType::kF32;   // compute dtype; weights are converted at load
    int n_threads = 0;           // 0: all cores (CPU work: also the engine's per-token statistics)
    std::string device = "cpu";  // parse_device(); weights are read on the CPU, then moved there
};

class Model {
public:
    // Loads a GGUF file, or a Hugging Face model folder (config.json +
    // model.safetensors or a sharded model.safetensors.index.json, with
    // tokenizer.json beside; `path` may also name the folder's config.json).
    // Weights are converted from F32/F16/BF16 at load. Throws IoError /
    // FormatError naming the file and, where it applies, the tensor or key.
    static std::shared_ptr<Model> load(const std::string& path, const LoadParams& params = {});
    // A randomly initialised Llama of the given shape (weights ~ N(0, init_std),
    // norms 1) with the given vocabulary; deterministic for a seed. Used by
    // benchmarks, tests and the demo.
    static std::shared_ptr<Model> random_llama(const ModelConfig& config, Vocab vocab, uint64_t seed,
                                               const LoadParams& params = {}, double init_std = 0.02);
    // Writes the model and its tokenizer as a GGUF file of the `llama`
    // architecture (q/k rows permuted to GGUF's interleaved rotary layout).
    // stored: F32, F16 or BF16.
    void save_gguf(const std::string& path, GgmlType stored = GgmlType::kF32) const;
    // Writes a Hugging Face folder transformers loads: config.json,
    // model.safetensors (stored: F32, F16 or BF16) and the tokenizer
    // (tokenizer.json copied when the model came with one; a GGUF vocabulary
    // is converted, giving the same ids). `folder` must not exist or be empty;
    // it is written under a temporary name and renamed into place.
    void save_hf(const std::string& folder, GgmlType stored = GgmlType::kF32) const;
    ~Model();

    const ModelConfig& config() const;
    const Tokenizer& tokenizer() const;
    DType dtype() const;
    // Where the weights live and every forward pass runs: parse_device()'s
    // canonical name ("cpu", "cuda:0", ...).
    const std::string& device() const;
    const std::string& path() const;

    struct Impl;  // LibTorch internals: src/model/model-impl.h

private:
    explicit Model(std::unique_ptr<Impl> impl);
    friend struct ModelAccess;  // model_impl() and construction, src/model/model-impl.h
    std::unique_ptr<Impl> impl_;
};

// Sets the number of intra-op threads (0: all cores). Called by Model::load.
void set_compute_threads(int n_threads);

// OpenMP threads that spin while waiting burn the cores other work needs: on a
// shared 2-core machine probing ran 7x slower. libgomp reads OMP_WAIT_POLICY
// only when it loads, so programs call this first thing in main(): when the
// variable is unset it sets it to PASSIVE and re-executes the program (once).
void ensure_passive_openmp(int argc, char** argv);

}  // namespace memskew
