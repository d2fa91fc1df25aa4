// ProcessGroup over c10d (see include/memskew/process-group.h). Debian's
// LibTorch 1.13 builds c10d with Gloo; linking torch_cpu brings USE_C10D_GLOO.
#include "memskew/process-group.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "memskew/error.h"

#ifndef USE_C10D_GLOO
#error "memskew needs LibTorch with c10d's Gloo backend (USE_C10D_GLOO)"
#endif

namespace memskew {

std::string failure_bytes(const std::exception& e) {
    nlohmann::json j;
    if (const auto* err = dynamic_cast<const Error*>(&e)) {
        j["type"] = err->exit_code() == ExitCode::kInvalidInput ? "invalid"
                    : err->exit_code() == ExitCode::kFormat     ? "format"
                    : err->exit_code() == ExitCode::kIo         ? "io"
                                                                : "internal";
        j["message"] = err->message();
        j["hint"] = err->hint();
    } else {
        j["type"] = "internal";
        j["message"] = e.what();
        j["hint"] = "";
    }
    return j.dump();
}

void throw_failure(const std::string& bytes, const std::string& prefix) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(bytes);
    } catch (const nlohmann::json::exception&) {
        throw IoError(prefix + "another rank failed and sent an unreadable error",
                      "the ranks of one job must run the same memskew build");
    }
    const std::string type = j.value("type", "internal");
    const std::string message = prefix + j.value("message", "");
    const std::string hint = j.value("hint", "");
    if (type == "invalid") throw InvalidInput(message, hint);
    if (type == "format") throw FormatError(message, hint);
    if (type == "io") throw IoError(message, hint);
    throw std::runtime_error(message);
}

namespace {

constexpr auto kBeatInterval = std::chrono::milliseconds(400);

std::string beat_key(int rank) { return "memskew-beat/" + std::to_string(rank); }

std::string join_ranks(const std::vector<int>& ranks) {
    std::string out;
    for (std::size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
    return out;
}

}  // namespace

// A c10d error's message without LibTorch's C++ backtrace, on one line.
static std::string short_cause(const std::exception& e) {
    const auto* c10 = dynamic_cast<const c10::Error*>(&e);
    std::string m = c10 ? c10->what_without_backtrace() : e.what();
    const auto trace = m.find("\nException raised from");
    if (trace != std::string::npos) m.erase(trace);
    for (auto& ch : m)
        if (ch == '\n') ch = ' ';
    while (!m.empty() && m.back() == ' ') m.pop_back();
    return m;
}

struct ProcessGroup::Impl {
    DistEnv env;
    bool agent_store = false;
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
    // The heartbeat: its own store connection (c10d's clients are not meant
    // to be shared across threads) and the thread that beats.
    c10::intrusive_ptr<c10d::Store> beat_store;
    std::thread beat_thread;
    std::mutex beat_mutex;
    std::condition_variable beat_cv;
    bool stopping = false;

    ~Impl() {
        if (beat_thread.joinable()) {
            {
                std::lock_guard<std::mutex> lock(beat_mutex);
                stopping = true;
            }
            beat_cv.notify_all();
            beat_thread.join();
        }
    }

    void start_heartbeat(c10::intrusive_ptr<c10d::Store> s) {
        beat_store = std::move(s);
        beat_thread = std::thread([this] {
            int64_t n = 0;
            std::unique_lock<std::mutex> lock(beat_mutex);
            while (!stopping) {
                try {
                    const std::string v = std::to_string(++n);
                    beat_store->set(beat_key(env.rank), std::vector<uint8_t>(v.begin(), v.end()));
                } catch (const std::exception&) {
                    return;  // the store is gone: the collectives will say so
                }
                beat_cv.wait_for(lock, kBeatInterval);
            }
        });
    }

    // After a failed collective: which other ranks' heartbeats have stopped
    // (two readings a few beats apart), as a sentence; "" when all beat.
    std::string lost_ranks() {
        if (!beat_store) return {};
        try {
            auto reading = [&] {
                // The beat thread's connection, used in turn (never across the
                // sleep: this rank must keep beating while it looks).
                const std::lock_guard<std::mutex> lock(beat_mutex);
                std::vector<std::string> v(static_cast<std::size_t>(env.world_size));
                for (int r = 0; r < env.world_size; ++r)
                    if (beat_store->check({beat_key(r)})) {
                        const auto b = beat_store->get(beat_key(r));
                        v[static_cast<std::size_t>(r)].assign(b.begin(), b.end());
                    }
                return v;
            };
            const auto first = reading();
            std::this_thread::sleep_for(kBeatInterval * 4);
            const auto second = reading();
            std::vector<int> lost;
            for (int r = 0; r < env.world_size; ++r)
                if (r != env.rank && first[static_cast<std::size_t>(r)] == second[static_cast<std::size_t>(r)])
                    lost.push_back(r);
            if (lost.empty()) return {};
            return fmt::format("; rank{} {} stopped (the process died or was killed)", lost.size() > 1 ? "s" : "",
                               join_ranks(lost));
        } catch (const std::exception&) {
            if (env.rank != 0 && !agent_store) return "; rank 0, which serves the rendezvous store, is gone";
            return {};
        }
    }

    // Runs a c10d step; any failure becomes an IoError naming the rank, the
    // step and, when the heartbeats tell, the rank that is gone.
    template <typename Fn>
    auto guarded(const char* what, Fn&& fn) -> decltype(fn()) {
        try {
            return fn();
        } catch (const std::exception& e) {
            const std::string cause = short_cause(e);
            if (cause.find("EADDRINUSE") != std::string::npos || cause.find("already in use") != std::string::npos)
                throw IoError(fmt::format("rank {} of {}: {} failed: port {} on {} is in use", env.rank,
                                          env.world_size, what, env.master_port, env.master_addr),
                              "another job (or a previous run still stopping) holds it: pass --master-port or set "
                              "MASTER_PORT to a free port");
            const std::string lost = lost_ranks();
            throw IoError(fmt::format("rank {} of {}: {} failed: {}{}", env.rank, env.world_size, what, cause, lost),
                          "another rank died or stopped answering, or the master is unreachable; see that rank's "
                          "message; resume with --resume");
        }
    }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world_size() const { return impl_->env.world_size; }

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env, const ProcessGroupParams& params) {
    auto impl = std::make_unique<Impl>();
    impl->env = env;
    if (!env.distributed()) return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
    bool agent = params.agent_store == "yes";
    if (params.agent_store == "auto") {
        const char* v = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
        agent = v && std::string(v) == "True";
    }
    impl->agent_store = agent;
    impl->guarded("the rendezvous", [&] {
        const std::string prefix = [] {
            const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
            return std::string("/worker/attempt_") + (restart ? restart : "0");
        }();
        c10d::TCPStoreOptions so;
        so.port = static_cast<uint16_t>(env.master_port);
        so.isServer = env.rank == 0 && !agent;
        so.numWorkers = static_cast<std::size_t>(env.world_size);
        so.waitWorkers = true;
        so.timeout = params.timeout;
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
        if (agent) store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
        impl->store = store;
        auto opts = c10d::ProcessGroupGloo::Options::create(params.timeout);
        // Each rank binds its own address: GLOO_SOCKET_IFNAME when set (as
        // PyTorch does), else the address its host name resolves to.
        const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
        opts->devices.push_back(ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
        opts->threads = params.gloo_threads;
        impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("memskew", store),
                                                              env.rank, env.world_size, opts);
        // The heartbeat's own client connection to the same store.
        c10d::TCPStoreOptions bo;
        bo.port = so.port;
        bo.isServer = false;
        bo.timeout = std::chrono::seconds(10);
        c10::intrusive_ptr<c10d::Store> beat = c10::make_intrusive<c10d::TCPStore>(env.master_addr, bo);
        if (agent) beat = c10::make_intrusive<c10d::PrefixStore>(prefix, beat);
        impl->start_heartbeat(beat);
    });
    return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

void ProcessGroup::barrier() {
    if (!impl_->pg) return;
    impl_->guarded("a barrier", [&] { impl_->pg->barrier()->wait(); });
}

namespace {
// What Gloo can work on in place: a contiguous CPU tensor (else a copy).
bool gloo_ready(const at::Tensor& t) { return t.device().is_cpu() && t.is_contiguous(); }
}  // namespace

void ProcessGroup::allreduce_sum(at::Tensor& tensor) {
    if (!impl_->pg) return;
    impl_->guarded("an all-reduce", [&] {
        std::vector<at::Tensor> t{gloo_ready(tensor) ? tensor : tensor.to(torch::kCPU).contiguous()};
        impl_->pg->allreduce(t)->wait();
        if (!t[0].is_same(tensor)) tensor.copy_(t[0]);
    });
}

void ProcessGroup::broadcast(at::Tensor& tensor, int root) {
    if (!impl_->pg) return;
    impl_->guarded("a broadcast", [&] {
        std::vector<at::Tensor> t{gloo_ready(tensor) ? tensor : tensor.to(torch::kCPU).contiguous()};
        c10d::BroadcastOptions bo;
        bo.rootRank = root;
        impl_->pg->broadcast(t, bo)->wait();
        if (!t[0].is_same(tensor)) tensor.copy_(t[0]);
    });
}

std::vector<std::string> ProcessGroup::gather_to_root(const std::string& bytes) {
    if (!impl_->pg) return {bytes};
    const int world = impl_->env.world_size, rank = impl_->env.rank;
    return impl_->guarded("a gather to rank 0", [&] {
        // Lengths first (all-gather, so every rank knows the padding), then
        // the bytes padded to the longest, gathered on rank 0.
        std::vector<at::Tensor> mine_len{torch::full({1}, static_cast<int64_t>(bytes.size()), torch::kInt64)};
        std::vector<std::vector<at::Tensor>> lens(1);
        for (int r = 0; r < world; ++r) lens[0].push_back(torch::empty({1}, torch::kInt64));
        impl_->pg->allgather(lens, mine_len)->wait();
        int64_t longest = 0;
        for (const auto& t : lens[0]) longest = std::max(longest, t.item<int64_t>());
        at::Tensor mine = torch::zeros({std::max<int64_t>(longest, 1)}, torch::kUInt8);
        if (!bytes.empty()) std::memcpy(mine.data_ptr<uint8_t>(), bytes.data(), bytes.size());
        std::vector<at::Tensor> in{mine};
        std::vector<std::vector<at::Tensor>> out;
        if (rank == 0) {
            out.emplace_back();
            for (int r = 0; r < world; ++r) out[0].push_back(torch::empty({std::max<int64_t>(longest, 1)}, torch::kUInt8));
        }
        c10d::GatherOptions go;
        go.rootRank = 0;
        impl_->pg->gather(out, in, go)->wait();
        std::vector<std::string> result;
        if (rank == 0)
            for (int r = 0; r < world; ++r)
                result.emplace_back(reinterpret_cast<const char*>(out[0][static_cast<std::size_t>(r)].data_ptr<uint8_t>()),
                                    static_cast<std::size_t>(lens[0][static_cast<std::size_t>(r)].item<int64_t>()));
        return result;
    });
}

std::string ProcessGroup::broadcast_bytes(const std::string& bytes, int root) {
    if (!impl_->pg) return bytes;
    return impl_->guarded("a broadcast", [&] {
        std::vector<at::Tensor> len{torch::full({1}, static_cast<int64_t>(bytes.size()), torch::kInt64)};
        c10d::BroadcastOptions bo;
        bo.rootRank = root;
        impl_->pg->broadcast(len, bo)->wait();
        const int64_t n = len[0].item<int64_t>();
        std::vector<at::Tensor> data{torch::zeros({std::max<int64_t>(n, 1)}, torch::kUInt8)};
        if (impl_->env.rank == root && n > 0) std::memcpy(data[0].data_ptr<uint8_t>(), bytes.data(), bytes.size());
        impl_->pg->broadcast(data, bo)->wait();
        return std::string(reinterpret_cast<const char*>(data[0].data_ptr<uint8_t>()), static_cast<std::size_t>(n));
    });
}

std::string ProcessGroup::from_root(const std::function<std::string()>& fn) {
    if (!impl_->pg) return fn();
    // 'R' + the result, or 'E' + failure_bytes().
    std::string outcome;
    if (impl_->env.rank == 0) {
        try {
            outcome = "R" + fn();
        } catch (const std::exception& e) {
            outcome = "E" + failure_bytes(e);
        }
    }
    outcome = broadcast_bytes(outcome, 0);
    if (outcome.empty()) throw IoError(fmt::format("rank {}: rank 0 sent nothing", impl_->env.rank));
    if (outcome[0] == 'E') throw_failure(outcome.substr(1));
    return outcome.substr(1);
}

void ProcessGroup::agree(const std::string& failure) {
    if (!impl_->pg) {
        if (!failure.empty()) throw_failure(failure);
        return;
    }
    const auto all = gather_to_root(failure);
    std::string verdict;  // "" or the decimal rank, a space, its failure
    for (std::size_t r = 0; r < all.size(); ++r)
        if (!all[r].empty()) {
            verdict = std::to_string(r) + " " + all[r];
            break;
        }
    verdict = broadcast_bytes(verdict, 0);
    if (verdict.empty()) return;
    const auto space = verdict.find(' ');
    throw_failure(verdict.substr(space + 1), fmt::format("rank {}: ", verdict.substr(0, space)));
}

}  // namespace memskew
