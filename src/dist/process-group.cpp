// ProcessGroup over c10d (see include/memskew/process-group.h). Debian's
// LibTorch 1.13 builds c10d with Gloo; linking torch_cpu brings USE_C10D_GLOO.
#include "memskew/process-group.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>

#include "memskew/error.h"

#ifndef USE_C10D_GLOO
#error "memskew needs LibTorch with c10d's Gloo backend (USE_C10D_GLOO)"
#endif

namespace memskew {

struct ProcessGroup::Impl {
    DistEnv env;
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;

    // Runs a c10d step; any failure becomes an IoError naming the rank and the step.
    template <typename Fn>
    auto guarded(const char* what, Fn&& fn) -> decltype(fn()) {
        try {
            return fn();
        } catch (const std::exception& e) {
            throw IoError(fmt::format("rank {} of {}: {} failed: {}", env.rank, env.world_size, what, e.what()),
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
    impl->guarded("the rendezvous", [&] {
        c10d::TCPStoreOptions so;
        so.port = static_cast<uint16_t>(env.master_port);
        so.isServer = env.rank == 0 && !agent;
        so.numWorkers = static_cast<std::size_t>(env.world_size);
        so.waitWorkers = true;
        so.timeout = params.timeout;
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
        if (agent) {
            const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
            store = c10::make_intrusive<c10d::PrefixStore>(
                std::string("/worker/attempt_") + (restart ? restart : "0"), store);
        }
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
    });
    return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

void ProcessGroup::barrier() {
    if (!impl_->pg) return;
    impl_->guarded("a barrier", [&] { impl_->pg->barrier()->wait(); });
}

void ProcessGroup::allreduce_sum(at::Tensor& tensor) {
    if (!impl_->pg) return;
    impl_->guarded("an all-reduce", [&] {
        std::vector<at::Tensor> t{tensor};
        impl_->pg->allreduce(t)->wait();
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

}  // namespace memskew
