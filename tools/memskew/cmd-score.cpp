#include <fmt/format.h>

#include <cmath>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/sft-encoder.h"
#include "memskew/tokenizer.h"

namespace memskew::cli {

void register_score(CLI::App& app, Action& action) {
    struct Opts {
        ModelOptions model;
        std::string prompt, reference;
        bool verify = false, json = false;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("score",
                                   "Teacher-forced per-token statistics of a reference after a prompt, and n_pre");
    cmd->footer("Example: memskew score -m model.gguf -p \"Once upon a time\" -r \" there was a girl\" --verify");
    opts->model.add_to(cmd);
    cmd->add_option("--prompt,-p", opts->prompt, "Prompt text (BOS is added as the tokenizer says)")->required();
    cmd->add_option("--reference,-r", opts->reference, "Reference response text")->required();
    cmd->add_flag("--verify", opts->verify, "Also run greedy generation and check it gives the same n_pre");
    cmd->add_flag("--json", opts->json, "Machine-readable output on stdout");
    cmd->callback([&action, opts] {
        action = [opts] {
            auto model = load_model(opts->model);
            const Tokenizer& tok = model->tokenizer();
            ScoreRequest req;
            req.prompt = encode_prompt(tok, opts->prompt);
            req.reference = encode_reference(tok, opts->reference);
            Engine engine(model);
            const TokenScores s = engine.score({req}).front();
            const size_t L = req.reference.size();
            int32_t gen_n_pre = -1;
            if (opts->verify) {
                GenerateRequest g{req.prompt, req.reference, static_cast<int32_t>(L)};
                GenerateParams gp;
                gp.stop_on_mismatch = true;
                gp.stop_at_eos = false;
                gen_n_pre = engine.generate({g}, gp).front().n_pre(req.reference);
            }
            if (opts->json) {
                nlohmann::json tokens = nlohmann::json::array();
                for (size_t j = 0; j < L; ++j) {
                    tokens.push_back({{"position", j + 1},
                                      {"token", req.reference[j]},
                                      {"piece", tok.piece(req.reference[j])},
                                      {"argmax", s.argmax[j]},
                                      {"argmax_piece", tok.piece(s.argmax[j])},
                                      {"match", s.argmax[j] == req.reference[j]},
                                      {"logprob", s.logprob[j]},
                                      {"rank", s.rank[j]},
                                      {"entropy", s.entropy[j]},
                                      {"top1_prob", s.top1_prob[j]}});
                }
                nlohmann::json out = {{"prompt_ids", req.prompt},
                                      {"reference_ids", req.reference},
                                      {"tokens", tokens},
                                      {"n_pre", s.n_pre},
                                      {"length", L},
                                      {"exact", s.n_pre == static_cast<int32_t>(L)}};
                if (opts->verify) out["n_pre_generated"] = gen_n_pre;
                print_json(out);
            } else {
                fmt::print("{:>4}  {:>6}  {:<16} {:<16} {:>5} {:>9} {:>7} {:>8} {:>6}\n", "pos", "id", "reference",
                           "argmax", "match", "logprob", "rank", "entropy", "top1");
                for (size_t j = 0; j < L; ++j) {
                    fmt::print("{:>4}  {:>6}  {:<16} {:<16} {:>5} {:>9.4f} {:>7} {:>8.4f} {:>6.3f}\n", j + 1,
                               req.reference[j], printable(tok.piece(req.reference[j])),
                               printable(tok.piece(s.argmax[j])), s.argmax[j] == req.reference[j] ? "yes" : "no",
                               s.logprob[j], s.rank[j], s.entropy[j], s.top1_prob[j]);
                }
                fmt::print("n_pre = {} of {} reference tokens{}\n", s.n_pre, L,
                           s.n_pre == static_cast<int32_t>(L) ? " (exact)" : "");
                if (opts->verify)
                    fmt::print("greedy generation: n_pre = {} ({})\n", gen_n_pre,
                               gen_n_pre == s.n_pre ? "agrees" : "DISAGREES");
            }
            if (opts->verify && gen_n_pre != s.n_pre)
                throw InvalidInput(fmt::format("teacher-forced n_pre {} differs from generated n_pre {}", s.n_pre,
                                               gen_n_pre),
                                   "a near-tie in the argmax; try --dtype f32");
        };
    });
}

}  // namespace memskew::cli
