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
#include <unordered_set>

#include "memskew/error.h"
#include "memskew/store.h"
#include "memskew/tokenizer.h"

namespace memskew {

namespace fs = std::filesystem;

TruncatePolicy parse_truncate_policy(const std::string& name) {
    if (name == "reference") return TruncatePolicy::kReference;
    if (name == "skip") return TruncatePolicy::kSkip;
    throw InvalidInput(fmt::format("unknown truncation policy '{}'", name), "use reference or skip");
}

namespace {

// xxh3-64 of a file's bytes (streamed), hex.
std::string file_content_hash(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(fmt::format("cannot read '{}'", path));
    XXH3_state_t* state = XXH3_createState();
    XXH3_64bits_reset(state);
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        XXH3_64bits_update(state, buf.data(), static_cast<size_t>(in.gcount()));
    }
    const auto h = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return fmt::format("{:016x}", h);
}

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

struct Item {
    size_t sample = 0;  // index into the dataset's samples
    std::vector<int32_t> prompt, reference;
    bool truncated = false;
};

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
    o["truncate"] = p.truncate == TruncatePolicy::kSkip ? "skip" : "reference";
    if (p.text_split) {
        o["prefix_tokens"] = p.text_split->n_prompt;
        o["suffix_tokens"] = p.text_split->n_reference;
    }
    o["subset"] = p.data.subset;
    o["seed"] = p.data.seed;
    if (p.data.n_shards > 1) o["shard"] = fmt::format("{}/{}", p.data.shard_index, p.data.n_shards);
    return o;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

ProbeSummary run_probe(const ProbeParams& p, const ProgressFn& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    if (p.out_path.empty()) throw InvalidInput("no results store given", "pass --out RUN.db");
    if (p.token_budget <= 0 || p.max_batch_size <= 0) throw InvalidInput("batch token budget and size must be positive");

    ProbeSummary summary;
    summary.out_path = p.out_path;
    Dataset ds = load_dataset(p.data_path, p.data);
    summary.data_report = ds.report;
    if (ds.samples.empty())
        throw InvalidInput(fmt::format("{}: no samples selected", p.data_path), "check --limit, --sample and --shard");
    auto model = Model::load(p.model_path, p.load);
    const Tokenizer& tok = model->tokenizer();
    const int64_t ctx = model->config().max_ctx;

    // Tokenize. Prompt and reference are encoded separately (as SFT trainers
    // do) and concatenated: BOS as the tokenizer adds it, none before the reference.
    std::vector<Item> items;
    items.reserve(ds.samples.size());
    TextSplitCounts split_counts;
    for (size_t i = 0; i < ds.samples.size(); ++i) {
        const Sample& s = ds.samples[i];
        Item it;
        it.sample = i;
        if (p.text_split) {
            auto split = split_text_tokens(tok.encode(s.text, false), *p.text_split, &split_counts);
            if (!split) {
                summary.n_skipped_short++;
                continue;
            }
            it.prompt = std::move(split->prompt);
            it.reference = std::move(split->reference);
            it.truncated = split->truncated;
        } else {
            it.prompt = tok.encode(s.prompt, true);
            it.reference = tok.encode(s.reference, false);
        }
        if (it.prompt.empty()) {
            if (tok.bos() < 0)
                throw InvalidInput(fmt::format("{}:{}: sample '{}' has an empty prompt and the tokenizer has no BOS",
                                               p.data_path, s.line, s.id));
            it.prompt.push_back(tok.bos());
        }
        if (it.reference.empty()) {
            throw InvalidInput(fmt::format("{}:{}: the reference of sample '{}' encodes to no tokens", p.data_path,
                                           s.line, s.id),
                               "use --skip-empty to leave such samples out");
        }
        if (p.max_reference_tokens > 0 && static_cast<int64_t>(it.reference.size()) > p.max_reference_tokens)
            it.reference.resize(p.max_reference_tokens);
        const int64_t len = static_cast<int64_t>(it.prompt.size() + it.reference.size()) - 1;
        if (len > ctx) {
            const int64_t keep = ctx - static_cast<int64_t>(it.prompt.size()) + 1;
            if (p.truncate == TruncatePolicy::kSkip || keep < 1) {
                summary.n_skipped_long++;
                continue;
            }
            it.reference.resize(keep);
            it.truncated = true;
            summary.n_truncated++;
        }
        items.push_back(std::move(it));
    }
    if (items.empty()) throw InvalidInput(fmt::format("{}: no sample fits the model", p.data_path));

    RunSpec spec;
    spec.model_path = p.model_path;
    spec.model_fingerprint = path_fingerprint(p.model_path);
    spec.dataset_path = p.data_path;
    spec.dataset_hash = file_content_hash(p.data_path);
    spec.options = options_json(p, ds, *model);
    spec.n_samples_planned = static_cast<int64_t>(items.size());
    WriterParams wp;
    wp.batch_size = std::max<int64_t>(p.max_batch_size, 1) + 1;  // commits happen per engine batch (flush)
    OpenedRun opened = open_run(p.out_path, spec, p.resume ? ResumeMode::kResume : ResumeMode::kFresh, wp);
    summary.run_id = opened.run.run_id;
    summary.resumed = opened.resumed;
    ResultWriter& writer = opened.writer;

    std::vector<int64_t> lengths;
    for (const auto& it : items) lengths.push_back(static_cast<int64_t>(it.prompt.size() + it.reference.size()) - 1);
    const auto batches = plan_batches(lengths, p.token_budget, p.max_batch_size);

    ProbeProgress prog;
    for (const auto& it : items) {
        if (opened.done_sample_ids.count(ds.samples[it.sample].id)) summary.n_already_done++;
        else prog.total++;
    }
    Engine engine(model);
    ScoreParams sp;
    sp.sampling = SamplingSpec{p.sampling.temperature, static_cast<int32_t>(p.sampling.top_k), p.sampling.top_p};
    int64_t padded = 0, real = 0, sum_n_pre = 0;
    summary.max_n_pre = -1;
    for (const auto& batch : batches) {
        std::vector<size_t> todo;
        for (size_t k : batch)
            if (!opened.done_sample_ids.count(ds.samples[items[k].sample].id)) todo.push_back(k);
        if (todo.empty()) continue;
        // The whole planned batch is recomputed even when part of it was stored
        // (it cannot be after a crash, since batches commit whole): the same
        // batch gives bit-identical results.
        std::vector<ScoreRequest> sreq;
        std::vector<GenerateRequest> greq;
        int64_t longest = 0;
        for (size_t k : batch) {
            sreq.push_back({items[k].prompt, items[k].reference});
            greq.push_back({items[k].prompt, items[k].reference, static_cast<int32_t>(items[k].reference.size())});
            longest = std::max(longest, lengths[k]);
            real += lengths[k];
        }
        padded += longest * static_cast<int64_t>(batch.size());
        const auto scores = engine.score(sreq, sp);
        std::vector<GenerateResult> gens;
        if (p.generate) gens = engine.generate(greq, GenerateParams{true, false});
        for (size_t bi = 0; bi < batch.size(); ++bi) {
            const Item& it = items[batch[bi]];
            const Sample& s = ds.samples[it.sample];
            if (opened.done_sample_ids.count(s.id)) continue;
            const TokenScores& sc = scores[bi];
            const size_t L = it.reference.size();
            SampleInputs in;
            in.tokens.match.resize(L);
            for (size_t j = 0; j < L; ++j) in.tokens.match[j] = sc.argmax[j] == it.reference[j];
            in.tokens.log_prob = to_double(sc.logprob);
            in.tokens.entropy = to_double(sc.entropy);
            in.tokens.mean_log_prob = to_double(sc.mean_logp);
            in.tokens.var_log_prob = to_double(sc.var_logp);
            in.tokens.sampling_log_prob = to_double(sc.logprob_sampling);
            in.reference_tokens = it.reference;
            const std::string reference_text = it.truncated || p.text_split ? tok.decode(it.reference) : s.reference;
            in.reference_text = reference_text;
            std::optional<std::string> generated_text;
            if (p.generate) {
                GeneratedOutput g;
                g.tokens = gens[bi].tokens;
                if (gens[bi].reason == StopReason::kEos && !g.tokens.empty()) g.tokens.pop_back();
                g.text = tok.decode(g.tokens);
                generated_text = g.text;
                in.generated = std::move(g);
            }
            const SampleMetrics m = compute_sample_metrics(in, p.metrics);
            const auto surv = log_survival(in.tokens.sampling_log_prob);
            SampleRecord rec;
            rec.sample_id = s.id;
            rec.sample_index = static_cast<int64_t>(s.index);
            rec.prompt_tokens = static_cast<int64_t>(it.prompt.size());
            rec.reference_tokens = static_cast<int64_t>(L);
            rec.truncated = it.truncated;
            if (p.store_text) {
                rec.prompt_text = p.text_split ? tok.decode(it.prompt) : s.prompt;
                rec.reference_text = reference_text;
                rec.generated_text = generated_text;
            }
            rec.metrics = to_metrics_row(m, &surv);
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
            writer.add(std::move(rec));

            summary.n_probed++;
            sum_n_pre += sc.n_pre;
            if (sc.n_pre > summary.max_n_pre) {
                summary.max_n_pre = sc.n_pre;
                summary.max_n_pre_id = s.id;
            }
            summary.n_exact += sc.n_pre == static_cast<int32_t>(L);
            if (p.generate) {
                summary.n_generated++;
                const int64_t gen_n_pre = in.generated ? m.generation->n_pre_generated : 0;
                if (gen_n_pre != sc.n_pre) summary.disagreements.push_back({s.id, sc.n_pre, gen_n_pre});
            }
            prog.done++;
            prog.tokens += static_cast<int64_t>(it.prompt.size() + L);
        }
        writer.flush();
        prog.seconds = elapsed();
        if (progress) progress(prog);
    }
    writer.finish();
    summary.n_samples = summary.n_already_done + summary.n_probed;
    summary.tokens = prog.tokens;
    summary.mean_n_pre = summary.n_probed ? static_cast<double>(sum_n_pre) / summary.n_probed : 0.0;
    if (summary.max_n_pre < 0) summary.max_n_pre = 0;
    summary.padding_waste = real ? static_cast<double>(padded) / real - 1.0 : 0.0;
    summary.seconds = elapsed();
    return summary;
}

}  // namespace memskew
