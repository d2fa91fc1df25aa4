// Shared pieces of the memskew CLI: every command file registers one
// subcommand; parsing only, the work is done by the library.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace memskew::cli {

// A command's action runs after parsing; errors propagate to main().
using Action = std::function<void()>;

void register_info(CLI::App& app, Action& action);
void register_tokenize(CLI::App& app, Action& action);
void register_generate(CLI::App& app, Action& action);
void register_score(CLI::App& app, Action& action);
void register_demo(CLI::App& app, Action& action);
void register_probe(CLI::App& app, Action& action);
void register_export(CLI::App& app, Action& action);
void register_merge(CLI::App& app, Action& action);
void register_train(CLI::App& app, Action& action);
void register_report(CLI::App& app, Action& action);
void register_analyze(CLI::App& app, Action& action);
void register_convert(CLI::App& app, Action& action);
void register_study(CLI::App& app, Action& action);

// Options every model-running command shares.
struct ModelOptions {
    std::string model;
    std::string dtype = "f32";
    int threads = 0;
    void add_to(CLI::App* cmd);
};
}  // namespace memskew::cli
namespace memskew {
class Model;
}
namespace memskew::cli {
std::shared_ptr<memskew::Model> load_model(const ModelOptions& opts);

// Prints a JSON document to stdout (pretty, newline-terminated).
void print_json(const nlohmann::json& j);
// Makes text printable on one line for tables (newlines and tabs escaped).
std::string printable(const std::string& text);

}  // namespace memskew::cli
