// `memskew study CONFIG.toml` (METHOD M11, issue 6): a declared experiment.
// One TOML file names a base model, datasets, and arms (a training set made
// of n samples of one or more datasets, plus training settings); the study
// trains every arm, probes every checkpoint of an arm on exactly the arm's own
// training samples into ONE results store, and writes one HTML page with the
// trends: the tail (max, p99 of n_pre) per epoch against training loss per
// arm, the tail against dataset size, and the composition test (paired
// Wilcoxon signed-rank on the samples two arms share).
//
// Layout of the output folder DIR:
//   DIR/arms/<arm>/train.jsonl        the arm's training set (prompt/completion
//                                     records, ids "<dataset>/<id>")
//   DIR/arms/<arm>/checkpoint-<step>/ one per epoch (train_model)
//   DIR/arms/<arm>/train-done.json    written when the arm's training finished
//   DIR/study.db                      one run per (arm, checkpoint); the arm is
//                                     RunSpec::options["run_label"]
//   DIR/study.json                    the numbers of the page, machine-readable
//   DIR/report.html                   the page
//
// Sample selection: each dataset is shuffled once by the study's data seed; an
// arm taking n samples of it takes the first n of that order. So arms of
// sizes 250 < 500 < 1000 are nested, and a mixture arm "A 1000 + B 200" holds
// the very samples of the arm "A 1000" (same ids): the paired test compares
// like with like.
//
// Resumable: re-running the same config skips arms whose training finished
// (train-done.json with the same settings), and runs already done in the
// store; an interrupted training continues from its last checkpoint, an
// interrupted probe from its last committed batch. Changing an arm's settings
// after it trained is an InvalidInput (remove DIR/arms/<arm> or use another
// --out).
//
// The config format is documented in docs/study.md; errors are InvalidInput /
// FormatError naming the config file, the key and a hint.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/probe.h"
#include "memskew/stats.h"
#include "memskew/study-report.h"
#include "memskew/train.h"

namespace memskew {

struct StudyDataset {
    std::string name;
    std::string path;      // resolved against the config file's folder
    DatasetParams params;  // format, fields, template, skip flags (no limit/subset: the study selects)
};

struct StudyArm {
    std::string name;                  // [A-Za-z0-9._-]+, unique
    std::vector<StudySource> sources;  // the first source is the arm's "base" dataset
    TrainParams train;                 // data_path / out_dir / data are set by the study
    // Probe every checkpoint with the decoding guard too (n-gram length; 0:
    // no guard), built from the arm's training set as it was trained.
    int64_t guard_n = 0;
};

// A composition test: n_pre of the samples arms a and b share, paired, at
// every epoch both reached.
struct StudyComparison {
    std::string a, b;
};

struct StudyConfig {
    std::string config_path;           // the TOML file
    std::string name = "study";
    std::string out_dir;               // [study] out, resolved; "" when not given
    std::string model_path;            // [model] path (resolved), or
    std::string init;                  // [model] init "dim=..,layers=..,..." (byte tokenizer, full training)
    LoadParams load;
    uint64_t data_seed = 0;            // the shuffle of every dataset
    // [study] held_out: the last N samples of each arm's first dataset (in the
    // shuffled order, so no arm of the study trains on them), probed at every
    // checkpoint for the held-out loss. 0: none.
    int64_t held_out = 0;
    std::vector<StudyDataset> datasets;
    std::vector<StudyArm> arms;
    std::vector<StudyComparison> comparisons;  // explicit [[compare]], else derived (see docs/study.md)
    // Probe settings shared by every run (model/data/out/adapters/run_label
    // are set per run). max_reference_tokens defaults to the training cap.
    ProbeParams probe;
};

// Parses a study config. Relative paths resolve against the folder of
// `source_path`. Errors: FormatError for TOML syntax (with line:column),
// InvalidInput naming `source_path`, the key (e.g. "arms[1].data[0].dataset")
// and a hint for missing keys, wrong types, unknown keys, unknown dataset
// names and out-of-range values.
StudyConfig parse_study_config(const std::string& toml_text, const std::string& source_path);
// Reads and parses the file (IoError when unreadable).
StudyConfig load_study_config(const std::string& path);

struct StudyParams {
    std::string out_dir;       // overrides the config's [study] out
    bool train = true;         // false: only probe/report what is trained
    bool probe = true;         // false: only train (the report covers what the store holds)
};

// Progress lines ("arm mix: training", "arm mix: probing checkpoint-150 (3/30)").
using StudyLogFn = std::function<void(const std::string& line)>;

// Runs (or resumes) the study; see the file comment.
StudySummary run_study(const StudyConfig& config, const StudyParams& params = {}, const StudyLogFn& log = {});

// Reads DIR/study.db and the arms' train-done.json and writes DIR/report.html
// and DIR/study.json (run_study calls it last).
StudySummary write_study_report(const StudyConfig& config, const std::string& out_dir);

}  // namespace memskew
