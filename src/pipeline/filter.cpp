// run_filter (see include/memskew/filter.h): dataset + results store ->
// filtered dataset + manifest.
#include "memskew/filter.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "memskew/analysis.h"
#include "memskew/dataset-subset.h"
#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/store-similarity.h"
#include "memskew/store.h"

namespace memskew {

namespace {

struct Removal {
    std::string reason;
    nlohmann::json detail;
};

}  // namespace

FilterReport run_filter(const FilterParams& p) {
    if (!p.max_per_cluster && !p.n_pre_at_least && !p.drop_ambiguous)
        throw InvalidInput("filter: nothing to filter by",
                           "pass --max-per-cluster N, --n-pre-at-least T (both with --store RUN.db) or "
                           "--drop-ambiguous");
    if ((p.max_per_cluster || p.n_pre_at_least) && p.store_path.empty())
        throw InvalidInput("filter: --max-per-cluster and --n-pre-at-least need the results store of a probe of "
                           "this dataset",
                           "pass --store RUN.db (from `memskew probe -d DATA --out RUN.db`)");
    if (p.max_per_cluster && *p.max_per_cluster < 1)
        throw InvalidInput(fmt::format("filter: --max-per-cluster must be at least 1, got {}", *p.max_per_cluster));
    if (p.n_pre_at_least && *p.n_pre_at_least < 1)
        throw InvalidInput(fmt::format("filter: --n-pre-at-least must be at least 1, got {}", *p.n_pre_at_least),
                           "n_pre >= 0 holds for every sample");
    if (p.out_path.empty()) throw InvalidInput("filter: no output given", "pass --out FILTERED.jsonl");

    FilterReport report;
    report.out_path = p.out_path;
    report.manifest_path = p.manifest_path.empty() ? p.out_path + ".manifest.jsonl" : p.manifest_path;
    {
        std::error_code ec;
        if (std::filesystem::exists(report.manifest_path, ec) && std::filesystem::equivalent(report.manifest_path, p.data_path, ec))
            throw InvalidInput(fmt::format("filter: the manifest {} is the input dataset", report.manifest_path),
                               "choose another --manifest");
    }
    const Dataset ds = load_dataset(p.data_path, p.data);
    report.n_samples = ds.samples.size();
    std::unordered_map<std::string, std::size_t> by_id;
    for (std::size_t i = 0; i < ds.samples.size(); ++i) by_id.emplace(ds.samples[i].id, i);
    std::unordered_map<std::size_t, Removal> removed;  // dataset sample -> why (the first reason found)

    if (!p.store_path.empty()) {
        const ResultReader reader = ResultReader::open(p.store_path, false);
        const auto runs = reader.runs();
        if (runs.empty())
            throw InvalidInput(fmt::format("{}: the results store holds no runs", p.store_path),
                               "probe the dataset first: memskew probe -d DATA --out RUN.db");
        const RunInfo run = p.run_id ? reader.run(*p.run_id) : runs[last_checkpoint_index(runs)];
        report.run_id = run.run_id;
        const std::string hash = file_content_hash(p.data_path);
        if (hash != run.spec.dataset_hash)
            throw InvalidInput(fmt::format("filter: {} (run {}) was probed on dataset {} (content hash {}), but {} has "
                                           "content hash {}",
                                           p.store_path, run.run_id, run.spec.dataset_path, run.spec.dataset_hash,
                                           p.data_path, hash),
                               "filter the dataset the store was probed on, or probe this one first");
        const RunColumns cols = reader.load_columns(run.run_id);
        std::vector<std::string> unknown;
        for (const auto& id : cols.sample_id)
            if (!by_id.count(id)) unknown.push_back(id);
        if (!unknown.empty())
            throw InvalidInput(fmt::format("filter: {} sample ids of {} (run {}) are not in {} as read now, e.g. '{}'",
                                           unknown.size(), p.store_path, run.run_id, p.data_path, unknown.front()),
                               "read the dataset with the options the probe used (--format, --id-field, "
                               "--template, ...)");

        if (p.n_pre_at_least) {
            for (std::size_t i = 0; i < cols.size(); ++i) {
                if (cols.n_pre[i] < *p.n_pre_at_least) continue;
                removed.emplace(by_id.at(cols.sample_id[i]),
                                Removal{"n_pre", {{"n_pre", cols.n_pre[i]}, {"threshold", *p.n_pre_at_least}}});
            }
        }
        if (p.max_per_cluster) {
            const auto sims = load_sample_similarity(reader, run.run_id);
            if (sims.empty())
                throw InvalidInput(fmt::format("filter: {} (run {}) has no near-duplicate clusters", p.store_path,
                                               run.run_id),
                                   "probe with this memskew: it computes them for every run (a shard's after "
                                   "`memskew merge`)");
            // In sample_index order: the first max_per_cluster of each cluster stay.
            std::unordered_map<int64_t, int64_t> seen;
            std::unordered_map<int64_t, std::string> first_id;
            for (const auto& s : sims) {
                if (s.cluster_size < 2) continue;
                const int64_t n = ++seen[s.cluster];
                if (n == 1) first_id[s.cluster] = s.sample_id;
                if (n <= *p.max_per_cluster) continue;
                removed.emplace(by_id.at(s.sample_id), Removal{"near_duplicate",
                                                               {{"cluster", s.cluster},
                                                                {"cluster_size", s.cluster_size},
                                                                {"kept", first_id[s.cluster]}}});
            }
        }
    }

    if (p.drop_ambiguous) {
        // Samples sharing a prompt: the most frequent reference stays.
        std::unordered_map<std::string, std::vector<std::size_t>> mates;
        for (std::size_t i = 0; i < ds.samples.size(); ++i)
            if (!ds.samples[i].prompt.empty()) mates[ds.samples[i].prompt].push_back(i);
        for (const auto& [prompt, group] : mates) {
            if (group.size() < 2) continue;
            std::unordered_map<std::string, int64_t> count;
            for (std::size_t i : group) count[ds.samples[i].reference]++;
            if (count.size() < 2) continue;
            // The majority reference; on a tie the one that comes first in the file.
            const std::string* best = nullptr;
            int64_t best_n = 0;
            for (std::size_t i : group) {
                const int64_t n = count[ds.samples[i].reference];
                if (n > best_n) {
                    best = &ds.samples[i].reference;
                    best_n = n;
                }
            }
            for (std::size_t i : group) {
                if (ds.samples[i].reference == *best) continue;
                removed.emplace(i, Removal{"ambiguous_prompt",
                                           {{"prompt_mates", group.size()},
                                            {"distinct_references", count.size()},
                                            {"majority_copies", best_n}}});
            }
        }
    }

    std::unordered_set<std::size_t> indexes;
    std::vector<std::size_t> order;
    for (const auto& [i, r] : removed) {
        indexes.insert(ds.samples[i].index);
        order.push_back(i);
    }
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return ds.samples[a].index < ds.samples[b].index; });
    // The dataset first: it checks the output path against the input.
    const SubsetWriteReport w = write_dataset_subset(p.data_path, p.data, indexes, p.out_path);
    std::string manifest;
    for (std::size_t i : order) {
        const Sample& s = ds.samples[i];
        const Removal& r = removed.at(i);
        nlohmann::ordered_json line = {{"id", s.id}, {"index", s.index}, {"line", s.line}, {"reason", r.reason}};
        for (auto it = r.detail.begin(); it != r.detail.end(); ++it) line[it.key()] = it.value();
        manifest += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        report.removed_by_reason[r.reason]++;
        report.removed_ids.push_back(s.id);
    }
    try {
        write_text_file_atomic(report.manifest_path, manifest);
    } catch (...) {
        // No filtered dataset without its manifest.
        std::error_code ec;
        std::filesystem::remove(p.out_path, ec);
        throw;
    }
    report.n_records = w.n_records;
    report.n_written = w.n_written;
    report.n_removed = w.n_removed;
    return report;
}

}  // namespace memskew
