// The local launcher (see include/memskew/local-launch.h).
#include "memskew/local-launch.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "memskew/error.h"

extern char** environ;

namespace memskew {

namespace {

// Variables a rank must not inherit from an enclosing launcher: they would
// describe another job (RANK and friends are set anew; Slurm's ones would be
// ignored anyway, torchrun's agent store is not there).
bool inherited_launcher_variable(const std::string& kv) {
    static const char* const kDrop[] = {"RANK=",         "WORLD_SIZE=",     "LOCAL_RANK=",        "LOCAL_WORLD_SIZE=",
                                        "MASTER_ADDR=",  "MASTER_PORT=",    "GLOO_SOCKET_IFNAME=", "MEMSKEW_RANK_THREADS=",
                                        "OMP_NUM_THREADS=", "TORCHELASTIC_"};
    for (const char* d : kDrop)
        if (kv.compare(0, std::strlen(d), d) == 0) return true;
    return false;
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

}  // namespace

int LaunchOutcome::exit_code() const {
    return first_failed < 0 ? 0 : exit_codes[static_cast<std::size_t>(first_failed)];
}

int free_local_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw IoError(fmt::format("cannot open a socket to find a free port: {}", std::strerror(errno)));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    const int err = errno;
    close(fd);
    if (!ok) throw IoError(fmt::format("cannot find a free port on 127.0.0.1: {}", std::strerror(err)),
                           "pass --master-port");
    return ntohs(a.sin_port);
}

int threads_each(int threads, int nproc, int cores) {
    return std::max(1, (threads > 0 ? threads : cores) / std::max(1, nproc));
}

LaunchOutcome launch_local(const LocalLaunchParams& p) {
    if (p.nproc < 1) throw InvalidInput(fmt::format("--nproc {}: at least one process", p.nproc));
    const int port = p.master_port > 0 ? p.master_port : free_local_port();
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int each = threads_each(p.threads, p.nproc, cores);
    std::vector<std::string> base_env;
    for (char** e = environ; *e; ++e)
        if (!inherited_launcher_variable(*e)) base_env.emplace_back(*e);

    std::vector<pid_t> pids;
    auto terminate_all = [&](int sig) {
        for (pid_t pid : pids)
            if (pid > 0) kill(pid, sig);
    };
    for (int r = 0; r < p.nproc; ++r) {
        std::vector<std::string> env = base_env;
        for (const std::string& kv :
             {fmt::format("RANK={}", r), fmt::format("WORLD_SIZE={}", p.nproc), fmt::format("LOCAL_RANK={}", r),
              fmt::format("LOCAL_WORLD_SIZE={}", p.nproc), std::string("MASTER_ADDR=127.0.0.1"),
              fmt::format("MASTER_PORT={}", port), std::string("GLOO_SOCKET_IFNAME=lo"),
              fmt::format("MEMSKEW_RANK_THREADS={}", each), fmt::format("OMP_NUM_THREADS={}", each)})
            env.push_back(kv);
        env.insert(env.end(), p.env.begin(), p.env.end());
        std::vector<char*> envp;
        for (auto& s : env) envp.push_back(s.data());
        envp.push_back(nullptr);
        std::vector<std::string> args{p.program};
        args.insert(args.end(), p.args.begin(), p.args.end());
        std::vector<char*> argv;
        for (auto& s : args) argv.push_back(s.data());
        argv.push_back(nullptr);
        pid_t pid = 0;
        const int rc = posix_spawn(&pid, p.program.c_str(), nullptr, nullptr, argv.data(), envp.data());
        if (rc != 0) {
            terminate_all(SIGTERM);
            for (pid_t q : pids) waitpid(q, nullptr, 0);
            throw IoError(fmt::format("cannot start rank {} ({}): {}", r, p.program, std::strerror(rc)));
        }
        pids.push_back(pid);
    }

    // Wait for every rank; once one fails, the others get the grace period
    // to end by themselves, then SIGTERM (and SIGKILL 5 s later).
    LaunchOutcome out;
    out.exit_codes.assign(static_cast<std::size_t>(p.nproc), 0);
    std::vector<bool> running(static_cast<std::size_t>(p.nproc), true);
    int n_running = p.nproc;
    auto failed_at = std::chrono::steady_clock::time_point::max();
    bool termed = false, killed = false;
    while (n_running > 0) {
        for (std::size_t r = 0; r < pids.size(); ++r) {
            if (!running[r]) continue;
            int status = 0;
            const pid_t got = waitpid(pids[r], &status, WNOHANG);  // only our ranks, never another child
            if (got == 0 || (got < 0 && errno == EINTR)) continue;
            running[r] = false;
            pids[r] = -1;
            --n_running;
            out.exit_codes[r] = got > 0 ? decode_status(status) : 1;
            if (out.exit_codes[r] != 0 && out.first_failed < 0) {
                out.first_failed = static_cast<int>(r);
                failed_at = std::chrono::steady_clock::now();
            }
        }
        if (n_running == 0) break;
        const auto now = std::chrono::steady_clock::now();
        if (!termed && out.first_failed >= 0 && now - failed_at > p.grace) {
            terminate_all(SIGTERM);
            termed = true;
        }
        if (termed && !killed && now - failed_at > p.grace + std::chrono::seconds(5)) {
            terminate_all(SIGKILL);
            killed = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return out;
}

}  // namespace memskew
