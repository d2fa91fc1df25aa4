// Starting the ranks of one job on this machine (`memskew probe --nproc N`):
// what `torchrun --standalone --nproc-per-node N` does, without Python. Each
// rank is a copy of a program with torchrun's variables set (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1,
// MASTER_PORT, GLOO_SOCKET_IFNAME=lo), so a rank cannot tell this launcher
// from torchrun, plus MEMSKEW_RANK_THREADS: its share of the CPU threads.
// LibTorch-free (the core library).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace memskew {

struct LocalLaunchParams {
    int nproc = 2;
    std::string program = "/proc/self/exe";  // what each rank runs
    std::vector<std::string> args;           // its argv[1..]
    std::vector<std::string> env;            // extra NAME=value for every rank (after the launcher's own)
    int master_port = 0;                     // 0: a free port on 127.0.0.1
    // CPU threads in all: each rank gets threads / nproc (at least 1); 0:
    // the machine's cores shared the same way.
    int threads = 0;
    // After one rank fails, how long the others get to stop by themselves
    // (they learn it at their next collective) before they are terminated.
    std::chrono::milliseconds grace{std::chrono::seconds(30)};
};

struct LaunchOutcome {
    std::vector<int> exit_codes;  // by rank; 128 + signal for a rank a signal ended
    int first_failed = -1;        // the rank that failed first (-1: none)
    int exit_code() const;        // the first failed rank's code, else 0
};

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
// Another process may take it before it is used: as torchrun's, a race
// the rendezvous reports ("port in use") rather than prevents.
int free_local_port();

// CPU threads for each of `nproc` ranks from `threads` in all (0: `cores`).
int threads_each(int threads, int nproc, int cores);

// Starts p.nproc ranks and waits for all of them. Throws InvalidInput for
// nproc < 1 and IoError when a rank cannot be started (the ranks already
// started are terminated).
LaunchOutcome launch_local(const LocalLaunchParams& p);

}  // namespace memskew
