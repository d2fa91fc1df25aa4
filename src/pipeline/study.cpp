// `memskew study`: a declared M11 experiment (include/memskew/study.h): the run
// loop and the study's figures (the config file: study-config.cpp).
#include "memskew/study.h"
#include "memskew/analysis.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <numeric>
#include <random>
#include <sstream>
#include <unordered_map>

#include "memskew/error.h"
#include "memskew/peft-config.h"
#include "memskew/trainer-state.h"
#include "memskew/file-io.h"
#include "memskew/store.h"
#include "memskew/tokenizer.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------
// Running

// model.init, as `memskew train --init`, with the key named in errors.
ModelConfig parse_init(const std::string& file, const std::string& spec) {
    return with_context(fmt::format("{}: key 'model.init'", file), [&] { return parse_init_config(spec); });
}

std::string hex64(const std::string& data) { return fmt::format("{:016x}", XXH3_64bits(data.data(), data.size())); }

std::string read_file_or_empty(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

nlohmann::json train_json(const TrainParams& t) {
    nlohmann::json j;
    j["mode"] = t.mode == TrainMode::kLora ? "lora" : "full";
    if (t.mode == TrainMode::kLora) {
        j["lora_r"] = t.lora.r;
        j["lora_alpha"] = t.lora.lora_alpha;
        j["lora_dropout"] = t.lora.lora_dropout;
        j["lora_targets"] = t.lora.all_linear ? nlohmann::json("all-linear") : nlohmann::json(t.lora.target_modules);
        j["rslora"] = t.lora.use_rslora;
    }
    j["epochs"] = t.epochs;
    j["batch_size"] = t.batch_size;
    j["grad_accum"] = t.grad_accum;
    j["lr"] = t.lr;
    j["weight_decay"] = t.weight_decay;
    j["warmup_steps"] = t.warmup_steps;
    j["schedule"] = t.schedule == LrSchedule::kCosine ? "cosine" : t.schedule == LrSchedule::kLinear ? "linear" : "constant";
    j["max_grad_norm"] = t.max_grad_norm;
    j["max_reference_tokens"] = t.max_reference_tokens;
    j["append_eos"] = t.append_eos;
    j["seed"] = t.seed;
    // Only when on, so arms trained before Goldfish existed keep their fingerprint.
    if (t.goldfish_k >= 2) {
        j["goldfish_k"] = t.goldfish_k;
        j["goldfish_h"] = t.goldfish_h;
    }
    return j;
}


// The arm's training set as JSONL text (prompt/completion, ids "<dataset>/<id>"),
// and its held-out set ([study] held_out) in the same form.
struct ArmData {
    std::string jsonl;
    int64_t n = 0;
    std::string held_out_jsonl;
    int64_t n_held_out = 0;
};

std::string prompt_completion_line(const std::string& dataset, const Sample& s) {
    const nlohmann::json rec = {{"id", dataset + "/" + s.id}, {"prompt", s.prompt}, {"completion", s.reference}};
    return rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

ArmData build_arm_data(const StudyConfig& c, const StudyArm& arm,
                       std::map<std::string, std::vector<const Sample*>>& orders,
                       const std::map<std::string, Dataset>& loaded) {
    ArmData out;
    for (const auto& src : arm.sources) {
        const auto& order = orders.at(src.dataset);
        const int64_t avail = static_cast<int64_t>(order.size());
        if (src.n > avail)
            throw InvalidInput(fmt::format("{}: key '{}.n': arm '{}' asks for {} samples of dataset '{}', which has {}",
                                           c.config_path, src.key, arm.name, src.n, src.dataset, avail),
                               fmt::format("use n <= {} (or leave n out for all of them)", avail));
        const int64_t n = src.n > 0 ? src.n : avail;
        for (int64_t i = 0; i < n; ++i) {
            out.jsonl += prompt_completion_line(src.dataset, *order[i]);
            out.n++;
        }
    }
    if (c.held_out > 0) {
        // The last held_out samples of the first dataset's order: no arm of the
        // study may train on them (arms take the first n of the same order).
        const std::string& ds = arm.sources.front().dataset;
        const auto& order = orders.at(ds);
        const int64_t avail = static_cast<int64_t>(order.size());
        int64_t most = 0;
        for (const auto& a : c.arms)
            for (const auto& src : a.sources)
                if (src.dataset == ds) most = std::max(most, src.n > 0 ? src.n : avail);
        if (most + c.held_out > avail)
            throw InvalidInput(fmt::format("{}: key 'study.held_out': {} held-out samples of dataset '{}' overlap the "
                                           "{} that arms train on ({} samples in all)",
                                           c.config_path, c.held_out, ds, most, avail),
                               fmt::format("use held_out <= {}, or smaller arms", std::max<int64_t>(avail - most, 0)));
        for (int64_t i = avail - c.held_out; i < avail; ++i) {
            out.held_out_jsonl += prompt_completion_line(ds, *order[static_cast<size_t>(i)]);
            out.n_held_out++;
        }
    }
    (void)loaded;
    return out;
}

struct ArmPaths {
    std::string dir, train_jsonl, held_out_jsonl, arm_json, done_json;
};

// The run label of an arm's held-out runs.
std::string held_out_label(const std::string& arm) { return arm + "/held-out"; }

ArmPaths arm_paths(const std::string& out_dir, const std::string& arm) {
    ArmPaths p;
    p.dir = (fs::path(out_dir) / "arms" / arm).string();
    p.train_jsonl = p.dir + "/train.jsonl";
    p.held_out_jsonl = p.dir + "/held-out.jsonl";
    p.arm_json = p.dir + "/arm.json";
    p.done_json = p.dir + "/train-done.json";
    return p;
}

// The epoch's mean training loss at each (epoch, step) checkpoint, from the
// last checkpoint's trainer_state.json (checkpoint_loss): for runs of a store
// that recorded only the last step's loss (before schema version 3).
std::map<int64_t, double> epoch_losses(const std::string& arm_dir, const std::vector<std::pair<int64_t, int64_t>>& epoch_steps) {
    std::map<int64_t, double> out;
    const auto ckpts = list_checkpoints(arm_dir);
    if (ckpts.empty()) return out;
    TrainerState st;
    try {
        st = load_trainer_state(ckpts.back());
    } catch (const Error&) {
        return out;
    }
    for (const auto& [epoch, step] : epoch_steps)
        if (const auto mean = checkpoint_loss(st.log_history, step, static_cast<double>(epoch)).mean) out[epoch] = *mean;
    return out;
}

ProbeParams arm_probe_params(const StudyConfig& c, const StudyArm& arm, const ArmPaths& ap, const std::string& store) {
    ProbeParams p = c.probe;
    p.model_path = c.model_path;  // "" for init: every checkpoint is a full model
    p.load = c.load;
    p.data_path = fs::absolute(ap.train_jsonl).lexically_normal().string();
    p.data = DatasetParams{};
    p.data.format = RecordFormat::kPromptCompletion;
    p.data.prompt_template = parse_template("plain");
    if (p.max_reference_tokens < 0) p.max_reference_tokens = arm.train.max_reference_tokens;
    p.out_path = store;
    p.run_label = arm.name;
    if (arm.guard_n > 0) {
        // The guard knows the arm's own training references, read as training read them.
        p.generate = true;
        p.guard_data = p.data_path;
        p.guard_dataset = p.data;
        p.guard_n = arm.guard_n;
    }
    return p;
}

// The held-out probe: the same settings on the held-out samples, teacher
// forcing only (the held-out loss is what it is for).
ProbeParams held_out_probe_params(const StudyConfig& c, const StudyArm& arm, const ArmPaths& ap,
                                  const std::string& store) {
    ProbeParams p = arm_probe_params(c, arm, ap, store);
    p.data_path = fs::absolute(ap.held_out_jsonl).lexically_normal().string();
    p.run_label = held_out_label(arm.name);
    p.generate = false;
    p.guard_data.clear();
    p.embeddings = false;
    return p;
}

// Whether a stored run was made with these probe settings (the run key
// would say so too, but the study reads it without the model's fingerprint).
bool same_probe_settings(const RunInfo& r, const ProbeParams& pp, const std::string& data_hash) {
    const auto& o = r.spec.options;
    return r.spec.dataset_hash == data_hash && o.value("max_reference_tokens", int64_t{-2}) == pp.max_reference_tokens &&
           o.value("temperature", -1.0) == pp.sampling.temperature &&
           o.value("top_k", int64_t{-1}) == pp.sampling.top_k && o.value("top_p", -1.0) == pp.sampling.top_p &&
           o.value("generate", !pp.generate) == pp.generate && o.value("min_k", -1.0) == pp.metrics.min_k &&
           o.value("k_extractable", int64_t{-1}) == pp.metrics.k_extractable &&
           o.value("n_tries", -1.0) == pp.metrics.n_tries &&
           o.value("guard_n", int64_t{0}) == (pp.guard_data.empty() ? 0 : pp.guard_n);
}

// Probes every checkpoint of an arm whose run (this label, these settings) is
// not done in the store yet; returns (probed, skipped).
std::pair<int64_t, int64_t> probe_checkpoints(const std::vector<std::string>& ckpts, const ProbeParams& pp,
                                              const std::string& data_hash, int64_t n_samples,
                                              const std::function<void(const std::string&)>& log) {
    // Runs of this label already in the store, by step: status and whether the settings match.
    std::map<int64_t, std::pair<RunStatus, bool>> stored;
    if (fs::exists(pp.out_path)) {
        for (const RunInfo& r : ResultReader::open(pp.out_path).runs()) {
            if (!r.spec.options.is_object() || r.spec.options.value("run_label", "") != pp.run_label) continue;
            if (!r.spec.checkpoint_step) continue;
            const bool same = same_probe_settings(r, pp, data_hash);
            auto& slot = stored[*r.spec.checkpoint_step];
            if (r.status == RunStatus::kDone && same) slot = {RunStatus::kDone, true};
            else if (!(slot.first == RunStatus::kDone && slot.second)) slot = {r.status, same};
        }
    }
    int64_t probed = 0, skipped = 0;
    for (size_t i = 0; i < ckpts.size(); ++i) {
        const std::string name = fs::path(ckpts[i]).filename().string();
        const std::optional<int64_t> step = checkpoint_step_of(name);
        const auto it = step ? stored.find(*step) : stored.end();
        if (it != stored.end() && it->second.first == RunStatus::kDone && it->second.second) {
            skipped++;
            continue;
        }
        ProbeParams one = pp;
        one.adapters = {ckpts[i]};
        one.resume = it != stored.end();
        log(fmt::format("{}: probing {} ({}/{}) on {} samples", pp.run_label, name, i + 1, ckpts.size(), n_samples));
        const ProbeSummary s = with_context(fmt::format("arm '{}'", pp.run_label), [&] { return run_probe(one); });
        log(fmt::format("{}: {} -> max n_pre {}, mean {:.2f} ({:.1f} s)", pp.run_label, name, s.max_n_pre, s.mean_n_pre,
                        s.seconds));
        probed++;
    }
    return {probed, skipped};
}

}  // namespace

StudySummary run_study(const StudyConfig& c, const StudyParams& params, const StudyLogFn& log_fn) {
    const auto t0 = std::chrono::steady_clock::now();
    auto log = [&](const std::string& s) {
        if (log_fn) log_fn(s);
    };
    std::string out_dir = !params.out_dir.empty() ? params.out_dir : c.out_dir;
    if (out_dir.empty())
        throw InvalidInput(fmt::format("{}: no output folder: key 'study.out' is missing and no --out was given", c.config_path),
                           "add out = \"DIR\" to [study] or pass --out DIR");
    out_dir = fs::absolute(out_dir).lexically_normal().string();
    std::error_code ec;
    fs::create_directories(fs::path(out_dir) / "arms", ec);
    if (ec) throw IoError(fmt::format("cannot create '{}': {}", out_dir, ec.message()));
    const std::string store = out_dir + "/study.db";

    // Datasets used by an arm: load, check sizes, fix one shuffled order each.
    std::set<std::string> used;
    for (const auto& a : c.arms)
        for (const auto& s : a.sources) used.insert(s.dataset);
    std::map<std::string, Dataset> loaded;
    std::map<std::string, std::vector<const Sample*>> orders;
    for (const auto& d : c.datasets) {
        if (!used.count(d.name)) continue;
        loaded[d.name] = with_context(fmt::format("{}: dataset '{}'", c.config_path, d.name),
                                      [&] { return load_dataset(d.path, d.params); });
        const auto& samples = loaded[d.name].samples;
        std::vector<size_t> idx(samples.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::mt19937_64 rng(c.data_seed * 1000003ull + 17);
        for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng() % i]);  // Fisher-Yates
        auto& ord = orders[d.name];
        for (size_t i : idx) ord.push_back(&samples[i]);
    }
    // Check every arm's sizes before any training starts.
    std::map<std::string, ArmData> arm_data;
    for (const auto& a : c.arms) arm_data[a.name] = build_arm_data(c, a, orders, loaded);

    StudySummary summary;
    for (const auto& arm : c.arms) {
        const ArmPaths ap = arm_paths(out_dir, arm.name);
        fs::create_directories(ap.dir, ec);
        if (ec) throw IoError(fmt::format("cannot create '{}': {}", ap.dir, ec.message()));
        const ArmData& data = arm_data.at(arm.name);
        if (read_file_or_empty(ap.train_jsonl) != data.jsonl) write_text_file_atomic(ap.train_jsonl, data.jsonl);
        if (data.n_held_out > 0 && read_file_or_empty(ap.held_out_jsonl) != data.held_out_jsonl)
            write_text_file_atomic(ap.held_out_jsonl, data.held_out_jsonl);

        nlohmann::json fp = {{"model", c.model_path.empty() ? "init:" + c.init : c.model_path},
                             {"dtype", dtype_name(c.load.dtype)},
                             {"train", train_json(arm.train)},
                             {"data_hash", hex64(data.jsonl)},
                             {"n_samples", data.n}};
        nlohmann::json sources = nlohmann::json::array();
        for (const auto& s : arm.sources) sources.push_back({{"dataset", s.dataset}, {"n", s.n}});
        fp["sources"] = sources;
        const std::string fingerprint = hex64(fp.dump());

        // Training: skip when done with the same settings; continue an interrupted one.
        StudyArmResult res;
        res.name = arm.name;
        res.sources = arm.sources;
        res.n_train_samples = data.n;
        auto check_same = [&](const std::string& marker) {
            const std::string text = read_file_or_empty(marker);
            if (text.empty()) return false;
            std::string old;
            try {
                old = nlohmann::json::parse(text).value("fingerprint", "");
            } catch (const std::exception&) {
            }
            if (old != fingerprint)
                throw InvalidInput(fmt::format("{}: arm '{}' in '{}' was trained with other settings, model or data",
                                               c.config_path, arm.name, ap.dir),
                                   "remove that folder to retrain the arm, or pass another --out");
            return true;
        };
        const bool done = check_same(ap.done_json);
        if (!done) {
            const bool partial = !list_checkpoints(ap.dir).empty();
            if (partial && !check_same(ap.arm_json))
                throw InvalidInput(fmt::format("{}: '{}' holds checkpoints of an unknown training", c.config_path, ap.dir),
                                   "remove that folder to retrain the arm, or pass another --out");
            if (!params.train) {
                log(fmt::format("arm {}: not trained (training off)", arm.name));
                summary.arms.push_back(res);
                continue;
            }
            write_text_file_atomic(ap.arm_json, nlohmann::json({{"fingerprint", fingerprint}, {"settings", fp}}).dump(2) + "\n");
            log(fmt::format("arm {}: training on {} samples ({}), {} epochs{}", arm.name, data.n, study_sources_text(arm.sources),
                            arm.train.epochs, partial ? ", continuing from the last checkpoint" : ""));
            std::shared_ptr<Model> model;
            if (!c.init.empty())
                model = Model::random_llama(parse_init(c.config_path, c.init), make_byte_vocab(), arm.train.seed, c.load);
            else
                model = Model::load(c.model_path, c.load);
            TrainParams tp = arm.train;
            tp.data_path = ap.train_jsonl;
            tp.data = DatasetParams{};
            tp.data.format = RecordFormat::kPromptCompletion;
            tp.data.prompt_template = parse_template("plain");
            tp.out_dir = ap.dir;
            tp.resume = partial;
            int64_t last_epoch_logged = 0;
            const TrainSummary ts = with_context(fmt::format("arm '{}'", arm.name), [&] {
                return train_model(*model, tp, [&](const TrainProgress& pr) {
                    const int64_t e = static_cast<int64_t>(pr.epoch + 1e-9);
                    if (e > last_epoch_logged && std::abs(pr.epoch - e) < 1e-9) {
                        last_epoch_logged = e;
                        log(fmt::format("arm {}: epoch {}/{}  step {}/{}  loss {:.4f}  {:.0f} tok/s", arm.name, e,
                                        arm.train.epochs, pr.step, pr.total_steps, pr.loss, pr.tokens_per_s));
                    }
                });
            });
            write_text_file_atomic(ap.done_json,
                                   nlohmann::json({{"fingerprint", fingerprint}, {"steps", ts.steps},
                                                   {"n_samples", ts.n_samples}, {"seconds", ts.seconds}})
                                           .dump(2) +
                                       "\n");
            res.trained_now = true;
        } else {
            log(fmt::format("arm {}: already trained", arm.name));
        }

        // Probing: every checkpoint, one run each, labelled with the arm (and
        // the held-out samples, labelled "<arm>/held-out").
        if (params.probe) {
            const auto ckpts = list_checkpoints(ap.dir);
            auto arm_log = [&](const std::string& line) { log("arm " + line); };
            const auto [probed, skipped] =
                probe_checkpoints(ckpts, arm_probe_params(c, arm, ap, store), hex64(data.jsonl), data.n, arm_log);
            res.runs_probed += probed;
            res.runs_skipped += skipped;
            if (data.n_held_out > 0) {
                const auto [hp, hs] = probe_checkpoints(ckpts, held_out_probe_params(c, arm, ap, store),
                                                        hex64(data.held_out_jsonl), data.n_held_out, arm_log);
                res.runs_probed += hp;
                res.runs_skipped += hs;
            }
            if (res.runs_skipped) log(fmt::format("arm {}: {} checkpoint runs already in the store", arm.name, res.runs_skipped));
        }
        summary.arms.push_back(res);
    }

    StudySummary rep = write_study_report(c, out_dir);
    for (size_t i = 0; i < rep.arms.size() && i < summary.arms.size(); ++i) {
        rep.arms[i].trained_now = summary.arms[i].trained_now;
        rep.arms[i].runs_probed = summary.arms[i].runs_probed;
        rep.arms[i].runs_skipped = summary.arms[i].runs_skipped;
    }
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log(fmt::format("wrote {}", rep.report_path));
    return rep;
}

namespace {
nlohmann::json jnum(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::string mitigation_text(const StudyArm& arm) {
    std::string s;
    if (arm.train.goldfish_k >= 2)
        s = fmt::format("Goldfish loss k = {}, h = {}", arm.train.goldfish_k, arm.train.goldfish_h);
    if (arm.guard_n > 0) s += fmt::format("{}decoding guard n = {}", s.empty() ? "" : "; ", arm.guard_n);
    return s;
}
}  // namespace

StudySummary write_study_report(const StudyConfig& c, const std::string& out_dir_in) {
    const std::string out_dir = fs::absolute(out_dir_in).lexically_normal().string();
    StudySummary sum;
    sum.out_dir = out_dir;
    sum.store_path = out_dir + "/study.db";
    sum.report_path = out_dir + "/report.html";
    sum.json_path = out_dir + "/study.json";
    sum.name = c.name;
    sum.model = c.model_path.empty() ? "from scratch, " + c.init : c.model_path;

    // Every (arm, epoch) run's columns; M11's figures come from analysis/.
    std::map<std::string, std::map<int64_t, std::pair<RunInfo, RunColumns>>> runs;
    std::map<std::string, std::map<int64_t, StudyPoint>> points;
    std::map<std::string, std::map<int64_t, double>> held_out_loss;  // by arm label, epoch
    if (fs::exists(sum.store_path)) {
        const ResultReader reader = ResultReader::open(sum.store_path);
        for (const RunInfo& r : reader.runs()) {
            if (!r.spec.options.is_object()) continue;
            const std::string label = r.spec.options.value("run_label", "");
            if (label.empty() || !r.spec.checkpoint_step) continue;
            RunColumns cols = reader.load_columns(r.run_id);
            const int64_t epoch = r.spec.checkpoint_epoch.value_or(0);
            constexpr std::string_view kHeldOut = "/held-out";
            if (label.size() > kHeldOut.size() && label.compare(label.size() - kHeldOut.size(), kHeldOut.size(), kHeldOut) == 0) {
                held_out_loss[label.substr(0, label.size() - kHeldOut.size())][epoch] = metric_mean(cols, "loss");
                continue;
            }
            const CheckpointSummary cs = summarize_checkpoint(r, cols);
            StudyPoint pt;
            pt.run_id = r.run_id;
            pt.step = *r.spec.checkpoint_step;
            pt.epoch = r.spec.checkpoint_epoch.value_or(0);
            pt.train_loss = r.spec.train_loss.value_or(NAN);
            pt.train_loss_last_step = r.spec.train_loss_last_step.value_or(NAN);
            pt.n_samples = cs.n_samples;
            pt.mean_n_pre = cs.mean;
            pt.p99_n_pre = cs.p99;
            pt.max_n_pre = cs.max;
            pt.n_exact = cs.n_exact;
            if (std::isfinite(metric_mean(cols, "n_pre_generated"))) pt.greedy = summarize_outputs(r, cols, false);
            if (std::isfinite(metric_mean(cols, "guard_n_pre"))) {
                pt.guarded = summarize_outputs(r, cols, true);
                pt.guard_blocked = metric_mean(cols, "guard_blocked");
            }
            // A later run of the same (arm, epoch) replaces an earlier one.
            points[label][pt.epoch] = pt;
            runs[label][pt.epoch] = {r, std::move(cols)};
        }
    }

    for (const auto& arm : c.arms) {
        StudyArmResult res;
        res.name = arm.name;
        res.sources = arm.sources;
        res.seed = arm.train.seed;
        res.mitigation = mitigation_text(arm);
        const ArmPaths ap = arm_paths(out_dir, arm.name);
        const std::string done = read_file_or_empty(ap.done_json);
        if (!done.empty()) {
            try {
                res.n_train_samples = nlohmann::json::parse(done).value("n_samples", int64_t{0});
            } catch (const std::exception&) {
            }
        }
        std::vector<std::pair<int64_t, int64_t>> epoch_steps;  // runs without a stored epoch mean
        for (const auto& [e, pt] : points[arm.name])
            if (!std::isfinite(pt.train_loss)) epoch_steps.emplace_back(e, pt.step);
        const auto losses = epoch_steps.empty() ? std::map<int64_t, double>{} : epoch_losses(ap.dir, epoch_steps);
        for (auto [e, pt] : points[arm.name]) {
            if (const auto it = losses.find(e); it != losses.end()) pt.train_loss = it->second;
            if (const auto it = held_out_loss[arm.name].find(e); it != held_out_loss[arm.name].end())
                pt.held_out_loss = it->second;
            res.points.push_back(pt);
        }
        sum.arms.push_back(std::move(res));
    }

    // A guarded arm: its guarded outputs against its own unguarded greedy
    // outputs, paired per sample at every epoch (the guard's effect on n_pre).
    auto add_comparison = [&](const std::string& a, const std::string& b, int64_t epoch, const PairedComparison& pc) {
        StudyComparisonResult r;
        r.a = a;
        r.b = b;
        r.epoch = epoch;
        r.n_shared = pc.n_shared;
        r.mean_a = pc.mean_a;
        r.mean_b = pc.mean_b;
        r.mean_difference = pc.mean_difference;
        r.wilcoxon = pc.wilcoxon;
        r.skipped = pc.skipped;
        sum.comparisons.push_back(std::move(r));
    };
    for (const auto& arm : c.arms) {
        if (arm.guard_n <= 0) continue;
        for (const auto& [epoch, run] : runs[arm.name])
            add_comparison(arm.name + " (greedy)", arm.name + " + guard", epoch,
                           compare_checkpoints(run.first, with_n_pre_from(run.second, "n_pre_generated"), run.first,
                                               with_n_pre_from(run.second, "guard_n_pre")));
    }

    for (const auto& cmp : c.comparisons) {
        for (const auto& [epoch, a_run] : runs[cmp.a]) {
            const auto bit = runs[cmp.b].find(epoch);
            if (bit == runs[cmp.b].end()) continue;
            add_comparison(cmp.a, cmp.b, epoch,
                           compare_checkpoints(a_run.first, a_run.second, bit->second.first, bit->second.second));
        }
    }

    // study.json
    nlohmann::json j;
    j["study"] = c.name;
    j["config"] = c.config_path;
    j["model"] = c.model_path.empty() ? "init:" + c.init : c.model_path;
    j["store"] = sum.store_path;
    j["arms"] = nlohmann::json::array();
    for (const auto& a : sum.arms) {
        nlohmann::json ja = {{"name", a.name}, {"n_train_samples", a.n_train_samples}};
        if (!a.mitigation.empty()) ja["mitigation"] = a.mitigation;
        ja["sources"] = nlohmann::json::array();
        for (const auto& s : a.sources) ja["sources"].push_back({{"dataset", s.dataset}, {"n", s.n}});
        ja["checkpoints"] = nlohmann::json::array();
        for (const auto& p : a.points) {
            nlohmann::json jp = {{"run_id", p.run_id}, {"epoch", p.epoch}, {"step", p.step},
                                 {"train_loss", jnum(p.train_loss)},
                                 {"train_loss_last_step", jnum(p.train_loss_last_step)},
                                 {"held_out_loss", jnum(p.held_out_loss)},
                                 {"n_samples", p.n_samples}, {"mean_n_pre", jnum(p.mean_n_pre)},
                                 {"p99_n_pre", jnum(p.p99_n_pre)}, {"max_n_pre", jnum(p.max_n_pre)},
                                 {"n_exact", p.n_exact},
                                 {"approx_share", jnum(p.greedy ? p.greedy->approx_share : NAN)}};
            if (p.guarded)
                jp["guard"] = {{"mean_n_pre", jnum(p.guarded->mean_n_pre)},
                               {"p99_n_pre", jnum(p.guarded->p99_n_pre)},
                               {"max_n_pre", jnum(p.guarded->max_n_pre)},
                               {"n_exact", p.guarded->n_exact},
                               {"approx_share", jnum(p.guarded->approx_share)},
                               {"blocked_steps", jnum(p.guard_blocked)},
                               {"logprob_cost", jnum(p.greedy ? p.greedy->mean_logprob - p.guarded->mean_logprob : NAN)},
                               {"greedy_mean_n_pre", jnum(p.greedy ? p.greedy->mean_n_pre : NAN)},
                               {"greedy_max_n_pre", jnum(p.greedy ? p.greedy->max_n_pre : NAN)},
                               {"greedy_n_exact", p.greedy ? p.greedy->n_exact : 0}};
            ja["checkpoints"].push_back(jp);
        }
        j["arms"].push_back(ja);
    }
    j["comparisons"] = nlohmann::json::array();
    for (const auto& r : sum.comparisons) {
        nlohmann::json jc = {{"a", r.a}, {"b", r.b}, {"epoch", r.epoch}, {"n_shared", r.n_shared},
                             {"mean_a", jnum(r.mean_a)}, {"mean_b", jnum(r.mean_b)},
                             {"mean_difference", jnum(r.mean_difference)}};
        if (r.wilcoxon)
            jc["wilcoxon"] = {{"statistic", r.wilcoxon->statistic}, {"p_value", jnum(r.wilcoxon->p_value)},
                              {"z", jnum(r.wilcoxon->z)}, {"effect_size_r", jnum(r.wilcoxon->effect_size_r)},
                              {"rank_biserial", jnum(r.wilcoxon->rank_biserial)}, {"n", r.wilcoxon->n},
                              {"n_zero", r.wilcoxon->n_zero}, {"exact", r.wilcoxon->exact}};
        if (!r.skipped.empty()) jc["skipped"] = r.skipped;
        j["comparisons"].push_back(jc);
    }
    write_text_file_atomic(sum.json_path, j.dump(2) + "\n");

    write_text_file_atomic(sum.report_path, render_study_report(sum));
    return sum;
}

}  // namespace memskew
