// The rank from the launcher's environment and the token-balanced spread of
// samples (see include/memskew/dist.h). LibTorch-free: the core library.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <numeric>

#include "memskew/dist.h"
#include "memskew/error.h"


namespace memskew {

namespace {

const char* const kVariables[] = {"RANK",         "WORLD_SIZE",   "LOCAL_RANK",    "LOCAL_WORLD_SIZE",
                                  "MASTER_ADDR",  "MASTER_PORT",  "SLURM_PROCID",  "SLURM_NTASKS",
                                  "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"};

// A non-negative integer variable; nullopt-like -1 when absent.
int64_t read_int(const std::map<std::string, std::string>& env, const char* name) {
    const auto it = env.find(name);
    if (it == env.end() || it->second.empty()) return -1;
    const std::string& v = it->second;
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (errno != 0 || end == v.c_str() || *end != '\0' || x < 0 || x > std::numeric_limits<int>::max())
        throw InvalidInput(fmt::format("environment variable {}={} is not a non-negative integer", name, v),
                           "check the launcher's environment (torchrun / srun set it)");
    return x;
}

std::string read_str(const std::map<std::string, std::string>& env, const char* name) {
    const auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
}

}  // namespace

std::map<std::string, std::string> launcher_environment() {
    std::map<std::string, std::string> out;
    for (const char* name : kVariables)
        if (const char* v = std::getenv(name)) out[name] = v;
    return out;
}

DistEnv dist_env_from(const std::map<std::string, std::string>& env, const DistOptions& options) {
    DistEnv d;
    const int64_t rank = read_int(env, "RANK"), world = read_int(env, "WORLD_SIZE");
    const int64_t procid = read_int(env, "SLURM_PROCID"), ntasks = read_int(env, "SLURM_NTASKS");
    if ((rank >= 0) != (world >= 0))
        throw InvalidInput(fmt::format("RANK and WORLD_SIZE go together; only {} is set",
                                       rank >= 0 ? "RANK=" + read_str(env, "RANK")
                                                 : "WORLD_SIZE=" + read_str(env, "WORLD_SIZE")),
                           "launch with torchrun, or unset it for one process");
    if (rank >= 0) {
        d.launcher = "torchrun";
        d.rank = static_cast<int>(rank);
        d.world_size = static_cast<int>(world);
        const int64_t local = read_int(env, "LOCAL_RANK");
        d.local_rank = local >= 0 ? static_cast<int>(local) : d.rank;
        const int64_t local_world = read_int(env, "LOCAL_WORLD_SIZE");
        d.local_world_size = local_world > 0 ? static_cast<int>(local_world) : d.world_size;
    } else if (procid >= 0 && ntasks >= 0) {
        d.launcher = "slurm";
        d.rank = static_cast<int>(procid);
        d.world_size = static_cast<int>(ntasks);
        const int64_t local = read_int(env, "SLURM_LOCALID");
        d.local_rank = local >= 0 ? static_cast<int>(local) : 0;
        // Set with --ntasks-per-node; without it the node's share is unknown
        // and each rank counts as alone on its node.
        const int64_t per_node = read_int(env, "SLURM_NTASKS_PER_NODE");
        d.local_world_size = per_node > 0 ? static_cast<int>(per_node) : 1;
    } else {
        return d;  // one process
    }
    const char* rank_name = d.launcher == "torchrun" ? "RANK" : "SLURM_PROCID";
    const char* world_name = d.launcher == "torchrun" ? "WORLD_SIZE" : "SLURM_NTASKS";
    if (d.world_size < 1)
        throw InvalidInput(fmt::format("{}={}: a job needs at least one process", world_name, d.world_size));
    if (d.rank >= d.world_size)
        throw InvalidInput(fmt::format("{}={} is not below {}={}", rank_name, d.rank, world_name, d.world_size),
                           "ranks run from 0 to the world size - 1");
    if (d.local_rank >= d.world_size)
        throw InvalidInput(fmt::format("local rank {} is not below the world size {}", d.local_rank, d.world_size));
    d.master_addr = !options.master_addr.empty() ? options.master_addr : read_str(env, "MASTER_ADDR");
    if (d.world_size > 1 && d.master_addr.empty())
        throw InvalidInput(fmt::format("{} processes ({}={}) but no master address", d.world_size, world_name,
                                       d.world_size),
                           d.launcher == "slurm"
                               ? "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1) "
                                 "in the batch script, or pass --master-addr"
                               : "set MASTER_ADDR (torchrun sets it) or pass --master-addr");
    int64_t port = options.master_port;
    if (port == 0) port = read_int(env, "MASTER_PORT");
    if (port < 0) port = 29500;
    if (port < 1 || port > 65535)
        throw InvalidInput(fmt::format("master port {} is outside 1..65535", port), "set MASTER_PORT or --master-port");
    d.master_port = static_cast<int>(port);
    return d;
}

int threads_per_rank(const DistEnv& env, int requested, int cores) {
    if (requested > 0) return requested;
    return std::max(1, cores / std::max(1, env.local_world_size));
}

std::string rank_device(const DistEnv& env, const std::string& device) {
    if (device == "cuda" && env.distributed()) return fmt::format("cuda:{}", env.local_rank);
    return device;
}

std::vector<int> partition_by_tokens(const std::vector<int64_t>& lengths, int world_size) {
    if (world_size < 1) throw InvalidInput(fmt::format("cannot spread samples over {} ranks", world_size));
    std::vector<std::size_t> order(lengths.size());
    std::iota(order.begin(), order.end(), 0);
    for (std::size_t i = 0; i < lengths.size(); ++i)
        if (lengths[i] < 0) throw InvalidInput(fmt::format("sample {} has a negative token count {}", i, lengths[i]));
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });
    std::vector<int64_t> load(static_cast<std::size_t>(world_size), 0);
    std::vector<int> rank(lengths.size(), 0);
    for (std::size_t i : order) {
        const auto least = std::min_element(load.begin(), load.end()) - load.begin();  // first minimum: lowest rank
        rank[i] = static_cast<int>(least);
        load[static_cast<std::size_t>(least)] += lengths[i];
    }
    return rank;
}

}  // namespace memskew
