#include "probe-options.h"

#include "memskew/analysis.h"
#include "memskew/error.h"

namespace memskew::cli {

namespace {

nlohmann::json summary_json(const ProbeSummary& s, bool generate) {
    nlohmann::json dis = nlohmann::json::array();
    for (const auto& x : s.disagreements)
        dis.push_back({{"sample_id", x.sample_id}, {"n_pre", x.n_pre_teacher_forced}, {"n_pre_generated", x.n_pre_generated}});
    nlohmann::json j = {{"store", s.out_path},
                        {"run_id", s.run_id},
                        {"resumed", s.resumed},
                        {"samples", s.n_samples},
                        {"probed", s.n_probed},
                        {"already_done", s.n_already_done},
                        {"truncated", s.n_truncated},
                        {"skipped_too_long", s.n_skipped_long},
                        {"skipped_too_short", s.n_skipped_short},
                        {"skipped_empty", s.n_skipped_empty},
                        {"skipped_bad_records", s.data_report.n_skipped()},
                        {"mean_n_pre", s.mean_n_pre},
                        {"max_n_pre", s.max_n_pre},
                        {"max_n_pre_sample", s.max_n_pre_id},
                        {"exact", s.n_exact},
                        {"tokens", s.tokens},
                        {"seconds", s.seconds},
                        {"padding_waste", s.padding_waste}};
    j["similarity"] = s.similarity ? to_json(*s.similarity) : nlohmann::json({{"skipped", s.similarity_note}});
    if (generate) {
        j["generated"] = s.n_generated;
        j["n_pre_agreement"] = s.n_generated - static_cast<int64_t>(s.disagreements.size());
        j["disagreements"] = dis;
        j["approximately_memorized"] = s.n_approx;
    }
    if (s.guarded)
        j["guard"] = {{"max_n_pre", s.guard_max_n_pre}, {"exact", s.guard_n_exact},
                      {"blocked_steps", s.guard_blocked_steps}, {"approximately_memorized", s.guard_n_approx}};
    return j;
}

nlohmann::json target_json(const ProbeTarget& t) {
    nlohmann::json j = {{"model", t.model_path}, {"label", t.label}};
    j["adapter"] = t.adapter_path.empty() ? nlohmann::json() : nlohmann::json(t.adapter_path);
    j["checkpoint_step"] = t.checkpoint_step ? nlohmann::json(*t.checkpoint_step) : nlohmann::json();
    j["checkpoint_epoch"] = t.checkpoint_epoch ? nlohmann::json(*t.checkpoint_epoch) : nlohmann::json();
    j["train_loss"] = t.train_loss ? nlohmann::json(*t.train_loss) : nlohmann::json();
    return j;
}

}  // namespace

nlohmann::json probe_summary_json(const ProbeSummary& summary, bool generate, bool with_target) {
    nlohmann::json j = summary_json(summary, generate);
    if (with_target) j["target"] = target_json(summary.target);
    return j;
}

void ProbeOptions::add_to(CLI::App* cmd) {
    model.add_to(cmd);
    data.add_to(cmd);
    dist.add_to(cmd);
    cmd->add_option("--out,-o", out, "Results store (SQLite) to write")->required();
    cmd->add_option("--adapter,-a", adapters,
                    "PEFT adapter folder to apply to --model (repeatable), a checkpoint-<step> folder, or a Trainer "
                    "output folder: one run per checkpoint-<step> (adapter or full model), all in --out");
    cmd->add_flag("--resume", resume, "Continue an interrupted run in --out (same model, data and options)");
    cmd->add_option("--seed", seed, "Seed of --sample");
    cmd->add_flag("--generate", generate, "Also generate greedily: ROUGE, Levenshtein, and an n_pre cross-check");
    cmd->add_option("--temperature", temperature, "M4 sampling temperature")->check(CLI::PositiveNumber);
    cmd->add_option("--top-k", top_k, "M4 top-k (0: off)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-p", top_p, "M4 top-p (1: off)")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--tries", n_tries, "n of the (n,p)-discoverable extraction probability")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--k-extractable", k_extractable, "k of k-extractable")->check(CLI::PositiveNumber);
    cmd->add_option("--min-k", min_k, "Fraction for min-k% and min-k%++")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--batch-tokens", batch_tokens, "Padded tokens per batch")->check(CLI::PositiveNumber);
    cmd->add_option("--batch-size", batch_size, "Most samples per batch")->check(CLI::PositiveNumber);
    cmd->add_flag("--no-text", no_text, "Do not keep sample texts in the store");
    cmd->add_option("--embed-model", embed_model,
                    "Take the sample embeddings (similarity figures) from this model, in a pass of its own, instead "
                    "of the model under test (e.g. the base model when probing checkpoints)");
    cmd->add_flag("--keep-embeddings", keep_embeddings,
                  "Keep the sample embeddings in the store (float16; `memskew export --embeddings` writes them)");
    cmd->add_flag("--no-embeddings", no_embeddings,
                  "No sample embeddings: no S_input/S_full/neighbour figures (duplicates are still found)");
    cmd->add_option("--neighbours", neighbours, "Nearest neighbours per sample for the similarity figures")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--guard", guard,
                    "With --generate: also generate with the decoding guard, which never completes an n-gram of "
                    "this dataset's references (read with the same dataset options, encoded as `memskew train` "
                    "encodes them); the guarded outputs' metrics are stored beside the unguarded ones");
    cmd->add_option("--guard-n", guard_n, "n-gram length of the guard (default 10)");
}

void ProbeOptions::validate() const { data.validate(); }

ProbeParams ProbeOptions::params() const {
    ProbeParams p;
    p.model_path = model.model;
    p.load = model.load_params();  // checks --device before anything is written
    p.data_path = data.data;
    p.out_path = out;
    p.resume = resume;
    p.adapters = adapters;
    p.data = data.dataset_params(seed);
    p.text_split = data.text_split();
    p.max_reference_tokens = data.max_reference;
    p.truncate = data.truncate_policy();
    p.sampling = {temperature, top_k, top_p};
    p.metrics.min_k = min_k;
    p.metrics.k_extractable = k_extractable;
    p.metrics.n_tries = n_tries;
    p.generate = generate;
    p.store_text = !no_text;
    p.token_budget = batch_tokens;
    p.max_batch_size = batch_size;
    p.embeddings = !no_embeddings;
    p.embed_model = embed_model;
    p.keep_embeddings = keep_embeddings;
    p.similarity.knn.k = neighbours;
    p.guard_data = guard;
    p.guard_dataset = p.data;
    // The whole guard dataset, not the probe's selection of it.
    p.guard_dataset.limit = 0;
    p.guard_dataset.subset = 0;
    p.guard_dataset.n_shards = 1;
    p.guard_dataset.shard_index = 0;
    p.guard_n = guard_n;
    if (no_embeddings && (keep_embeddings || !embed_model.empty()))
        throw InvalidInput("--no-embeddings contradicts --keep-embeddings / --embed-model",
                           "drop one of them");
    return p;
}

}  // namespace memskew::cli
