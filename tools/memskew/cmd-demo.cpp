// `memskew demo`: runs the engine end to end on a tiny Llama that it creates
// itself, so it needs no files from elsewhere. (The full demo — training on a
// synthetic dataset and auditing it — replaces this when `memskew train` lands.)
#include <fmt/format.h>

#include <filesystem>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/tokenizer.h"

namespace memskew::cli {

std::string continuation_text(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              const std::vector<int32_t>& generated);

void register_demo(CLI::App& app, Action& action) {
    struct Opts {
        std::string out = "memskew-demo";
        uint64_t seed = 1;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("demo", "Create a tiny Llama, save and reload it as GGUF, generate and score");
    cmd->add_option("--out", opts->out, "Folder for the demo's files");
    cmd->add_option("--seed", opts->seed, "Random seed of the tiny model");
    cmd->callback([&action, opts] {
        action = [opts] {
            std::error_code ec;
            std::filesystem::create_directories(opts->out, ec);
            if (ec) throw IoError(fmt::format("cannot create folder '{}': {}", opts->out, ec.message()));
            ModelConfig cfg;
            cfg.name = "memskew-tiny-llama";
            cfg.dim = 64;
            cfg.n_layers = 2;
            cfg.n_heads = 4;
            cfg.n_kv_heads = 2;
            cfg.ffn_dim = 128;
            cfg.max_ctx = 256;
            const std::string path = (std::filesystem::path(opts->out) / "tiny-llama.gguf").string();
            // A larger init spread than usual gives a random model with confident, varied predictions.
            Model::random_llama(cfg, make_byte_vocab(), opts->seed, {}, 0.5)->save_gguf(path);
            auto model = Model::load(path);
            const Tokenizer& tok = model->tokenizer();
            const ModelConfig& c = model->config();
            fmt::print("created {} ({} parameters, {} layers, byte-level tokenizer with {} tokens)\n", path,
                       c.n_params(), c.n_layers, tok.n_vocab());
            Engine engine(model);
            const std::string prompt_text = "Patient record 0042: ";
            GenerateRequest g;
            g.prompt = tok.encode(prompt_text, true);
            g.max_new_tokens = 24;
            GenerateParams gp;
            gp.stop_at_eos = false;
            const auto gen = engine.generate({g}, gp).front();
            fmt::print("greedy continuation of \"{}\": \"{}\"\n", prompt_text,
                       printable(continuation_text(tok, g.prompt, gen.tokens)));
            // Score the model's own continuation (memorized: n_pre = L), then the
            // same with one token changed at position 10 (n_pre = 9).
            std::vector<int32_t> changed = gen.tokens;
            changed[9] = (changed[9] + 1) % 256;
            const auto scores = engine.score({{g.prompt, gen.tokens}, {g.prompt, changed}});
            fmt::print("teacher-forced n_pre of its own continuation: {} of {}\n", scores[0].n_pre, gen.tokens.size());
            fmt::print("teacher-forced n_pre with token 10 changed:   {} of {}\n", scores[1].n_pre, changed.size());
            GenerateParams check;
            check.stop_on_mismatch = true;
            check.stop_at_eos = false;
            const auto verify = engine.generate({{g.prompt, changed, 24}}, check).front();
            fmt::print("greedy generation agrees: n_pre = {}\n", verify.n_pre(changed));
        };
    });
}

}  // namespace memskew::cli
