#include "cli.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <tuple>

#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/local-launch.h"

namespace memskew::cli {

void ModelOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--model,-m", model, "Model: a GGUF file or a Hugging Face folder")->required();
    cmd->add_option("--dtype", dtype, "Compute dtype: f32 or bf16")
        ->check(CLI::IsMember({"f32", "fp32", "float32", "bf16", "bfloat16"}));
    cmd->add_option("--threads", threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
    // Checked by load_params() (parse_device, one rule for every caller), not
    // here: an unusable GPU is InvalidInput with a hint, not a usage error.
    cmd->add_option("--device", device, "cpu, cuda or cuda:N (needs a CUDA LibTorch build)");
}

LoadParams ModelOptions::load_params() const {
    LoadParams params;
    params.dtype = parse_dtype(dtype);
    params.n_threads = threads;
    params.device = parse_device(device);
    return params;
}

void DatasetOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--data,-d", data, "Dataset (JSONL, JSON array or CSV)")->required();
    for (const DatasetOption& o : dataset_options()) {
        std::string name = std::string("--") + o.key;
        std::replace(name.begin(), name.end(), '_', '-');
        given[o.key] = o.is_flag ? cmd->add_flag(name, flags[o.key], o.help) : cmd->add_option(name, values[o.key], o.help);
    }
    cmd->add_option("--prefix-tokens", prefix_tokens, "Raw text mode: prompt = first P tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--suffix-tokens", suffix_tokens, "Raw text mode: reference = next L tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--max-reference-tokens", max_reference, "Use at most this many reference tokens (0: all)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--truncate", truncate, "Samples longer than the context: reference (cut its tail) or skip")
        ->check(CLI::IsMember({"reference", "skip"}));
    cmd->add_option("--limit", limit, "Use the first N samples");
    cmd->add_option("--sample", sample, "Use a random subset of N samples (see --seed)");
    cmd->add_option("--shard", shard, "i/n: use the i-th of n deterministic parts (probe: merge with `memskew merge`)");
}

void DatasetOptions::validate() const {
    if ((prefix_tokens > 0) != (suffix_tokens > 0))
        throw CLI::ValidationError("--prefix-tokens and --suffix-tokens go together");
}

DatasetParams DatasetOptions::dataset_params(uint64_t seed) const {
    DatasetParams d;
    for (const DatasetOption& o : dataset_options()) {
        if (given.at(o.key)->count() == 0) continue;
        o.apply(d, o.is_flag ? (flags.at(o.key) ? "true" : "false") : values.at(o.key));
    }
    if (prefix_tokens > 0) d.format = RecordFormat::kText;
    d.limit = limit;
    d.subset = sample;
    d.seed = seed;
    if (!shard.empty()) std::tie(d.shard_index, d.n_shards) = parse_shard(shard);
    return d;
}

std::optional<TextSplitParams> DatasetOptions::text_split() const {
    if (prefix_tokens <= 0) return std::nullopt;
    return TextSplitParams{static_cast<size_t>(prefix_tokens), static_cast<size_t>(suffix_tokens),
                           ShortTextPolicy::kSkip, 1};
}

TruncatePolicy DatasetOptions::truncate_policy() const { return parse_truncate_policy(truncate); }

std::shared_ptr<Model> load_model(const ModelOptions& opts) { return Model::load(opts.model, opts.load_params()); }

namespace {
std::vector<std::string>& command_line_args() {
    static std::vector<std::string> args;
    return args;
}
}  // namespace

void set_command_line(int argc, char** argv) { command_line_args().assign(argv + 1, argv + argc); }

void DistCliOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--nproc", nproc,
                    "Start this many processes (ranks) on this machine, --threads split between them; under torchrun "
                    "or srun leave it out: the launcher starts the ranks")
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--master-addr", master_addr,
                    "Address of rank 0 for the rendezvous (default: MASTER_ADDR; Slurm jobs export it or pass this)");
    cmd->add_option("--master-port", master_port, "Port of the rendezvous (default: MASTER_PORT, else 29500)")
        ->check(CLI::Range(1, 65535));
}

void DistCliOptions::launch(int threads) const {
    if (launcher_environment().count("RANK") || launcher_environment().count("SLURM_PROCID"))
        throw InvalidInput(fmt::format("--nproc {} inside a job a launcher already started", nproc),
                           "leave --nproc out under torchrun or srun: they start the ranks");
    LocalLaunchParams lp;
    lp.nproc = nproc;
    lp.master_port = master_port;
    lp.threads = threads;
    // This command line without --nproc: the ranks are ordinary processes of the job.
    const auto& all = command_line_args();
    for (size_t i = 0; i < all.size(); ++i) {
        if (all[i] == "--nproc") {
            ++i;
            continue;
        }
        if (all[i].rfind("--nproc=", 0) == 0) continue;
        lp.args.push_back(all[i]);
    }
    const LaunchOutcome out = launch_local(lp);
    if (out.first_failed >= 0) throw ExitStatus{out.exit_code()};
}

DistEnv DistCliOptions::env() const { return dist_env_from(launcher_environment(), {master_addr, master_port}); }

int rank_threads(const DistEnv& env, int requested) {
    if (const char* v = std::getenv("MEMSKEW_RANK_THREADS")) {
        const int n = std::atoi(v);
        if (n > 0) return n;
    }
    return threads_per_rank(env, requested, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
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
