// LibTorch side of memskew::Model (private to the library and its tests).
#pragma once

#include <memory>
#include <string>

#include "memskew/engine.h"
#include "memskew/tokenizer.h"
#include "model/llama.h"

namespace memskew {

struct Model::Impl {
    ModelConfig config;
    Llama net{nullptr};
    std::unique_ptr<Tokenizer> tokenizer;
    DType dtype = DType::kF32;
    std::string path;
};

torch::Dtype torch_dtype(DType d);

// Builds a Model from a GGUF file (src/model/load-gguf.cpp).
std::unique_ptr<Model::Impl> load_gguf_model(const std::string& path, const LoadParams& params);

}  // namespace memskew
