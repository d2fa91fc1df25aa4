// LibTorch side of memskew::Model (private to the library and its tests).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "memskew/model.h"
#include "memskew/tokenizer.h"
#include "model/causal-lm.h"

namespace memskew {

struct Model::Impl {
    ModelConfig config;
    std::shared_ptr<CausalLmImpl> net;
    std::unique_ptr<Tokenizer> tokenizer;
    DType dtype = DType::kF32;
    std::string device = "cpu";  // canonical (parse_device)
    std::string path;
};

// The LibTorch side of a Model, for the library's own files and its tests
// (the public header has no accessor).
struct ModelAccess {
    static Model::Impl& of(const Model& m) { return *m.impl_; }
    static std::shared_ptr<Model> make(std::unique_ptr<Model::Impl> impl) {
        return std::shared_ptr<Model>(new Model(std::move(impl)));
    }
};
inline Model::Impl& model_impl(const Model& m) { return ModelAccess::of(m); }

torch::Dtype torch_dtype(DType d);

// Fills every parameter of `net` by name: fetch(name, expected torch shape)
// returns an fp32 tensor of that shape or throws FormatError naming the
// source tensor. Afterwards the model is put in eval mode, converted to
// `dtype`, moved to `device` (a parse_device() name) and frozen.
using WeightFetcher = std::function<torch::Tensor(const std::string& name, const std::vector<int64_t>& shape)>;
void load_weights(CausalLmImpl& net, const WeightFetcher& fetch);
void finish_loading(Model::Impl& impl, DType dtype, const std::string& device);

// GGUF (`llama` architecture) tensor name for a Hugging Face parameter name;
// *permute_heads is set to the head count when the rows must be (un)permuted
// between the two rotary layouts (q/k), else 0. Empty when there is none.
std::string gguf_name_for(const std::string& hf_name, const ModelConfig& cfg, int64_t* permute_heads);
// Row reordering between layouts: Hugging Face half-split pairs (i, i+hd/2) <->
// GGUF adjacent pairs (2i, 2i+1). Works on [rows, in] and [rows] tensors.
torch::Tensor gguf_to_hf_rows(const torch::Tensor& w, int64_t n_heads);
torch::Tensor hf_to_gguf_rows(const torch::Tensor& w, int64_t n_heads);

// Builds a Model from a GGUF file (src/model/load-gguf.cpp).
std::unique_ptr<Model::Impl> load_gguf_model(const std::string& path, const LoadParams& params);
// Builds a Model from a Hugging Face folder, or the config.json / safetensors
// file inside one (src/model/load-hf.cpp).
std::unique_ptr<Model::Impl> load_hf_model(const std::string& path, const LoadParams& params);
// The vocabulary to store in a GGUF file (src/model/save-hf.cpp). A
// SentencePiece-style tokenizer.json has merges but no scores, and prepends
// "▁" in its normalizer: this derives scores from the merge ranks (the
// inverse of the HF conversion) and sets add_space_prefix, so GGUF readers
// tokenize as tokenizer.json does. Other vocabularies are returned as they are.
Vocab vocab_for_gguf(const Model::Impl& impl);

}  // namespace memskew
