#include "cli.h"

#include <iostream>

#include "memskew/engine.h"

namespace memskew::cli {

void ModelOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--model,-m", model, "Model: a GGUF file or a Hugging Face folder")->required();
    cmd->add_option("--dtype", dtype, "Compute dtype: f32 or bf16")
        ->check(CLI::IsMember({"f32", "fp32", "float32", "bf16", "bfloat16"}));
    cmd->add_option("--threads", threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
}

std::shared_ptr<Model> load_model(const ModelOptions& opts) {
    LoadParams params;
    params.dtype = parse_dtype(opts.dtype);
    params.n_threads = opts.threads;
    return Model::load(opts.model, params);
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

std::string printable(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else out += c;
    }
    return out;
}

}  // namespace memskew::cli
