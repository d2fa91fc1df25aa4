// The ranks of one job talking to each other (the dist/ layer): rendezvous
// through c10d's TCPStore and collectives over ProcessGroupGloo (CPU), the
// PyTorch distributed layer LibTorch ships. memskew/dist.h says which rank
// this process is; this connects it to the others.
//
// Under torchrun the launcher's agent already serves the store on
// MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True): every rank is then a
// client, with keys under "/worker/attempt_<restart>" as PyTorch's env://
// does. Otherwise rank 0 serves it.
//
// Every failure (the master unreachable, its port taken, a rank that died or
// stopped answering within the timeout) is an IoError naming this rank, the
// operation and the cause; the group is unusable after one. Each rank beats a
// heartbeat key in the store once a second from a thread of its own, so that
// after a failed collective the survivors can name the rank(s) whose
// heartbeat stopped (a process that died or was killed).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "memskew/dist.h"

namespace at {
class Tensor;
}

namespace memskew {

// An error as bytes another rank can rethrow: the memskew::Error type,
// message and hint (any other exception travels as an internal error).
std::string failure_bytes(const std::exception& e);
// Throws the error failure_bytes() described, its message prefixed with `prefix`.
[[noreturn]] void throw_failure(const std::string& bytes, const std::string& prefix = {});

struct ProcessGroupParams {
    // How long to wait for the other ranks: to rendezvous, and in any one collective.
    std::chrono::milliseconds timeout{std::chrono::seconds(300)};
    int gloo_threads = 2;
    // Whether the launcher's agent serves the store (torchrun); read from
    // TORCHELASTIC_USE_AGENT_STORE by connect() when left "auto".
    std::string agent_store = "auto";  // "auto" | "yes" | "no"
};

class ProcessGroup {
public:
    // Connects this rank to the others (env.world_size ranks in all). For one
    // process nothing is opened and every collective is the identity.
    static std::unique_ptr<ProcessGroup> connect(const DistEnv& env, const ProcessGroupParams& params = {});
    ~ProcessGroup();

    int rank() const;
    int world_size() const;

    void barrier();
    // Element-wise sum over the ranks, in place, on every rank. Gloo works
    // in host memory: a tensor on another device travels through a CPU copy.
    void allreduce_sum(at::Tensor& tensor);
    // Every rank's tensor takes rank `root`'s values (same shape and dtype
    // on every rank), in place.
    void broadcast(at::Tensor& tensor, int root = 0);
    // Rank 0 gets every rank's bytes in rank order (its own first); the other
    // ranks get an empty vector.
    std::vector<std::string> gather_to_root(const std::string& bytes);
    // Every rank gets rank `root`'s bytes.
    std::string broadcast_bytes(const std::string& bytes, int root = 0);

    // Runs fn on rank 0 alone and returns its result on every rank. When fn
    // throws, every rank throws that error (same type, message and hint): the
    // whole job stops with one message (a store rank 0 cannot open, say).
    std::string from_root(const std::function<std::string()>& fn);
    // Each rank's outcome of a step it did on its own (failure_bytes() of its
    // error, or "" for success). When any rank failed, every rank throws the
    // lowest failing rank's error, its message prefixed with "rank R: ".
    void agree(const std::string& failure);

    struct Impl;

private:
    explicit ProcessGroup(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace memskew
