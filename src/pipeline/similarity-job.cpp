// compute_store_similarity: a run's stored vectors -> its similarity figures
// (see include/memskew/pipeline.h).
#include <fmt/format.h>

#include "memskew/pipeline.h"

namespace memskew {

std::optional<RunSimilarity> compute_store_similarity(const std::string& db_path, int64_t run_id,
                                                      const SimilarityParams& params) {
    bool keep = false;
    std::string embed_model;
    RunVectors vectors;
    {
        // The reader is closed before the figures are written.
        const ResultReader reader = ResultReader::open(db_path, /*memory_map=*/false);
        const RunInfo info = reader.run(run_id);
        if (count_vectors(reader, run_id) == 0) return std::nullopt;
        vectors = load_vectors(reader, run_id);
        const auto& o = info.spec.options;
        keep = o.value(kKeepEmbeddingsOptionKey, false);
        if (o.contains("embeddings") && o["embeddings"].is_string() && o["embeddings"] != "self" &&
            o["embeddings"] != "off")
            embed_model = o["embeddings"].get<std::string>();
    }
    SimilarityFigures f = compute_similarity_figures(vectors, params);
    f.run.embed_model = embed_model;
    f.run.vectors_kept = keep;
    save_similarity(db_path, f.run, f.samples);
    // As stored (with its time stamp).
    return load_run_similarity(ResultReader::open(db_path, false), run_id);
}

}  // namespace memskew
