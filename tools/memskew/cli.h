// Shared pieces of the memskew CLI: every command file registers one
// subcommand; parsing only, the work is done by the library.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "memskew/dist.h"
#include "memskew/model.h"
#include "memskew/sft-encoder.h"

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
void register_filter(CLI::App& app, Action& action);

// Options every model-running command shares.
struct ModelOptions {
    std::string model;
    std::string dtype = "f32";
    int threads = 0;
    std::string device = "cpu";
    void add_to(CLI::App* cmd);
    // --dtype, --threads and --device as the library takes them. Checks the
    // device (parse_device: InvalidInput for a GPU this build cannot use), so
    // call it first thing in the action, before anything is written.
    LoadParams load_params() const;
};

// Dataset options every command that reads an SFT dataset shares (train,
// probe): how records map to samples and how samples become ids. Declared
// here once, so a model is probed with exactly the mapping it was trained
// with. The command's own --seed also seeds --sample.
struct DatasetOptions {
    std::string data, shard, truncate = "reference";
    size_t limit = 0, sample = 0;
    int64_t prefix_tokens = 0, suffix_tokens = 0, max_reference = 0;
    // memskew::dataset_options(), as --dashed-names: the value given, if any.
    std::map<std::string, std::string> values;
    std::map<std::string, bool> flags;
    std::map<std::string, CLI::Option*> given;
    void add_to(CLI::App* cmd);
    // Call from the command's callback: option combinations CLI11 cannot check.
    void validate() const;
    // The data layer's parameters (subset seeded by `seed`).
    DatasetParams dataset_params(uint64_t seed) const;
    // The sample encoder's settings that these options decide.
    std::optional<TextSplitParams> text_split() const;
    TruncatePolicy truncate_policy() const;
};

// Several processes, one job (probe, train): --nproc starts the ranks here
// (memskew/local-launch.h); under torchrun or srun the launcher's
// environment says which rank this is (memskew/dist.h).
struct DistCliOptions {
    int nproc = 0;
    std::string master_addr;
    int master_port = 0;
    void add_to(CLI::App* cmd);
    // True when this process is the --nproc launcher rather than a rank.
    bool launching() const { return nproc > 1; }
    // As the launcher: starts the ranks (this command line without --nproc,
    // --threads split between them) and waits; throws ExitStatus with the
    // first failed rank's exit code (each rank printed its own error).
    void launch(int threads) const;
    // As a rank: this rank's place in the job (one process: rank 0 of 1).
    DistEnv env() const;
};

// The process ends with `code` and no message (what it had to say went out already).
struct ExitStatus {
    int code;
};

// The command line as main() received it (the --nproc launcher re-runs it).
void set_command_line(int argc, char** argv);
// CPU threads of one rank: the launcher's share (MEMSKEW_RANK_THREADS) when
// it set one, else threads_per_rank().
int rank_threads(const DistEnv& env, int requested);

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
