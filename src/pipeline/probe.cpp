// The probe pipeline: dataset -> tokens -> teacher-forced scores (and greedy
// outputs) -> per-sample metrics -> results store.
//
// Resumability: batches are planned over the whole selected dataset in a
// deterministic order and each engine batch is committed in one transaction,
// so an interrupted run leaves whole batches stored; a resumed run recomputes
// the missing batches exactly as an uninterrupted run would have.
#include "memskew/probe.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "memskew/adapter.h"
#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/ngram-guard.h"
#include "memskew/pipeline.h"
#include "memskew/process-group.h"
#include "memskew/store-similarity.h"
#include "memskew/trainer-state.h"
#include "memskew/store.h"
#include "memskew/train.h"
#include "memskew/tokenizer.h"

namespace memskew {

namespace fs = std::filesystem;

EncodeParams probe_encode_params(const ProbeParams& p, int64_t max_context) {
    // No EOS: n_pre measures the reference itself.
    return encode_params_for(p.data, p.max_reference_tokens, p.truncate, p.text_split, max_context, false);
}

namespace {

// A model file's size+mtime, or for a folder those of every file in it.
std::string path_fingerprint(const std::string& path) {
    if (!fs::is_directory(path)) return file_fingerprint(path);
    std::vector<std::string> parts;
    for (const auto& e : fs::directory_iterator(path)) {
        if (e.is_regular_file()) parts.push_back(e.path().filename().string() + ":" + file_fingerprint(e.path().string()));
    }
    std::sort(parts.begin(), parts.end());
    std::string joined;
    for (const auto& p : parts) joined += p + ";";
    return fmt::format("dir:{:016x}", XXH3_64bits(joined.data(), joined.size()));
}

nlohmann::json options_json(const ProbeParams& p, const Dataset& ds, const Model& model) {
    nlohmann::json o;
    o["template"] = std::string(template_name(p.data.prompt_template.kind));
    if (p.data.prompt_template.kind == TemplateKind::kCustom) o["template_text"] = p.data.prompt_template.custom;
    o["reference_end_marker"] = p.data.prompt_template.reference_end_marker;
    o["format"] = std::string(record_format_name(ds.report.format));
    o["dtype"] = dtype_name(model.dtype());
    o["temperature"] = p.sampling.temperature;
    o["top_k"] = p.sampling.top_k;
    o["top_p"] = p.sampling.top_p;
    o["min_k"] = p.metrics.min_k;
    o["k_extractable"] = p.metrics.k_extractable;
    o["n_tries"] = p.metrics.n_tries;
    o["target_probability"] = p.metrics.target_probability;
    o["generate"] = p.generate;
    o["max_reference_tokens"] = p.max_reference_tokens;
    o["truncate"] = std::string(truncate_policy_name(p.truncate));
    if (p.text_split) {
        o["prefix_tokens"] = p.text_split->n_prompt;
        o["suffix_tokens"] = p.text_split->n_reference;
    }
    o["subset"] = p.data.subset;
    o["seed"] = p.data.seed;
    if (!p.run_label.empty()) o["run_label"] = p.run_label;
    if (p.data.n_shards > 1) o["shard"] = fmt::format("{}/{}", p.data.shard_index, p.data.n_shards);
    // Which embeddings the similarity figures use (part of the run key: other
    // embeddings give other figures); whether they are kept is not.
    if (!p.embeddings)
        o["embeddings"] = "off";
    else if (p.embed_model.empty())
        o["embeddings"] = "self";
    else
        o["embeddings"] = fmt::format("{} ({})", fs::path(p.embed_model).filename().string(),
                                      path_fingerprint(p.embed_model));
    o[kKeepEmbeddingsOptionKey] = p.keep_embeddings;
    if (!p.guard_data.empty()) {
        o["guard_n"] = p.guard_n;
        o["guard_data_hash"] = file_content_hash(p.guard_data);
    }
    return o;
}

// The decoding guard of ProbeParams::guard_data: its references as
// `memskew train` encodes them (template, truncation, EOS), with `tok`.
NgramGuard probe_guard(const ProbeParams& p, const Model& model) {
    TrainParams t;
    t.data_path = p.guard_data;
    t.data = p.guard_dataset;
    t.text_split = p.text_split;
    TrainingGuardParams gp;
    gp.n = static_cast<int>(p.guard_n);
    return with_context(fmt::format("guard data {}", p.guard_data),
                        [&] { return build_training_guard(t, model.tokenizer(), model.config().max_ctx, gp); });
}

// A generated output as the metrics see it: EOS dropped (the reference has
// none), with its log-probabilities.
GeneratedOutput generated_output(const GenerateResult& r, const Tokenizer& tok) {
    GeneratedOutput g;
    g.tokens = r.tokens;
    g.logprobs = r.logprobs;
    if (r.reason == StopReason::kEos && !g.tokens.empty()) {
        g.tokens.pop_back();
        if (!g.logprobs.empty()) g.logprobs.pop_back();
    }
    g.text = tok.decode(g.tokens);
    g.n_blocked = r.n_blocked;
    return g;
}

// Embeddings from another model (ProbeParams::embed_model), by sample id.
struct EmbeddingPair {
    std::vector<float> prompt, full;
};
using ExternalEmbeddings = std::unordered_map<std::string, EmbeddingPair>;

// The per-sample inputs of the similarity figures: embeddings, the MinHash
// signature of the full sample's ids and the hashes of prompt and reference ids.
SampleVectors sample_vectors(const ProbeParams& p, const EncodedSample& it, std::vector<float> prompt_embedding,
                             std::vector<float> full_embedding) {
    SampleVectors v;
    v.prompt_embedding = std::move(prompt_embedding);
    v.full_embedding = std::move(full_embedding);
    std::vector<int32_t> all = it.prompt;
    all.insert(all.end(), it.reference.begin(), it.reference.end());
    v.minhash = minhash_signature(all, p.similarity.near_duplicates);
    v.prompt_hash = XXH3_64bits(it.prompt.data(), it.prompt.size() * sizeof(int32_t));
    v.reference_hash = XXH3_64bits(it.reference.data(), it.reference.size() * sizeof(int32_t));
    return v;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

EncodedDataset encode_probe_set(const ProbeParams& p, const Tokenizer& tok, int64_t max_context) {
    return encode_sft_dataset(load_dataset(p.data_path, p.data), tok, probe_encode_params(p, max_context), p.data_path);
}

// --- adapters and checkpoints ---------------------------------------------------

namespace {

bool has_file(const fs::path& dir, const char* name) {
    std::error_code ec;
    return fs::is_regular_file(dir / name, ec);
}

bool is_full_model_folder(const fs::path& dir) {
    return has_file(dir, "config.json") &&
           (has_file(dir, "model.safetensors") || has_file(dir, "model.safetensors.index.json"));
}

// Step, epoch and training loss (the epoch's mean so far and the last step's,
// see checkpoint_loss) of a checkpoint folder.
void read_checkpoint_info(const fs::path& dir, ProbeTarget& t) {
    if (has_file(dir, "trainer_state.json")) {
        const TrainerState st = load_trainer_state(dir.string());
        t.checkpoint_step = st.global_step;
        t.checkpoint_epoch = st.epoch;
        const CheckpointLoss loss = checkpoint_loss(st);
        t.train_loss = loss.mean;
        t.train_loss_last_step = loss.last_step;
    } else if (const auto step = checkpoint_step_of(dir.filename().string())) {
        t.checkpoint_step = *step;
    }
    // memskew's own training record: the Goldfish settings, when it used them.
    if (has_file(dir, "memskew-train.json")) {
        try {
            const auto j = nlohmann::json::parse(read_text_file((dir / "memskew-train.json").string()));
            // The trainer's own figures (the same definition; older
            // checkpoints lack them and keep the ones from the log above).
            if (j.contains("train_loss") && j["train_loss"].is_number()) t.train_loss = j["train_loss"].get<double>();
            if (j.contains("train_loss_last_step") && j["train_loss_last_step"].is_number())
                t.train_loss_last_step = j["train_loss_last_step"].get<double>();
            if (j.contains("goldfish") && j["goldfish"].is_object())
                t.training = {{"goldfish_k", j["goldfish"].value("k", int64_t{0})},
                              {"goldfish_h", j["goldfish"].value("h", int64_t{0})}};
        } catch (const nlohmann::json::exception& e) {
            throw FormatError(fmt::format("{}/memskew-train.json is not valid JSON: {}", dir.string(), e.what()),
                              "was the checkpoint written completely?");
        }
    }
}

// A checkpoint (or adapter) folder as one target; nullopt when it is neither
// an adapter nor a full model.
std::optional<ProbeTarget> folder_target(const std::string& base, const fs::path& dir) {
    ProbeTarget t;
    t.label = dir.filename().string();
    if (t.label.empty()) t.label = dir.parent_path().filename().string();
    if (has_file(dir, "adapter_config.json")) {
        t.model_path = base;
        t.adapter_path = dir.string();
    } else if (is_full_model_folder(dir)) {
        t.model_path = dir.string();
    } else {
        return std::nullopt;
    }
    read_checkpoint_info(dir, t);
    return t;
}

}  // namespace

std::vector<ProbeTarget> expand_probe_targets(const std::string& model_path, const std::vector<std::string>& adapters) {
    std::vector<ProbeTarget> out;
    if (adapters.empty()) {
        ProbeTarget t;
        t.model_path = model_path;
        out.push_back(t);
        return out;
    }
    for (const std::string& a : adapters) {
        std::error_code ec;
        fs::path dir(a);
        if (fs::is_regular_file(dir, ec) && dir.filename() == "adapter_config.json") dir = dir.parent_path();
        if (!fs::exists(dir, ec)) {
            throw IoError(fmt::format("cannot open adapter '{}': no such file or folder", a),
                          "pass a PEFT adapter folder, a checkpoint-<step> folder or a Trainer output folder");
        }
        if (!fs::is_directory(dir, ec)) {
            throw InvalidInput(fmt::format("adapter '{}' is not a folder", a),
                               "pass the folder holding adapter_config.json and adapter_model.safetensors");
        }
        // A Trainer output folder: its checkpoint-<step> folders, by step.
        const std::vector<std::string> checkpoints = list_checkpoints(dir.string());
        if (!checkpoints.empty()) {
            for (const fs::path path : checkpoints) {
                auto t = folder_target(model_path, path);
                if (!t) {
                    throw InvalidInput(
                        fmt::format("checkpoint folder '{}' holds neither an adapter (adapter_config.json) nor a "
                                    "model (config.json + model.safetensors)",
                                    path.string()),
                        "was the checkpoint written completely?");
                }
                out.push_back(std::move(*t));
            }
            continue;
        }
        auto t = folder_target(model_path, dir);
        if (!t) {
            throw InvalidInput(fmt::format("'{}' holds no adapter_config.json, no model (config.json + "
                                           "model.safetensors) and no checkpoint-<step> folders",
                                           a),
                               "pass a PEFT adapter folder, a checkpoint-<step> folder or a Trainer output folder");
        }
        out.push_back(std::move(*t));
    }
    return out;
}

// --- the probe ---------------------------------------------------------------------

namespace {

// The dataset's samples as ids for one model (the one sample encoder), with
// their fed lengths for batch planning.
struct Prepared {
    EncodedDataset encoded;
    std::vector<int64_t> lengths;
};

Prepared prepare_items(const ProbeParams& p, const Dataset& ds, const Model& model) {
    Prepared out;
    out.encoded = encode_sft_dataset(ds, model.tokenizer(), probe_encode_params(p, model.config().max_ctx), p.data_path);
    for (const auto& it : out.encoded.items) out.lengths.push_back(it.n_positions());
    return out;
}

// Unloads the adapter when the run ends, also by an exception.
struct AdapterGuard {
    Model* model = nullptr;
    ~AdapterGuard() {
        if (model) unload_adapter(*model);
    }
};

// --- spreading batches over ranks ---------------------------------------------

// What the engine computes for a batch: its longest sample times its size.
int64_t padded_tokens(const std::vector<int64_t>& lengths, const std::vector<size_t>& batch) {
    int64_t longest = 0;
    for (size_t k : batch) longest = std::max(longest, lengths[k]);
    return longest * static_cast<int64_t>(batch.size());
}

// Which planned batches each rank runs, in its order: with one rank every
// batch with work, in plan order; with several, the batches spread by their
// padded tokens (partition_by_tokens: deterministic, so every rank computes
// the same share without talking), each rank's costliest first, so the ranks'
// r-th batches, which run in one round, are of similar size.
struct BatchShare {
    std::vector<std::vector<size_t>> per_rank;
    size_t rounds = 0;
};

BatchShare share_batches(const std::vector<int64_t>& costs, int world) {
    BatchShare s;
    s.per_rank.resize(static_cast<size_t>(world));
    std::vector<size_t> work;
    std::vector<int64_t> work_cost;
    for (size_t b = 0; b < costs.size(); ++b)
        if (costs[b] > 0) {
            work.push_back(b);
            work_cost.push_back(costs[b]);
        }
    const std::vector<int> owner = partition_by_tokens(work_cost, world);
    for (size_t i = 0; i < work.size(); ++i) s.per_rank[static_cast<size_t>(owner[i])].push_back(work[i]);
    if (world > 1)
        for (auto& mine : s.per_rank)
            std::stable_sort(mine.begin(), mine.end(), [&](size_t a, size_t b) { return costs[a] > costs[b]; });
    for (const auto& mine : s.per_rank) s.rounds = std::max(s.rounds, mine.size());
    return s;
}

using ComputeFn = std::function<std::vector<SampleRecord>(size_t batch)>;
using ConsumeFn = std::function<void(std::vector<SampleRecord>)>;

// Runs this rank's share in lockstep rounds. Each round every rank computes
// its next batch and rank 0 consumes the rounds' records, rank by rank (rank
// 0 alone writes; a rank holds one batch's per-token arrays at a time), then
// calls after_round. A rank whose batch failed stops every rank with its
// error; a rank that died stops them with the IoError of the collective. With
// one rank (group null or of one) records go straight to consume.
void run_rounds(ProcessGroup& group, const BatchShare& share, const ComputeFn& compute, const ConsumeFn& consume,
                const std::function<void()>& after_round) {
    if (group.world_size() == 1) {
        for (size_t b : share.per_rank[0]) {
            consume(compute(b));
            after_round();
        }
        return;
    }
    const auto& mine = share.per_rank[static_cast<size_t>(group.rank())];
    for (size_t r = 0; r < share.rounds; ++r) {
        // 'R' + the records, or 'E' + the failure.
        std::string payload;
        try {
            payload = "R" + encode_sample_records(r < mine.size() ? compute(mine[r]) : std::vector<SampleRecord>{});
        } catch (const std::exception& e) {
            payload = "E" + failure_bytes(e);
        }
        const auto arrived = group.gather_to_root(payload);
        group.from_root([&] {
            for (size_t q = 0; q < arrived.size(); ++q) {
                const std::string& a = arrived[q];
                if (a.empty() || a[0] != 'R') throw_failure(a.empty() ? std::string() : a.substr(1), fmt::format("rank {}: ", q));
                consume(decode_sample_records(a.substr(1)));
            }
            after_round();
            return std::string();
        });
    }
}

// Embeddings of every sample from ProbeParams::embed_model: the samples as
// that model's tokenizer encodes them, one scoring pass in planned batches
// (spread over the ranks; the vectors gathered on rank 0, which alone writes
// them: the other ranks return an empty map).
ExternalEmbeddings embed_with(const ProbeParams& p, const Dataset& ds, const Model& embedder, ProcessGroup& group) {
    const Prepared prep = prepare_items(p, ds, embedder);
    Engine engine(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &embedder));
    ScoreParams sp;
    sp.embeddings = true;
    const auto batches = plan_batches(prep.lengths, p.token_budget, p.max_batch_size);
    std::vector<int64_t> costs;
    for (const auto& batch : batches) costs.push_back(padded_tokens(prep.lengths, batch));
    ExternalEmbeddings out;
    out.reserve(prep.encoded.items.size());
    auto compute = [&](size_t b) {
        std::vector<ScoreRequest> req;
        for (size_t k : batches[b]) req.push_back({prep.encoded.items[k].prompt, prep.encoded.items[k].reference});
        auto scores = engine.score(req, sp);
        std::vector<SampleRecord> recs;
        for (size_t bi = 0; bi < batches[b].size(); ++bi) {
            SampleRecord r;  // only the id and the embeddings travel
            r.sample_id = ds.samples[prep.encoded.items[batches[b][bi]].sample].id;
            r.vectors = SampleVectors{};
            r.vectors->prompt_embedding = std::move(scores[bi].prompt_embedding);
            r.vectors->full_embedding = std::move(scores[bi].full_embedding);
            recs.push_back(std::move(r));
        }
        return recs;
    };
    auto consume = [&](std::vector<SampleRecord> recs) {
        for (auto& r : recs)
            out[r.sample_id] = {std::move(r.vectors->prompt_embedding), std::move(r.vectors->full_embedding)};
    };
    run_rounds(group, share_batches(costs, group.world_size()), compute, consume, [] {});
    return out;
}

// Every rank must probe the same run (model, adapter, dataset, options) and
// as many of them: each sends what identifies its run, rank 0 compares them
// with its own and, when one differs, every rank stops with the fields that
// differ. Nothing is written before this check.
void check_same_run(ProcessGroup& group, const RunSpec& spec, int64_t n_runs) {
    if (group.world_size() == 1) return;
    const nlohmann::json mine = {{"run_key", run_key(spec)},
                                 {"model", spec.model_fingerprint},
                                 {"adapter", spec.adapter_fingerprint},
                                 {"step", spec.checkpoint_step ? *spec.checkpoint_step : -1},
                                 {"dataset", spec.dataset_hash},
                                 {"options", spec.options},
                                 {"samples", spec.n_samples_planned},
                                 {"runs", n_runs}};
    const auto all = group.gather_to_root(mine.dump());
    group.from_root([&] {
        for (size_t r = 1; r < all.size(); ++r) {
            const auto other = nlohmann::json::parse(all[r]);
            if (other == mine) continue;
            std::vector<std::string> fields;
            for (const char* f : {"model", "adapter", "step", "dataset", "samples", "runs"})
                if (other[f] != mine[f]) fields.push_back(fmt::format("{} ({} vs {})", f, mine[f].dump(), other[f].dump()));
            for (const auto& [k, v] : mine["options"].items())
                if (!other["options"].contains(k) || other["options"][k] != v)
                    fields.push_back(fmt::format("option {} ({} vs {})", k, v.dump(),
                                                 other["options"].value(k, nlohmann::json()).dump()));
            for (const auto& [k, v] : other["options"].items())
                if (!mine["options"].contains(k)) fields.push_back(fmt::format("option {} (absent vs {})", k, v.dump()));
            std::string list;
            for (const auto& f : fields) list += (list.empty() ? "" : ", ") + f;
            throw InvalidInput(fmt::format("rank {} was started on another run than rank 0: {}", r,
                                           list.empty() ? "its run key differs" : list),
                               "every rank needs the same model, adapters, dataset and options, and must see the same "
                               "files (a shared file system, or identical copies)");
        }
        return std::string();
    });
}

// What a probe of one run needs while it runs.
struct RunContext {
    const ProbeParams& p;
    const Dataset& ds;
    const Prepared& prep;
    const Tokenizer& tok;
    Engine& engine;
    ScoreParams sp;
    const NgramGuard* guard = nullptr;
    bool external = false;  // embeddings come from ProbeParams::embed_model
};

// The records of a planned batch's samples that are not stored yet. The whole
// batch is recomputed even when part of it was stored (it cannot be after a
// crash, since batches commit whole): the same batch gives bit-identical results.
// The metrics' per-token inputs from one sample's scores: the one place they are assembled.
SampleInputs sample_inputs(const TokenScores& sc, const std::vector<int32_t>& reference, const std::string& reference_text) {
    const size_t L = reference.size();
    SampleInputs in;
    in.tokens.match.resize(L);
    for (size_t j = 0; j < L; ++j) in.tokens.match[j] = sc.argmax[j] == reference[j];
    in.tokens.log_prob = to_double(sc.logprob);
    in.tokens.entropy = to_double(sc.entropy);
    in.tokens.mean_log_prob = to_double(sc.mean_logp);
    in.tokens.var_log_prob = to_double(sc.var_logp);
    in.tokens.sampling_log_prob = to_double(sc.logprob_sampling);
    in.reference_tokens = reference;
    in.reference_text = reference_text;
    return in;
}

// A sample's stored metrics (the columns of the store and of export).
MetricsRow metrics_row(const SampleInputs& in, const SampleMetricsParams& params) {
    const SampleMetrics m = compute_sample_metrics(in, params);
    const auto surv = log_survival(in.tokens.sampling_log_prob);
    return to_metrics_row(m, &surv);
}

std::vector<SampleRecord> probe_batch(const RunContext& c, const std::vector<size_t>& batch,
                                      const std::unordered_set<std::string>& done) {
    const ProbeParams& p = c.p;
    const auto& items = c.prep.encoded.items;
    std::vector<ScoreRequest> sreq;
    std::vector<GenerateRequest> greq;
    for (size_t k : batch) {
        sreq.push_back({items[k].prompt, items[k].reference});
        greq.push_back({items[k].prompt, items[k].reference, static_cast<int32_t>(items[k].reference.size())});
    }
    const auto scores = c.engine.score(sreq, c.sp);
    std::vector<GenerateResult> gens, guarded;
    if (p.generate) gens = c.engine.generate(greq, GenerateParams{true, false});
    if (c.guard) {
        GenerateParams gp{true, false};
        gp.guard = c.guard;
        guarded = c.engine.generate(greq, gp);
    }
    std::vector<SampleRecord> out;
    for (size_t bi = 0; bi < batch.size(); ++bi) {
        const EncodedSample& it = items[batch[bi]];
        const Sample& s = c.ds.samples[it.sample];
        if (done.count(s.id)) continue;
        const TokenScores& sc = scores[bi];
        const size_t L = it.reference.size();
        const std::string reference_text = it.truncated || p.text_split ? c.tok.decode(it.reference) : s.reference;
        SampleInputs in = sample_inputs(sc, it.reference, reference_text);
        std::optional<std::string> generated_text;
        if (p.generate) {
            in.generated = generated_output(gens[bi], c.tok);
            generated_text = in.generated->text;
        }
        if (c.guard) in.guarded = generated_output(guarded[bi], c.tok);
        SampleRecord rec;
        rec.sample_id = s.id;
        rec.sample_index = static_cast<int64_t>(s.index);
        rec.prompt_tokens = static_cast<int64_t>(it.prompt.size());
        rec.reference_tokens = static_cast<int64_t>(L);
        rec.truncated = it.truncated;
        if (p.store_text) {
            rec.prompt_text = p.text_split ? c.tok.decode(it.prompt) : s.prompt;
            rec.reference_text = reference_text;
            rec.generated_text = generated_text;
        }
        rec.metrics = metrics_row(in, p.metrics);
        StoredTokens st;
        st.match = in.tokens.match;
        st.argmax = sc.argmax;
        st.logprob = sc.logprob;
        st.rank = sc.rank;
        st.entropy = sc.entropy;
        st.logprob_sampling = sc.logprob_sampling;
        st.reference = it.reference;
        if (p.generate) st.generated = in.generated->tokens;
        rec.tokens = std::move(st);
        // With embeddings from another model rank 0 fills them in as it writes.
        std::vector<float> prompt_embedding, full_embedding;
        if (p.embeddings && !c.external) {
            prompt_embedding = sc.prompt_embedding;
            full_embedding = sc.full_embedding;
        }
        rec.vectors = sample_vectors(p, it, std::move(prompt_embedding), std::move(full_embedding));
        out.push_back(std::move(rec));
    }
    return out;
}

// Adds a stored sample to the run's summary (rank 0, from the records every
// rank sends, so the figures are those of one process).
void count_in_summary(ProbeSummary& summary, const SampleRecord& rec, const ProbeParams& p) {
    const MetricsRow& m = rec.metrics;
    const int64_t n_pre = m.n_pre.value_or(0);
    summary.n_probed++;
    if (n_pre > summary.max_n_pre) {
        summary.max_n_pre = n_pre;
        summary.max_n_pre_id = rec.sample_id;
    }
    summary.n_exact += n_pre == rec.reference_tokens;
    if (m.guard_n_pre) {
        summary.guard_max_n_pre = std::max(summary.guard_max_n_pre, *m.guard_n_pre);
        summary.guard_n_exact += m.guard_exact.value_or(false);
        summary.guard_blocked_steps += m.guard_blocked.value_or(0);
        summary.guard_n_approx += m.guard_approx.value_or(false);
    }
    if (p.generate) {
        summary.n_generated++;
        summary.n_approx += m.gen_approx.value_or(false);
        const int64_t gen_n_pre = m.n_pre_generated.value_or(0);
        if (gen_n_pre != n_pre) summary.disagreements.push_back({rec.sample_id, n_pre, gen_n_pre});
    }
}

ProbeSummary probe_one(const ProbeParams& p, const Dataset& ds, const Prepared& prep, Model& model,
                       const ProbeTarget& target, int64_t run_index, int64_t n_runs, const ProgressFn& progress,
                       const ExternalEmbeddings* external, const NgramGuard* guard, ProcessGroup& group) {
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    const auto& items = prep.encoded.items;
    const auto& lengths = prep.lengths;
    const bool root = group.rank() == 0;
    const int world = group.world_size();

    ProbeSummary summary;
    summary.out_path = p.out_path;
    summary.target = target;
    summary.data_report = ds.report;
    summary.n_truncated = prep.encoded.counts.n_truncated;
    summary.n_skipped_long = prep.encoded.counts.n_skipped_long;
    summary.n_skipped_short = prep.encoded.counts.n_skipped_short;
    summary.n_skipped_empty = prep.encoded.counts.n_skipped_empty;
    summary.guarded = guard != nullptr;

    RunSpec spec;
    spec.model_path = target.model_path;
    spec.model_fingerprint = path_fingerprint(target.model_path);
    if (!target.adapter_path.empty()) {
        spec.adapter_path = target.adapter_path;
        spec.adapter_fingerprint = adapter_fingerprint(target.adapter_path);
    }
    spec.checkpoint_step = target.checkpoint_step;
    if (target.checkpoint_epoch) spec.checkpoint_epoch = std::llround(*target.checkpoint_epoch);
    spec.train_loss = target.train_loss;
    spec.train_loss_last_step = target.train_loss_last_step;
    spec.dataset_path = p.data_path;
    spec.dataset_hash = file_content_hash(p.data_path);
    spec.options = options_json(p, ds, model);
    if (!target.training.is_null()) spec.options["training"] = target.training;
    spec.n_samples_planned = static_cast<int64_t>(items.size());
    check_same_run(group, spec, n_runs);

    // Rank 0 opens the run (the store's one writer) and tells every rank its
    // id and the samples already stored. Under --resume the store continues
    // this target's run, refuses one of the same checkpoint made with other
    // options, and starts a run for a target it does not hold yet.
    WriterParams wp;
    wp.batch_size = std::max<int64_t>(p.max_batch_size, 1) + 1;  // commits happen per engine batch (flush)
    const ResumeMode mode = p.resume ? ResumeMode::kResume : ResumeMode::kFresh;
    std::optional<OpenedRun> opened;
    const std::string state_bytes = group.from_root([&] {
        opened.emplace(open_run(p.out_path, spec, mode, wp));
        nlohmann::json j = {{"run_id", opened->run.run_id}, {"resumed", opened->resumed}};
        // The other ranks need the stored ids; one process has them already.
        j["done"] = world > 1 ? nlohmann::json(std::vector<std::string>(opened->done_sample_ids.begin(),
                                                                         opened->done_sample_ids.end()))
                              : nlohmann::json::array();
        const auto bytes = nlohmann::json::to_cbor(j);
        return std::string(bytes.begin(), bytes.end());
    });
    const nlohmann::json run_state = nlohmann::json::from_cbor(state_bytes);
    summary.run_id = run_state["run_id"].get<int64_t>();
    summary.resumed = run_state["resumed"].get<bool>();
    std::unordered_set<std::string> done;
    if (world == 1)
        done = opened->done_sample_ids;
    else
        for (const auto& id : run_state["done"]) done.insert(id.get<std::string>());

    ProbeProgress prog;
    prog.run_index = run_index;
    prog.n_runs = n_runs;
    prog.run_label = target.label;
    for (const auto& it : items) {
        if (done.count(ds.samples[it.sample].id)) summary.n_already_done++;
        else prog.total++;
    }
    AdapterGuard adapter_guard;
    if (prog.total > 0 && !target.adapter_path.empty()) {
        load_adapter(model, target.adapter_path);
        adapter_guard.model = &model;
    }
    // The planned batches (the same on every rank and for any number of
    // ranks: a sample's scores depend on its batch) and their padded tokens;
    // 0 for a batch whose samples are all stored.
    const auto batches = plan_batches(lengths, p.token_budget, p.max_batch_size);
    std::vector<int64_t> costs;
    int64_t padded = 0, real = 0;
    for (const auto& batch : batches) {
        const bool work = std::any_of(batch.begin(), batch.end(),
                                      [&](size_t k) { return !done.count(ds.samples[items[k].sample].id); });
        costs.push_back(work ? padded_tokens(lengths, batch) : 0);
        if (!work) continue;
        padded += costs.back();
        for (size_t k : batch) real += lengths[k];
    }
    Engine engine(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &model));
    RunContext ctx{p, ds, prep, model.tokenizer(), engine, ScoreParams{}, guard, external != nullptr};
    ctx.sp.sampling = p.sampling;
    ctx.sp.embeddings = p.embeddings && !external;

    int64_t sum_n_pre = 0;
    summary.max_n_pre = -1;
    auto compute = [&](size_t b) { return probe_batch(ctx, batches[b], done); };
    // Rank 0: each batch's records are written and committed whole.
    auto consume = [&](std::vector<SampleRecord> recs) {
        for (auto& rec : recs) {
            if (external) {
                // Every selected sample was embedded (same dataset, same selection);
                // one the other tokenizer skipped (too long) has no embedding.
                const auto e = external->find(rec.sample_id);
                if (e == external->end())
                    throw InvalidInput(fmt::format("sample '{}' has no embedding from {}: that model skipped it",
                                                   rec.sample_id, p.embed_model),
                                       "use an embedding model whose context holds every sample, or "
                                       "--truncate reference");
                rec.vectors->prompt_embedding = e->second.prompt;
                rec.vectors->full_embedding = e->second.full;
            }
            count_in_summary(summary, rec, p);
            sum_n_pre += rec.metrics.n_pre.value_or(0);
            prog.done++;
            prog.tokens += rec.prompt_tokens + rec.reference_tokens;
            opened->writer.add(std::move(rec));
        }
        opened->writer.flush();
    };
    auto after_round = [&] {
        prog.seconds = elapsed();
        if (progress) progress(prog);
    };
    run_rounds(group, share_batches(costs, world), compute, consume, after_round);

    // Rank 0 closes the run and computes its similarity figures (they need
    // every sample of the run: a shard leaves them to the merge); the other
    // ranks wait, and stop with its error if it fails.
    auto finish = [&] {
        opened->writer.finish();
        if (p.data.n_shards > 1) {
            summary.similarity_note = "one shard of the run: `memskew merge` computes the similarity figures";
        } else {
            summary.similarity = compute_store_similarity(p.out_path, summary.run_id, p.similarity);
            if (!summary.similarity) {
                summary.similarity = load_run_similarity(ResultReader::open(p.out_path, false), summary.run_id);
                if (!summary.similarity) summary.similarity_note = "the run holds no sample vectors";
            }
        }
        return std::string();
    };
    group.from_root(finish);
    if (!root) summary.similarity_note = "computed by rank 0";
    summary.n_samples = summary.n_already_done + (root ? summary.n_probed : prog.total);
    summary.tokens = prog.tokens;
    summary.mean_n_pre = summary.n_probed ? static_cast<double>(sum_n_pre) / summary.n_probed : 0.0;
    if (summary.max_n_pre < 0) summary.max_n_pre = 0;
    summary.padding_waste = real ? static_cast<double>(padded) / real - 1.0 : 0.0;
    summary.seconds = elapsed();
    return summary;
}

}  // namespace

std::vector<ProbeSummary> run_probes(const ProbeParams& p, const ProgressFn& progress, ProcessGroup* group_in) {
    // One process is a group of one: every collective below is then the identity.
    std::unique_ptr<ProcessGroup> alone;
    if (!group_in) alone = ProcessGroup::connect(DistEnv{});
    ProcessGroup& group = group_in ? *group_in : *alone;
    if (p.out_path.empty()) throw InvalidInput("no results store given", "pass --out RUN.db");
    if (p.token_budget <= 0 || p.max_batch_size <= 0) throw InvalidInput("batch token budget and size must be positive");
    const std::vector<ProbeTarget> targets = expand_probe_targets(p.model_path, p.adapters);
    Dataset ds = load_dataset(p.data_path, p.data);
    if (ds.samples.empty())
        throw InvalidInput(fmt::format("{}: no samples selected", p.data_path), "check --limit, --sample and --shard");

    // The base model is loaded (and the dataset tokenized) once for every
    // adapter run; a full-model checkpoint is loaded for its own run.
    std::shared_ptr<Model> base;
    std::optional<Prepared> base_prep;
    std::vector<ProbeSummary> out;
    const int64_t n_runs = static_cast<int64_t>(targets.size());
    // Embeddings from another model: one pass for every run (they do not
    // depend on the checkpoint). The base model is reused when it is that model.
    std::optional<ExternalEmbeddings> external;
    if (p.embeddings && !p.embed_model.empty()) {
        with_context(fmt::format("embedding model {}", p.embed_model), [&] {
            if (p.embed_model == p.model_path) {
                base = Model::load(p.model_path, p.load);
                base_prep = prepare_items(p, ds, *base);
                external = embed_with(p, ds, *base, group);
            } else {
                external = embed_with(p, ds, *Model::load(p.embed_model, p.load), group);
            }
        });
    }
    const ExternalEmbeddings* ext = external ? &*external : nullptr;
    if (!p.guard_data.empty() && !p.generate)
        throw InvalidInput("the decoding guard needs generation: --guard without --generate",
                           "add --generate (the guarded outputs are compared with the unguarded ones)");
    // The guard, built once with the first model's tokenizer (the engine
    // refuses it for a model whose tokenizer differs).
    std::optional<NgramGuard> guard;
    auto guard_for = [&](const Model& m) -> const NgramGuard* {
        if (p.guard_data.empty()) return nullptr;
        if (!guard) guard = probe_guard(p, m);
        return &*guard;
    };
    for (int64_t i = 0; i < n_runs; ++i) {
        const ProbeTarget& t = targets[i];
        auto run = [&] {
            if (t.model_path == p.model_path) {
                if (!base) {
                    base = Model::load(p.model_path, p.load);
                    base_prep = prepare_items(p, ds, *base);
                }
                return probe_one(p, ds, *base_prep, *base, t, i, n_runs, progress, ext, guard_for(*base), group);
            }
            auto model = Model::load(t.model_path, p.load);
            const Prepared prep = prepare_items(p, ds, *model);
            return probe_one(p, ds, prep, *model, t, i, n_runs, progress, ext, guard_for(*model), group);
        };
        if (n_runs == 1 && p.adapters.empty()) {
            out.push_back(run());
        } else {
            out.push_back(with_context(fmt::format("checkpoint {}", t.adapter_path.empty() ? t.model_path : t.adapter_path),
                                       run));
        }
    }
    return out;
}

ProbeSummary run_probe(const ProbeParams& p, const ProgressFn& progress, ProcessGroup* group) {
    if (!p.adapters.empty()) {
        const auto targets = expand_probe_targets(p.model_path, p.adapters);
        if (targets.size() != 1)
            throw InvalidInput(fmt::format("{} adapters/checkpoints given; run_probe probes one", targets.size()),
                               "use run_probes()");
    }
    return run_probes(p, progress, group).front();
}

ScoredSample score_sample(const Model& model, const std::string& prompt, const std::string& reference,
                          const ProbeParams& p) {
    const Tokenizer& tok = model.tokenizer();
    ScoredSample out;
    out.prompt = encode_prompt(tok, prompt);
    out.reference = encode_reference(tok, reference);
    if (out.reference.empty())
        throw InvalidInput("the reference encodes to no tokens", "give a non-empty reference");
    Engine engine(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &model));
    ScoreParams sp;
    sp.sampling = p.sampling;
    out.scores = engine.score({{out.prompt, out.reference}}, sp).front();
    SampleInputs in = sample_inputs(out.scores, out.reference, reference);
    if (p.generate) {
        const GenerateRequest g{out.prompt, out.reference, static_cast<int32_t>(out.reference.size())};
        in.generated = generated_output(engine.generate({g}, GenerateParams{true, false}).front(), tok);
        out.generated = in.generated;
    }
    out.metrics = metrics_row(in, p.metrics);
    return out;
}

}  // namespace memskew
