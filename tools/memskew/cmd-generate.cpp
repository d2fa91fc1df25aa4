#include <fmt/format.h>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/sft-encoder.h"
#include "memskew/tokenizer.h"

namespace memskew::cli {

// Text that `generated` adds after `prompt` (decoding the whole sequence keeps
// SentencePiece's word-initial spaces right).
std::string continuation_text(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              const std::vector<int32_t>& generated) {
    std::vector<int32_t> all(prompt);
    all.insert(all.end(), generated.begin(), generated.end());
    const std::string full = tok.decode(all);
    const std::string head = tok.decode(prompt);
    if (full.compare(0, head.size(), head) == 0) return full.substr(head.size());
    return tok.decode(generated);
}

void register_generate(CLI::App& app, Action& action) {
    struct Opts {
        ModelOptions model;
        std::string prompt;
        int max_new_tokens = 256;
        bool ignore_eos = false, json = false;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("generate", "Greedy (temperature 0) continuation of a prompt, or from BOS");
    cmd->footer("Example: memskew generate -m model.gguf -p \"Once upon a time\" -n 64");
    opts->model.add_to(cmd);
    cmd->add_option("--prompt,-p", opts->prompt, "Prompt text (default: start from BOS)");
    cmd->add_option("--max-new-tokens,-n", opts->max_new_tokens, "Most tokens to generate")
        ->check(CLI::PositiveNumber);
    cmd->add_flag("--ignore-eos", opts->ignore_eos, "Keep generating after EOS");
    cmd->add_flag("--json", opts->json, "Machine-readable output on stdout");
    cmd->callback([&action, opts, cmd] {
        const bool has_prompt = cmd->count("--prompt") > 0;
        action = [opts, has_prompt] {
            auto model = load_model(opts->model);
            const Tokenizer& tok = model->tokenizer();
            GenerateRequest req;
            req.prompt = encode_prompt(tok, has_prompt ? opts->prompt : std::string());
            req.max_new_tokens = opts->max_new_tokens;
            GenerateParams params;
            params.stop_at_eos = !opts->ignore_eos;
            Engine engine(model);
            const GenerateResult res = engine.generate({req}, params).front();
            std::vector<int32_t> shown(res.tokens);
            if (res.reason == StopReason::kEos && !shown.empty()) shown.pop_back();
            const std::string text = continuation_text(tok, req.prompt, shown);
            if (opts->json) {
                print_json({{"prompt_ids", req.prompt},
                            {"ids", res.tokens},
                            {"text", text},
                            {"n_tokens", res.tokens.size()},
                            {"stop", stop_reason_name(res.reason)}});
                return;
            }
            fmt::print("{}\n", text);
        };
    });
}

}  // namespace memskew::cli
