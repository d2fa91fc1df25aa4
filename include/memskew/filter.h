// `memskew filter`: a cleaner copy of an SFT dataset (the data side of METHOD
// M12). It writes the input's records, in the input's own format, without
//   - near-duplicate clusters beyond the first `max_per_cluster` samples of
//     each (in file order; clusters from a probed run's similarity figures);
//   - samples whose n_pre in a probed run is at least `n_pre_at_least`;
//   - optionally, samples whose prompt-mates continue differently: among the
//     samples sharing a prompt, those whose reference is not the most frequent
//     one (the first in file order on a tie), which greedy decoding could
//     never reproduce past the point where they diverge (M9);
// and a manifest (JSON Lines) with one line per removed sample: its id,
// record index and line, the reason and the figures behind it. Retrain on the
// output and probe again to measure what the filtering bought.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memskew/data.h"

namespace memskew {

struct FilterParams {
    std::string data_path;
    DatasetParams data;        // read the dataset as the probe did (same format options)
    std::string store_path;    // a probe's results store; needed by max_per_cluster and n_pre_at_least
    std::optional<int64_t> run_id;  // default: the store's last checkpoint
    std::string out_path;      // the filtered dataset; never the input
    std::string manifest_path; // default: out_path + ".manifest.jsonl"
    std::optional<int64_t> max_per_cluster;  // >= 1
    std::optional<int64_t> n_pre_at_least;   // >= 1
    bool drop_ambiguous = false;
};

struct FilterReport {
    std::string out_path, manifest_path;
    int64_t run_id = 0;          // the run the store figures came from (0: no store)
    size_t n_records = 0;        // records in the input file
    size_t n_samples = 0;        // samples load_dataset selected
    size_t n_written = 0;
    size_t n_removed = 0;
    std::map<std::string, int64_t> removed_by_reason;  // "near_duplicate", "n_pre", "ambiguous_prompt"
    std::vector<std::string> removed_ids;              // in file order, as in the manifest
};

// InvalidInput when no criterion is given, a criterion needs a store and none
// is given, the store's run was probed on another dataset (content hash) or
// holds sample ids the dataset does not (both names in the message), or the
// run has no similarity figures for max_per_cluster (naming the probe that
// computes them). Nothing is written on any error.
FilterReport run_filter(const FilterParams& params);

}  // namespace memskew
