#include <fmt/format.h>

#include <filesystem>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/hf-config.h"

namespace memskew::cli {

namespace {

// Fails before the weights are read when a Hugging Face folder's architecture
// has no GGUF form here (save_gguf would refuse it after a full load).
void check_gguf_convertible(const std::string& model) {
    std::error_code ec;
    const std::filesystem::path p(model);
    const bool folder = std::filesystem::is_directory(p, ec);
    if (!folder && p.filename() != "config.json") return;
    const HfConfig hc = load_hf_config(model);
    if (!arch_supports_gguf(hc.arch)) {
        throw InvalidInput(fmt::format("GGUF output supports the llama architecture, not '{}' ({})", hc.arch,
                                       hc.architecture),
                           "write a Hugging Face folder instead (memskew convert --to hf)");
    }
}

}  // namespace

void register_convert(CLI::App& app, Action& action) {
    struct Opts {
        std::string model, to, out, dtype = "f32";
        int threads = 0;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("convert", "Convert a model between GGUF and Hugging Face folders");
    cmd->footer("Example: memskew convert -m model.gguf --to hf -o model-hf --dtype bf16");
    cmd->add_option("--model,-m", opts->model, "Model to read (GGUF file or Hugging Face folder)")->required();
    cmd->add_option("--to", opts->to, "Output format: hf (folder) or gguf (llama architecture only)")
        ->required()
        ->check(CLI::IsMember({"hf", "gguf"}));
    cmd->add_option("--out,-o", opts->out, "Output path (a new folder for hf, a file for gguf)")->required();
    cmd->add_option("--dtype", opts->dtype, "Stored weight type: f32, f16 or bf16")
        ->check(CLI::IsMember({"f32", "f16", "bf16"}));
    cmd->add_option("--threads", opts->threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
    cmd->callback([&action, opts] {
        action = [opts] {
            const GgmlType stored = opts->dtype == "f16"    ? GgmlType::kF16
                                    : opts->dtype == "bf16" ? GgmlType::kBF16
                                                            : GgmlType::kF32;
            if (opts->to == "gguf") check_gguf_convertible(opts->model);
            LoadParams params;
            params.n_threads = opts->threads;
            auto model = Model::load(opts->model, params);  // fp32: the stored type is chosen on writing
            if (opts->to == "hf") {
                model->save_hf(opts->out, stored);
            } else {
                model->save_gguf(opts->out, stored);
            }
            fmt::print("wrote {} ({} {}, {} parameters, {})\n", opts->out, opts->to == "hf" ? "Hugging Face" : "GGUF",
                       model->config().arch, model->config().n_params(), opts->dtype);
        };
    });
}

}  // namespace memskew::cli
