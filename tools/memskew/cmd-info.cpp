#include <fmt/format.h>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/tokenizer.h"

namespace memskew::cli {

void register_info(CLI::App& app, Action& action) {
    struct Opts {
        ModelOptions model;
        bool json = false;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("info", "Describe a model: architecture, parameters, dtype, context, tokenizer");
    cmd->footer("Example: memskew info -m model.gguf --json");
    opts->model.add_to(cmd);
    cmd->add_flag("--json", opts->json, "Machine-readable output on stdout");
    cmd->callback([&action, opts] {
        action = [opts] {
            auto model = load_model(opts->model);
            const ModelConfig& c = model->config();
            const Tokenizer& tok = model->tokenizer();
            auto piece = [&](int32_t id) { return id >= 0 ? tok.piece(id) : std::string("(none)"); };
            if (opts->json) {
                print_json({{"path", opts->model.model},
                            {"architecture", c.arch},
                            {"name", c.name},
                            {"parameters", c.n_params()},
                            {"stored_dtype", c.source_dtype},
                            {"compute_dtype", dtype_name(model->dtype())},
                            {"context_length", c.max_ctx},
                            {"hidden_size", c.dim},
                            {"layers", c.n_layers},
                            {"heads", c.n_heads},
                            {"kv_heads", c.n_kv_heads},
                            {"head_dim", c.head_dim()},
                            {"ffn_size", c.ffn_dim},
                            {"rope_base", c.rope_base},
                            {"norm_eps", c.norm_eps},
                            {"tied_output", c.tied_output},
                            {"tokenizer",
                             {{"model", tok.kind()},
                              {"pre", tok.vocab().pre},
                              {"vocab_size", tok.n_vocab()},
                              {"merges", tok.vocab().merges.size()},
                              {"bos", tok.bos()},
                              {"eos", tok.eos()},
                              {"add_bos", tok.vocab().add_bos}}}});
                return;
            }
            fmt::print("model         {}\n", opts->model.model);
            if (!c.name.empty()) fmt::print("name          {}\n", c.name);
            fmt::print("architecture  {}\n", c.arch);
            fmt::print("parameters    {} ({:.2f} M)\n", c.n_params(), c.n_params() / 1e6);
            fmt::print("dtype         stored {}, computing in {}\n", c.source_dtype, dtype_name(model->dtype()));
            fmt::print("context       {} tokens\n", c.max_ctx);
            fmt::print("shape         hidden {}, {} layers, {} heads ({} KV heads, head dim {}), FFN {}\n", c.dim,
                       c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim(), c.ffn_dim);
            fmt::print("rotary        base {}, norm eps {}, output {}\n", c.rope_base, c.norm_eps,
                       c.tied_output ? "tied to embeddings" : "separate");
            fmt::print("tokenizer     {}{}, {} tokens, {} merges, BOS {} '{}', EOS {} '{}'{}\n", tok.kind(),
                       tok.kind() == "gpt2" ? " (pre: " + tok.vocab().pre + ")" : "", tok.n_vocab(),
                       tok.vocab().merges.size(), tok.bos(), piece(tok.bos()), tok.eos(), piece(tok.eos()),
                       tok.vocab().add_bos ? ", adds BOS" : "");
        };
    });
}

}  // namespace memskew::cli
