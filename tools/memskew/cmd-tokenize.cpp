#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <sstream>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/tokenizer.h"

namespace memskew::cli {

namespace {

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(fmt::format("cannot read '{}'", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<int32_t> parse_ids(const std::string& text, int32_t n_vocab) {
    std::vector<int32_t> ids;
    std::string token;
    std::istringstream in(text);
    while (in >> token) {
        if (token == "[" || token == "]") continue;
        while (!token.empty() && (token.back() == ',' || token.back() == ']')) token.pop_back();
        while (!token.empty() && token.front() == '[') token.erase(0, 1);
        if (token.empty()) continue;
        size_t used = 0;
        long v = 0;
        try {
            v = std::stol(token, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != token.size())
            throw InvalidInput(fmt::format("--decode expects token ids, got '{}'", token),
                               "give ids separated by spaces, e.g. --text \"1 450 4996\"");
        if (v < 0 || v >= n_vocab)
            throw InvalidInput(fmt::format("token id {} is outside the vocabulary [0, {})", v, n_vocab));
        ids.push_back(static_cast<int32_t>(v));
    }
    return ids;
}

}  // namespace

void register_tokenize(CLI::App& app, Action& action) {
    struct Opts {
        std::string model, tokenizer, text, file;
        bool decode = false, add_special = false, json = false, pieces = false;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (or, with --decode, the text of ids)");
    auto* m = cmd->add_option("--model,-m", opts->model,
                              "Model whose tokenizer to use (GGUF file or Hugging Face model folder)");
    auto* t = cmd->add_option("--tokenizer", opts->tokenizer,
                              "Tokenizer: a GGUF file (vocabulary-only is fine), a tokenizer.json, or a folder "
                              "holding tokenizer.json");
    m->excludes(t);
    auto* text = cmd->add_option("--text", opts->text, "Text to encode (or ids to decode)");
    auto* file = cmd->add_option("--file", opts->file, "File whose content to encode (or ids to decode)");
    text->excludes(file);
    cmd->add_flag("--decode", opts->decode, "Input is token ids; print the decoded text");
    cmd->add_flag("--add-special", opts->add_special, "Add BOS/EOS as the tokenizer's flags say");
    cmd->add_flag("--pieces", opts->pieces, "Also print each token's piece");
    cmd->add_flag("--json", opts->json, "Machine-readable output on stdout");
    cmd->callback([&action, opts, cmd] {
        if (opts->model.empty() && opts->tokenizer.empty())
            throw CLI::RequiredError("--model or --tokenizer");
        if (cmd->count("--text") == 0 && opts->file.empty()) throw CLI::RequiredError("--text or --file");
        action = [opts] {
            std::shared_ptr<Model> model;
            std::unique_ptr<Tokenizer> own;
            const Tokenizer* tok = nullptr;
            if (!opts->model.empty()) {
                model = Model::load(opts->model);
                tok = &model->tokenizer();
            } else {
                own = load_tokenizer(opts->tokenizer);  // GGUF by its magic, tokenizer.json, or a folder
                tok = own.get();
            }
            const std::string input = opts->file.empty() ? opts->text : read_text_file(opts->file);
            if (opts->decode) {
                const auto ids = parse_ids(input, tok->n_vocab());
                const std::string out = tok->decode(ids);
                if (opts->json) print_json({{"ids", ids}, {"text", out}});
                else fmt::print("{}\n", out);
                return;
            }
            const auto ids = tok->encode(input, opts->add_special);
            if (opts->json) {
                nlohmann::json pieces = nlohmann::json::array();
                for (int32_t id : ids) pieces.push_back(tok->piece(id));
                print_json({{"ids", ids}, {"pieces", pieces}, {"n_tokens", ids.size()}});
                return;
            }
            if (opts->pieces) {
                for (int32_t id : ids) fmt::print("{:>8}  {}\n", id, printable(tok->piece(id)));
            } else {
                fmt::print("{}\n", fmt::join(ids, " "));
            }
        };
    });
}

}  // namespace memskew::cli
