// `memskew analyze`: a results store -> AnalysisResult (METHOD M5-M11). The
// store's readers give the columns, token arrays and prompts; analysis/ does
// the rest.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "memskew/error.h"
#include "util/stopwatch.h"
#include "memskew/pipeline.h"

namespace memskew {

AnalysisResult analyze_store(const std::string& db_path, const AnalyzeParams& params) {
    Stopwatch timer;
    // Without the memory mapping: samples, metrics and token arrays share
    // pages' neighbourhoods (they are written in one transaction), so a full
    // pass would fault in most of the mapping and count it as this process's
    // resident memory (2.1 GB peak at 1M x 64 tokens instead of ~0.6 GB) for a
    // slightly faster read. Plain reads keep RSS to our own data.
    ResultReader reader = ResultReader::open(db_path, /*memory_map=*/false);
    const std::vector<RunInfo> infos = reader.runs();
    if (infos.empty())
        throw InvalidInput(fmt::format("{}: the results store holds no runs", db_path),
                           "was the probe interrupted before it started? run `memskew probe --out` again");
    std::size_t selected = last_checkpoint_index(infos);
    if (params.run_id) {
        const RunInfo info = reader.run(*params.run_id);  // InvalidInput listing the ids
        selected = static_cast<std::size_t>(
            std::find_if(infos.begin(), infos.end(), [&](const RunInfo& r) { return r.run_id == info.run_id; }) -
            infos.begin());
    }
    std::vector<RunInput> runs(infos.size());
    for (std::size_t i = 0; i < infos.size(); ++i) {
        runs[i].info = infos[i];
        if (i != selected && !params.trends) continue;
        runs[i].columns = reader.load_columns(infos[i].run_id);
        if (i != selected) {
            // M11 needs only sample ids and n_pre of the other runs.
            runs[i].columns.metric_values.clear();
            runs[i].columns.metric_names.clear();
            runs[i].columns.metric_values.shrink_to_fit();
        }
    }
    const double load_seconds = timer.lap();
    RunInput& run = runs[selected];
    const int64_t run_id = run.info.run_id;
    run.tokens = [&reader, run_id](const TokenVisitor& visit) { reader.for_each_tokens(run_id, visit); };
    if (params.predictors) {
        // Only the prompt column, not every full record (texts and arrays).
        std::unordered_map<std::string_view, std::size_t> index;
        index.reserve(run.columns.size());
        for (std::size_t i = 0; i < run.columns.size(); ++i) index.emplace(run.columns.sample_id[i], i);
        run.prompts.assign(run.columns.size(), std::nullopt);
        with_context(db_path, [&] {
            reader.for_each_prompt(run_id, [&](const std::string& id, const std::string& prompt) {
                const auto it = index.find(id);
                if (it != index.end()) run.prompts[it->second] = prompt;
            });
        });
    }
    if (params.similarity) {
        for (auto& r : runs) r.similarity = load_run_similarity(reader, r.info.run_id);
        if (run.similarity) run.sample_similarity = load_sample_similarity(reader, run_id);
    }
    const double prompt_seconds = timer.lap();
    AnalysisResult r = analyze_runs(runs, selected, params);
    r.store_path = db_path;
    r.seconds["load"] = load_seconds;
    r.seconds["load_prompts"] = prompt_seconds;
    return r;
}

}  // namespace memskew
