// Several processes, one job (the dist/ layer; issue 14 builds on it): which
// rank this process is, from the launcher's environment, and how samples are
// spread over the ranks.
//
// Launchers, in order of precedence:
//   torchrun   RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (as
//              torch.distributed.run sets them; LOCAL_RANK defaults to RANK)
//   Slurm      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (srun), with the
//              master address from DistOptions or MASTER_ADDR (Slurm has no
//              variable for it: batch scripts export the first node's name)
//   none       one process: rank 0 of 1, nothing to rendezvous with
// The master port comes from DistOptions, else MASTER_PORT, else 29500 (torchrun's default).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace memskew {

struct DistOptions {
    std::string master_addr;  // overrides MASTER_ADDR
    int master_port = 0;      // overrides MASTER_PORT (0: from the environment, else 29500)
};

struct DistEnv {
    int rank = 0;
    int world_size = 1;
    int local_rank = 0;
    int local_world_size = 1;  // ranks on this machine: LOCAL_WORLD_SIZE, SLURM_NTASKS_PER_NODE
    std::string master_addr;  // empty for one process
    int master_port = 29500;
    std::string launcher = "none";  // "torchrun", "slurm" or "none"
    bool distributed() const { return world_size > 1; }
};

// The launcher's variables as a map (tests pass their own); names as above.
std::map<std::string, std::string> launcher_environment();

// Reads the rank from `env`. InvalidInput, naming the variables and their
// values, for: a non-integer or negative value, RANK >= WORLD_SIZE (or
// SLURM_PROCID >= SLURM_NTASKS), LOCAL_RANK >= WORLD_SIZE, only one of RANK /
// WORLD_SIZE set, WORLD_SIZE > 1 without a master address, a port outside
// 1..65535.
DistEnv dist_env_from(const std::map<std::string, std::string>& env, const DistOptions& options = {});

// CPU threads for one rank: `requested` when positive, else the machine's
// `cores` shared by the ranks on it (at least 1), so that N ranks on one
// machine do not each start a thread per core.
int threads_per_rank(const DistEnv& env, int requested, int cores);

// The device of one rank: "cuda" (no index) means the rank's own GPU,
// cuda:LOCAL_RANK, as torchrun jobs place one rank per GPU; an explicit
// "cuda:N" or "cpu" stays as given.
std::string rank_device(const DistEnv& env, const std::string& device);

// Spreads samples over `world_size` ranks by their token counts: longest
// first (ties: lower index first) to the rank with the fewest tokens so far
// (ties: lower rank) — the LPT rule, within 4/3 of the best possible maximum.
// Deterministic in its inputs. Returns each sample's rank. InvalidInput for
// world_size < 1 or a negative length.
std::vector<int> partition_by_tokens(const std::vector<int64_t>& lengths, int world_size);

}  // namespace memskew
