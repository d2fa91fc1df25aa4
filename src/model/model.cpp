#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>
#include <cstdlib>

#include <torch/cuda.h>

#include "memskew/error.h"
#include "model/model-impl.h"

namespace memskew {

void set_compute_threads(int n_threads) {
    if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(n_threads);
}

void ensure_passive_openmp(int argc, char** argv) {
    (void)argc;
    if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    // exec failed (no /proc?): carry on with the default policy.
}

std::string parse_device(const std::string& device) {
    if (device == "cpu") return device;
    const std::string kCuda = "cuda";
    int64_t index = 0;
    bool ok = device.compare(0, kCuda.size(), kCuda) == 0;
    if (ok && device.size() > kCuda.size()) {
        // "cuda:N": digits only (no sign, no spaces), as torch::Device spells it.
        const std::string digits = device.substr(kCuda.size() + 1);
        ok = device[kCuda.size()] == ':' && !digits.empty() && digits.size() <= 4 &&
             digits.find_first_not_of("0123456789") == std::string::npos;
        if (ok) index = std::stoll(digits);
    }
    if (!ok)
        throw InvalidInput(fmt::format("--device {}: unknown device", device),
                           "use cpu, cuda (the first visible GPU) or cuda:N");
    // A CPU-only LibTorch answers false here, and so does a CUDA build that
    // sees no GPU (driver missing, CUDA_VISIBLE_DEVICES empty).
    if (!torch::cuda::is_available())
        throw InvalidInput(fmt::format("--device {}: this LibTorch build has no CUDA (or no GPU is visible)", device),
                           "build memskew against a CUDA LibTorch (see README.md, \"GPUs\"), check nvidia-smi and "
                           "CUDA_VISIBLE_DEVICES, or use --device cpu");
    const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
    if (index >= n)
        throw InvalidInput(fmt::format("--device {}: there {} only {} visible GPU{} (cuda:0 to cuda:{})", device,
                                       n == 1 ? "is" : "are", n, n == 1 ? "" : "s", n - 1),
                           "check nvidia-smi and CUDA_VISIBLE_DEVICES");
    return fmt::format("cuda:{}", index);
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelConfig& Model::config() const { return impl_->config; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
DType Model::dtype() const { return impl_->dtype; }
const std::string& Model::device() const { return impl_->device; }
const std::string& Model::path() const { return impl_->path; }

std::shared_ptr<Model> Model::load(const std::string& path, const LoadParams& params) {
    set_compute_threads(params.n_threads);
    parse_device(params.device);  // before reading gigabytes for a device that is not there
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw IoError(fmt::format("cannot open model '{}': no such file or directory", path),
                      "pass a GGUF file (.gguf) or a Hugging Face model folder");
    // Hugging Face folders: the folder itself, or its config.json / weights file.
    const std::string file = std::filesystem::path(path).filename().string();
    auto ends_with = [&](const char* suffix) {
        const size_t n = std::strlen(suffix);
        return file.size() >= n && file.compare(file.size() - n, n, suffix) == 0;
    };
    if (std::filesystem::is_directory(path, ec) || file == "config.json" || ends_with(".safetensors") ||
        ends_with(".safetensors.index.json"))
        return ModelAccess::make(load_hf_model(path, params));
    char magic[4] = {0, 0, 0, 0};
    {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw IoError(fmt::format("cannot read model '{}': {}", path, std::strerror(errno)));
        in.read(magic, 4);
    }
    if (std::memcmp(magic, "GGUF", 4) != 0) {
        throw FormatError(fmt::format("error loading {}: not a GGUF file (bad magic)", path),
                          "memskew reads GGUF model files and Hugging Face model folders (config.json + safetensors)");
    }
    return ModelAccess::make(load_gguf_model(path, params));
}

}  // namespace memskew
