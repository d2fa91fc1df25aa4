// Encode speed of every Hugging Face tokenizer.json in <shared>/tokenizers/hf
// (and the GGUF vocabularies beside them) on the whole of medquad.jsonl, one
// line (the raw JSON text) per encode call, single-threaded and with a fresh
// tokenizer each (the word cache starts cold).
//
// Baselines measured in the same run: memcpy of the lines, and the UTF-8
// decode + GPT-2 pre-tokenization alone (the floor of any byte-level BPE).
// The target is 5 MB/s per core for byte-level BPE; the ratio is printed.
//
// usage: bench-tokenize [shared-folder] [max-MB]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/tokenizer.h"
#include "tokenizer/pre-tokenizer.h"

namespace fs = std::filesystem;

namespace {

constexpr double kTargetMbPerS = 5.0;

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

struct Rate {
    double mb_per_s;
    double tokens_per_s;
    size_t n_tokens;
};

template <typename Fn>
Rate measure(const std::vector<std::string>& lines, size_t n_bytes, Fn&& fn) {
    const double c0 = cpu_seconds();
    size_t n_tokens = 0;
    for (const std::string& line : lines) n_tokens += fn(line);
    const double s = std::max(cpu_seconds() - c0, 1e-9);
    return {n_bytes / s / 1e6, n_tokens / s, n_tokens};
}

}  // namespace

int main(int argc, char** argv) {
    std::string shared = argc > 1 ? argv[1] : "";
    if (shared.empty()) {
        const char* env = std::getenv("MEMSKEW_SHARED_DIR");
        shared = env && *env ? env : MEMSKEW_SHARED_DIR_DEFAULT;
    }
    const size_t max_bytes = argc > 2 ? static_cast<size_t>(std::atof(argv[2]) * 1e6) : SIZE_MAX;
    const std::string data_path = shared + "/data/medquad.jsonl";
    std::ifstream in(data_path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "bench-tokenize: cannot open %s (pass the shared folder as the first argument)\n",
                     data_path.c_str());
        return 5;
    }
    std::vector<std::string> lines;
    size_t n_bytes = 0;
    for (std::string line; n_bytes < max_bytes && std::getline(in, line);) {
        n_bytes += line.size();
        lines.push_back(std::move(line));
    }
    std::printf("corpus: %s, %zu lines, %.1f MB (one encode call per line, 1 thread, CPU time)\n\n",
                data_path.c_str(), lines.size(), n_bytes / 1e6);

    std::string sink;
    const Rate copy = measure(lines, n_bytes, [&](const std::string& l) {
        sink.assign(l);
        return sink.size() > 0 ? 0 : 1;
    });
    const auto gpt2 = memskew::make_gpt2_pre_tokenizer();
    std::vector<std::string_view> pieces;
    const Rate pre = measure(lines, n_bytes, [&](const std::string& l) {
        pieces.clear();
        gpt2->split(l, pieces);
        return pieces.size();
    });
    std::printf("%-34s %9.1f MB/s\n", "baseline: memcpy", copy.mb_per_s);
    std::printf("%-34s %9.1f MB/s  (%.1f M pieces/s)\n\n", "baseline: UTF-8 + GPT-2 pre-tokenize", pre.mb_per_s,
                pre.tokens_per_s / 1e6);
    std::printf("%-34s %9s %11s %10s %10s %12s\n", "tokenizer", "MB/s", "Mtokens/s", "tokens", "vs 5MB/s",
                "vs pre-tok");

    std::vector<std::string> paths;
    for (const auto& e : fs::directory_iterator(shared + "/tokenizers/hf")) {
        if (fs::exists(e.path() / "tokenizer.json")) paths.push_back((e.path() / "tokenizer.json").string());
    }
    std::sort(paths.begin(), paths.end());
    const std::string gguf_dir = shared + "/tokenizers/gguf";
    if (fs::is_directory(gguf_dir)) {
        std::vector<std::string> ggufs;
        for (const auto& e : fs::directory_iterator(gguf_dir)) ggufs.push_back(e.path().string());
        std::sort(ggufs.begin(), ggufs.end());
        paths.insert(paths.end(), ggufs.begin(), ggufs.end());
    }
    int worst = 0;
    for (const std::string& path : paths) {
        try {
            const auto tok = memskew::load_tokenizer(path);
            const Rate r = measure(lines, n_bytes, [&](const std::string& l) { return tok->encode(l).size(); });
            const std::string name = fs::path(path).parent_path().filename().string() + "/" + fs::path(path).filename().string();
            std::printf("%-34s %9.2f %11.2f %10zu %9.2fx %11.2fx\n", name.c_str(), r.mb_per_s, r.tokens_per_s / 1e6,
                        r.n_tokens, r.mb_per_s / kTargetMbPerS, r.mb_per_s / pre.mb_per_s);
        } catch (const memskew::Error& e) {
            std::printf("%-34s error: %s\n", path.c_str(), e.message().c_str());
            worst = 4;
        }
    }
    return worst;
}
