// Whole jobs on a results store (the pipeline layer, like the probe, the
// study and the demo): open the store, read what a layer needs through the
// store's readers, run the layer, write the file. The CLI and other front ends
// call these; the layers below never open files of their own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "memskew/analysis.h"
#include "memskew/report.h"
#include "memskew/similarity-figures.h"
#include "memskew/store.h"

namespace memskew {

// Opens the store read-only and analyses it. Errors: IoError (cannot open),
// FormatError (not a memskew store / corrupted; the message names the file),
// InvalidInput (no runs: "the store holds no runs"; unknown run id: the
// message lists the ids; the run has no samples).
AnalysisResult analyze_store(const std::string& db_path, const AnalyzeParams& params = {});

// Loads the report's inputs for result.run from the store: its columns and
// the texts of the top `params.top_k` samples by n_pre.
ReportInputs load_report_inputs(const ResultReader& reader, const AnalysisResult& result,
                                const ReportParams& params = {});

// Opens the store, analyses it, renders the report and writes it to out_path
// atomically (a temporary file beside it, then rename): on any error the
// target is left as it was. Errors as analyze_store, IoError for the output.
void write_report_file(const std::string& db_path, const std::string& out_path,
                       const AnalyzeParams& analyze_params = {}, const ReportParams& params = {});

// Computes the run's similarity figures from its stored vectors and saves them
// (store-similarity.h): the embedding model and whether to keep the vectors
// come from the run's options ("embeddings", "keep_embeddings"). Returns
// nullopt, touching nothing, when the run holds no vectors (a version-1
// store, or figures already computed and the vectors dropped).
std::optional<RunSimilarity> compute_store_similarity(const std::string& db_path, int64_t run_id,
                                                      const SimilarityParams& params = {});

}  // namespace memskew
