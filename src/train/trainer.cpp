// The SFT loop. Shape legend: B micro-batch, T tokens, D hidden, N reference
// rows in the micro-batch, V vocabulary.
//
// Determinism: the sample order of epoch e is a shuffle seeded by (seed, e),
// and the RNG (LoRA dropout) is reseeded from (seed, step, micro-batch) before
// every forward, so a run resumed from a checkpoint follows the uninterrupted
// run exactly.
//
// Data parallel (several ranks, a ProcessGroup): every rank builds the same
// steps (same order, same micro-batches) and trains its contiguous slice of
// each micro-batch (rank r of W: samples [r*B/W, (r+1)*B/W)); each slice's
// loss is divided by the whole step's token count, which every rank knows, so
// the sum of the ranks' gradients is the one-process gradient. The gradients
// (fp32: after the bf16 ones went to their masters) and the per-micro-batch
// loss sums travel in one flat buffer, all-reduced in buckets of
// kBucketElements (DDP's 25 MB default); then every rank takes the same
// optimizer step. Parameters are broadcast from rank 0 at the start; rank 0
// alone writes checkpoints and computes the monitor. Dropout masks are drawn
// per slice (another seed per rank), so with dropout the trajectory is
// equivalent in distribution but not element for element.
//
// Goldfish (TrainParams::goldfish_k, include/memskew/goldfish.h): each
// sample's keep mask is computed once from its ids; dropped reference tokens
// get no logits row at all, so they add nothing to the loss or the gradient,
// and the step's loss is the mean over the kept tokens only (the divisor
// counts kept tokens). With Goldfish off every mask is empty and the loop is
// the standard one, operation for operation.
#include "memskew/train.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "memskew/adapter.h"
#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/goldfish.h"
#include "memskew/process-group.h"
#include "memskew/stats.h"
#include "memskew/tokenizer.h"
#include "model/cpu-kernels.h"
#include "model/model-impl.h"

namespace memskew {

namespace fs = std::filesystem;

LrSchedule parse_lr_schedule(const std::string& name) {
    if (name == "cosine") return LrSchedule::kCosine;
    if (name == "linear") return LrSchedule::kLinear;
    if (name == "constant") return LrSchedule::kConstant;
    throw InvalidInput(fmt::format("unknown learning-rate schedule '{}'", name), "use cosine, linear or constant");
}

std::optional<int64_t> checkpoint_step_of(const std::string& folder_name) {
    static constexpr std::string_view kPrefix = "checkpoint-";
    if (folder_name.size() <= kPrefix.size() || folder_name.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
    const std::string digits = folder_name.substr(kPrefix.size());
    if (digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoll(digits);
}

std::vector<std::string> list_checkpoints(const std::string& out_dir) {
    std::vector<std::pair<int64_t, std::string>> found;
    std::error_code ec;
    if (!fs::is_directory(out_dir, ec)) return {};
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
        if (!e.is_directory(ec)) continue;
        if (const auto step = checkpoint_step_of(e.path().filename().string())) found.emplace_back(*step, e.path().string());
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

EncodeParams train_encode_params(const TrainParams& p, int64_t max_context) {
    return encode_params_for(p.data, p.max_reference_tokens, p.truncate, p.text_split, max_context, p.append_eos);
}

EncodedDataset encode_training_set(const TrainParams& p, const Tokenizer& tok, int64_t max_context) {
    return encode_sft_dataset(load_dataset(p.data_path, p.data), tok, train_encode_params(p, max_context), p.data_path);
}

namespace {

struct Example {
    std::vector<int32_t> prompt, target;  // target: reference (+ EOS)
    size_t n_reference = 0;               // reference tokens without EOS (for the monitor)
    std::vector<uint8_t> keep;            // Goldfish keep mask over target (empty: keep all)
    GoldfishCounts goldfish;              // its counts
    int64_t kept() const { return goldfish.tokens - goldfish.dropped; }
};

std::vector<Example> training_examples(const TrainParams& p, const Tokenizer& tok, int64_t ctx, EncodeCounts& counts) {
    EncodedDataset enc = encode_training_set(p, tok, ctx);
    counts = enc.counts;
    std::vector<Example> out;
    out.reserve(enc.items.size());
    for (EncodedSample& s : enc.items) {
        Example e;
        e.prompt = std::move(s.prompt);
        e.n_reference = s.reference.size();
        e.target = std::move(s.reference);
        if (s.eos) e.target.push_back(tok.eos());
        // EOS is masked like any reference token: it is predicted from its
        // context like the others, and exempting it would make the rule
        // depend on which token comes next.
        if (goldfish_enabled(p.goldfish_k)) e.keep = goldfish_keep_mask(e.prompt, e.target, p.goldfish_k, p.goldfish_h);
        e.goldfish = goldfish_counts(e.prompt.size(), e.keep.empty() ? std::vector<uint8_t>(e.target.size(), 1) : e.keep,
                                     p.goldfish_k, p.goldfish_h);
        out.push_back(std::move(e));
    }
    return out;
}

// Hugging Face's schedules (get_{cosine,linear,constant}_schedule_with_warmup),
// evaluated at the number of optimizer steps already taken.
double lr_at(const TrainParams& p, int64_t step, int64_t total) {
    if (p.warmup_steps > 0 && step < p.warmup_steps) return p.lr * static_cast<double>(step) / p.warmup_steps;
    const double span = std::max<int64_t>(1, total - p.warmup_steps);
    const double progress = std::min(1.0, static_cast<double>(step - p.warmup_steps) / span);
    switch (p.schedule) {
        case LrSchedule::kCosine: return p.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
        case LrSchedule::kLinear: return p.lr * std::max(0.0, 1.0 - progress);
        case LrSchedule::kConstant: return p.lr;
    }
    return p.lr;
}

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
    for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
    return order;
}

// Mean cross-entropy terms of one micro-batch: returns (sum of token losses,
// tokens in the loss). Goldfish-dropped tokens are left out of both; a batch
// with no token left returns an undefined tensor and 0 (no forward pass).
std::pair<torch::Tensor, int64_t> batch_loss(CausalLmImpl& net, const std::vector<const Example*>& batch) {
    const int64_t B = static_cast<int64_t>(batch.size());
    bool masked = false;
    int64_t n_kept = 0;
    for (const Example* e : batch) {
        masked = masked || !e->keep.empty();
        n_kept += e->kept();
    }
    if (n_kept == 0) return {torch::Tensor(), 0};
    int64_t T = 1;
    for (const Example* e : batch) T = std::max<int64_t>(T, e->prompt.size() + e->target.size() - 1);
    const torch::Device device = net.device();
    auto ids = torch::zeros({B, T}, torch::kLong);  // filled on the CPU, then one copy to the device
    auto acc = ids.accessor<int64_t, 2>();
    std::vector<int64_t> targets, prompt_lens, target_lens;
    for (int64_t b = 0; b < B; ++b) {
        const Example& e = *batch[b];
        int64_t t = 0;
        for (int32_t id : e.prompt) acc[b][t++] = id;
        for (size_t j = 0; j + 1 < e.target.size(); ++j) acc[b][t++] = e.target[j];
        targets.insert(targets.end(), e.target.begin(), e.target.end());
        prompt_lens.push_back(static_cast<int64_t>(e.prompt.size()));
        target_lens.push_back(static_cast<int64_t>(e.target.size()));
    }
    // The loss needs hidden states from the first target row on: the model may
    // skip the last layer's work before it (forward_hidden_tail), in the
    // backward pass too.
    ReferenceRows ref_rows = reference_rows(prompt_lens, target_lens, T);
    if (masked) {
        // Keep the rows (and targets) of kept tokens only: rows are in batch
        // and then reference order, as targets are.
        std::vector<int64_t> rows, kept_targets;
        size_t i = 0;
        for (const Example* e : batch)
            for (size_t j = 0; j < e->target.size(); ++j, ++i)
                if (e->keep.empty() || e->keep[j]) {
                    rows.push_back(ref_rows.rows[i]);
                    kept_targets.push_back(targets[i]);
                }
        ref_rows.rows = std::move(rows);
        targets = std::move(kept_targets);
    }
    const auto on_device = [&](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong).to(device); };
    auto pos = torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(device))
                   .unsqueeze(0)
                   .expand({B, T})
                   .contiguous();
    auto h = net.forward_hidden_tail(ids.to(device), pos, ref_rows.first)
                 .reshape({B * ref_rows.kept, -1});                                   // [B*kept, D]
    auto logits = net.project(h.index_select(0, on_device(ref_rows.rows)));  // [N, V], compute dtype
    const auto target_t = on_device(targets);
    // cross_entropy(logits.float(), targets, sum): fused on the CPU
    // (tests/model/test-kernels.cpp), LibTorch's elsewhere (tests/model/test-device.cpp).
    auto loss_sum = kernels::supported(logits)
                        ? kernels::cross_entropy_sum(logits, target_t)
                        : torch::nn::functional::cross_entropy(
                              logits.to(torch::kFloat), target_t,
                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    return {loss_sum, static_cast<int64_t>(targets.size())};
}

// Mixed precision for low-precision parameters (full bf16 training): the
// optimizer updates fp32 master copies, and the bf16 parameters are refreshed
// from them after every step, so updates below bf16's resolution (2^-8 of a
// weight) accumulate instead of vanishing, as with PyTorch AMP over fp32
// weights. The forward and backward passes still run in bf16. LoRA factors
// are fp32 already and train directly.
struct MasterWeights {
    std::vector<torch::Tensor> params, masters;  // pairs: the bf16 parameter, its fp32 master

    // The tensor the optimizer should own for `param`.
    torch::Tensor track(const torch::Tensor& param) {
        if (param.scalar_type() == torch::kFloat) return param;
        auto master = param.detach().to(torch::kFloat).clone().set_requires_grad(true);
        params.push_back(param);
        masters.push_back(master);
        return master;
    }
    // Before the optimizer step: the accumulated bf16 gradients, as fp32.
    void gradients_to_masters() {
        for (size_t i = 0; i < params.size(); ++i) {
            const auto& g = params[i].grad();
            masters[i].mutable_grad() = g.defined() ? g.to(torch::kFloat) : torch::zeros_like(masters[i]);
        }
    }
    // After it: the parameters take the rounded masters; their gradients reset.
    void masters_to_params() {
        torch::NoGradGuard no_grad;
        for (size_t i = 0; i < params.size(); ++i) {
            params[i].copy_(masters[i]);
            params[i].mutable_grad().reset();
        }
    }
};

// Everything that shapes the training trajectory besides the step and the
// number of epochs (which may grow on resume, as with Hugging Face's Trainer):
// a resumed run must match it, or it would not continue the run it claims to.
nlohmann::json trajectory_settings(const TrainParams& p, const Model& model, const std::vector<Example>& examples) {
    XXH64_state_t* h = XXH64_createState();
    XXH64_reset(h, 0);
    for (const auto& e : examples) {
        const uint64_t sizes[2] = {e.prompt.size(), e.target.size()};
        XXH64_update(h, sizes, sizeof sizes);
        XXH64_update(h, e.prompt.data(), e.prompt.size() * sizeof(int32_t));
        XXH64_update(h, e.target.data(), e.target.size() * sizeof(int32_t));
    }
    const uint64_t data_hash = XXH64_digest(h);
    XXH64_freeState(h);
    nlohmann::json s = {{"seed", p.seed},
                        {"mode", p.mode == TrainMode::kLora ? "lora" : "full"},
                        {"dtype", dtype_name(model.dtype())},
                        {"batch_size", p.batch_size},
                        {"grad_accum", p.grad_accum},
                        {"lr", p.lr},
                        {"weight_decay", p.weight_decay},
                        {"warmup_steps", p.warmup_steps},
                        {"schedule", static_cast<int>(p.schedule)},
                        {"max_grad_norm", p.max_grad_norm},
                        {"n_examples", examples.size()},
                        {"examples_hash", fmt::format("{:016x}", data_hash)}};
    // Only when on, so the settings of standard runs stay as they were.
    if (goldfish_enabled(p.goldfish_k)) {
        s["goldfish_k"] = p.goldfish_k;
        s["goldfish_h"] = p.goldfish_h;
    }
    if (p.mode == TrainMode::kLora) {
        s["lora_r"] = p.lora.r;
        s["lora_alpha"] = p.lora.lora_alpha;
        s["lora_dropout"] = p.lora.lora_dropout;
        s["lora_use_rslora"] = p.lora.use_rslora;
    }
    return s;
}

std::string goldfish_label(int64_t k, int64_t h) {
    return goldfish_enabled(k) ? fmt::format("--goldfish-k {} --goldfish-h {}", k, h) : "Goldfish off";
}

// Goldfish changes which tokens train: a resume must keep K and H. Checkpoints
// written before Goldfish existed (or without it) hold no goldfish_k: off.
void check_resume_goldfish(const std::string& checkpoint, const nlohmann::json& stored, const TrainParams& p) {
    auto int_of = [&](const char* key, int64_t dflt) {
        return stored.contains(key) && stored[key].is_number_integer() ? stored[key].get<int64_t>() : dflt;
    };
    const int64_t k = int_of("goldfish_k", 0), h = int_of("goldfish_h", 13);
    const bool on = goldfish_enabled(k), now_on = goldfish_enabled(p.goldfish_k);
    if (on == now_on && (!on || (k == p.goldfish_k && h == p.goldfish_h))) return;
    throw InvalidInput(fmt::format("cannot resume from {}: it was trained with {}, this run asks for {}", checkpoint,
                                   goldfish_label(k, h), goldfish_label(p.goldfish_k, p.goldfish_h)),
                       "resume with the checkpoint's Goldfish settings, or train into another --out folder");
}

// Refuses to resume from a checkpoint written with other trajectory settings,
// naming each difference (stored vs requested).
void check_resume_settings(const std::string& checkpoint, const nlohmann::json& stored, const nlohmann::json& now) {
    std::string diffs;
    for (const auto& [key, value] : now.items()) {
        if (!stored.contains(key) || stored[key] == value) continue;
        diffs += fmt::format("{}{} ({} vs {})", diffs.empty() ? "" : "; ", key, stored[key].dump(), value.dump());
    }
    if (!diffs.empty())
        throw InvalidInput(fmt::format("cannot resume from {}: it was trained with other settings (stored vs "
                                       "requested): {}",
                                       checkpoint, diffs),
                           "resume with the original settings and data, or train into another --out folder");
}

void write_checkpoint(Model& model, const TrainParams& p, const std::string& dir, int64_t step, double epoch,
                      int64_t total_steps, const std::vector<TrainerLogEntry>& log,
                      torch::optim::AdamW& optimizer, const nlohmann::json& settings,
                      const MasterWeights& masters, const nlohmann::json& goldfish) {
    const std::string tmp = dir + ".tmp";
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) throw IoError(fmt::format("cannot create '{}': {}", tmp, ec.message()));
    if (p.mode == TrainMode::kLora) {
        PeftConfig cfg = p.lora;
        cfg.base_model_name_or_path = model.path();
        save_adapter(model, tmp, cfg);
    } else {
        model.save_hf(tmp);
    }
    TrainerState st;
    st.global_step = step;
    st.epoch = epoch;
    st.max_steps = total_steps;
    st.num_train_epochs = static_cast<double>(p.epochs);
    st.logging_steps = 1;
    st.save_steps = p.save_steps;
    st.train_batch_size = p.batch_size;
    st.log_history = log;
    // The checkpoint's training loss (trainer-state.h): the mean of the
    // epoch's step losses so far, and the last step's. trainer_state.json
    // carries the mean as train_loss_epoch_mean, an extra numeric key of the
    // checkpoint step's log entry (set by the loop).
    const CheckpointLoss loss = checkpoint_loss(st);
    save_trainer_state(st, tmp + "/trainer_state.json");
    torch::save(optimizer, tmp + "/optimizer.pt");
    if (!masters.masters.empty()) torch::save(masters.masters, tmp + "/master_weights.pt");
    nlohmann::json state = {{"step", step},
                            {"epoch", epoch},
                            {"seed", p.seed},
                            {"mode", p.mode == TrainMode::kLora ? "lora" : "full"},
                            {"base_model", model.path()},
                            {"settings", settings}};
    // What probe stores as the checkpoint's training loss: the mean over the
    // steps of the current epoch up to this one (the whole epoch at its end),
    // and the last step's loss.
    if (loss.mean) {
        state["train_loss"] = *loss.mean;
        state["train_loss_steps"] = {{"first", loss.first_step}, {"last", step}, {"count", loss.n_steps}};
    }
    if (loss.last_step) state["train_loss_last_step"] = *loss.last_step;
    // trainer_state.json keeps to transformers' TrainerState keys (it rejects
    // others), so the run-level Goldfish record lives here; its log_history
    // entries carry goldfish_drop_fraction per step.
    if (!goldfish.is_null()) state["goldfish"] = goldfish;
    write_text_file_atomic(tmp + "/memskew-train.json", state.dump(2));
    fs::remove_all(dir, ec);
    fs::rename(tmp, dir, ec);
    if (ec) throw IoError(fmt::format("cannot write checkpoint '{}': {}", dir, ec.message()));
}

// Greedy n_pre of the monitor subset, with the model in eval mode.
std::vector<double> monitor_n_pre(Model& model, const std::vector<Example>& examples, const std::vector<size_t>& subset) {
    std::shared_ptr<const Model> view(&model, [](const Model*) {});
    Engine engine(view);
    std::vector<double> out;
    std::vector<ScoreRequest> batch;
    auto run = [&] {
        for (const auto& s : engine.score(batch)) out.push_back(s.n_pre);
        batch.clear();
    };
    for (size_t i : subset) {
        const Example& e = examples[i];
        batch.push_back({e.prompt, std::vector<int32_t>(e.target.begin(), e.target.begin() + e.n_reference)});
        if (batch.size() == 16) run();
    }
    if (!batch.empty()) run();
    return out;
}

// Elements per all-reduce: 25 MB of fp32, PyTorch DDP's bucket_cap_mb default.
constexpr int64_t kBucketElements = 25 * 1024 * 1024 / 4;

// Sums every rank's gradients of `params` and the doubles of `extra` in
// place (an undefined gradient counts as zeros and is defined afterwards):
// one flat fp32 buffer per bucket. `extra` travels as fp64 in a buffer of its
// own (loss sums: no rounding to fp32).
void allreduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, std::vector<double>& extra) {
    size_t i = 0;
    while (i < params.size()) {
        size_t j = i;
        int64_t n = 0;
        while (j < params.size() && (j == i || n + params[j].numel() <= kBucketElements)) n += params[j++].numel();
        auto flat = torch::empty({n}, torch::kFloat);  // [n], on the CPU: Gloo's memory
        int64_t off = 0;
        for (size_t k = i; k < j; ++k) {
            const auto& g = params[k].grad();
            auto dst = flat.narrow(0, off, params[k].numel());
            if (g.defined()) dst.copy_(g.reshape({-1}));
            else dst.zero_();
            off += params[k].numel();
        }
        group.allreduce_sum(flat);
        off = 0;
        for (size_t k = i; k < j; ++k) {
            auto src = flat.narrow(0, off, params[k].numel()).view(params[k].sizes());
            auto& g = const_cast<torch::Tensor&>(params[k]).mutable_grad();
            if (g.defined()) g.copy_(src);
            else g = src.to(params[k].device()).clone();
            off += params[k].numel();
        }
        i = j;
    }
    if (extra.empty()) return;
    auto t = torch::tensor(extra, torch::kDouble);
    group.allreduce_sum(t);
    for (size_t k = 0; k < extra.size(); ++k) extra[k] = t[static_cast<int64_t>(k)].item<double>();
}

// Every rank must train the same run: rank 0 compares what each was given
// with its own and stops them all, naming the keys that differ.
void check_same_training(ProcessGroup& group, const nlohmann::json& mine) {
    if (group.world_size() == 1) return;
    const auto all = group.gather_to_root(mine.dump());
    group.from_root([&] {
        for (size_t r = 1; r < all.size(); ++r) {
            const auto other = nlohmann::json::parse(all[r]);
            if (other == mine) continue;
            std::string keys;
            for (const auto& [k, v] : mine.items())
                if (!other.contains(k) || other[k] != v)
                    keys += fmt::format("{}{} ({} vs {})", keys.empty() ? "" : ", ", k, v.dump(),
                                        other.value(k, nlohmann::json()).dump());
            throw InvalidInput(fmt::format("rank {} was started on another training run than rank 0: {}", r, keys),
                               "every rank needs the same model, data and options, and must see the same files");
        }
        return std::string();
    });
}

}  // namespace

TrainSummary train_model(Model& model, const TrainParams& p, const TrainProgressFn& progress, ProcessGroup* group_in) {
    std::unique_ptr<ProcessGroup> alone;
    if (!group_in) alone = ProcessGroup::connect(DistEnv{});
    ProcessGroup& group = group_in ? *group_in : *alone;
    const int world = group.world_size(), rank = group.rank();
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    if (p.epochs <= 0 || p.batch_size <= 0 || p.grad_accum <= 0)
        throw InvalidInput("epochs, batch size and gradient accumulation must be positive");
    if (!(p.lr > 0)) throw InvalidInput(fmt::format("learning rate must be positive, got {}", p.lr));
    if (p.out_dir.empty()) throw InvalidInput("no output folder for checkpoints", "pass --out DIR");
    // 0 and 1 are off for the library (the CLI refuses 1: validate_goldfish).
    if (p.goldfish_k < 0 || goldfish_enabled(p.goldfish_k)) validate_goldfish(p.goldfish_k, p.goldfish_h);
    auto& net = *model_impl(model).net;
    const Tokenizer& tok = model.tokenizer();
    const int64_t ctx = model.config().max_ctx;

    // Data: the one sample encoder, as the probe uses it.
    EncodeCounts encode_counts;
    const std::vector<Example> examples =
        training_examples(p, tok, ctx, encode_counts);

    // What trains.
    const nlohmann::json settings = trajectory_settings(p, model, examples);
    {
        nlohmann::json identity = settings;
        identity["model"] = model.path();
        identity["out"] = p.out_dir;
        identity["epochs"] = p.epochs;
        identity["save_steps"] = p.save_steps;
        identity["resume"] = p.resume;
        check_same_training(group, identity);
    }
    std::optional<AdapterInfo> adapter;
    const auto checkpoints = p.resume ? list_checkpoints(p.out_dir) : std::vector<std::string>{};
    if (!checkpoints.empty()) {
        // A checkpoint of the other mode would fail later with an error about
        // missing adapter or model files; say what is wrong instead.
        const std::string state_path = checkpoints.back() + "/memskew-train.json";
        std::error_code ec;
        if (fs::exists(state_path, ec)) {
            const auto state = nlohmann::json::parse(read_text_file(state_path), nullptr, false);
            const std::string mode = p.mode == TrainMode::kLora ? "lora" : "full";
            if (state.is_object() && state.contains("mode") && state["mode"].is_string() && state["mode"] != mode)
                throw InvalidInput(fmt::format("cannot resume: {} was written by --mode {} training, this run is --mode {}",
                                               checkpoints.back(), state["mode"].get<std::string>(), mode),
                                   "resume with the same --mode, or use another --out folder");
            if (state.is_object() && state.contains("settings") && state["settings"].is_object()) {
                check_resume_goldfish(checkpoints.back(), state["settings"], p);
                check_resume_settings(checkpoints.back(), state["settings"], settings);
            }
        }
    }
    if (p.mode == TrainMode::kLora) {
        if (!checkpoints.empty()) adapter = load_adapter(model, checkpoints.back(), {true});
        else adapter = attach_lora(model, p.lora, p.seed, true);
    } else {
        if (!checkpoints.empty()) {
            // Keep the thread count the caller chose (Model::load sets it; 0 would mean all cores).
            auto saved = Model::load(checkpoints.back(), {model.dtype(), at::get_num_threads()});
            auto src = model_impl(*saved).net->named_parameters();
            torch::NoGradGuard ng;
            for (auto& item : net.named_parameters()) item.value().copy_(src[item.key()]);
        }
        for (auto& prm : net.parameters()) prm.set_requires_grad(true);
    }
    std::vector<torch::Tensor> decay, no_decay;  // what the optimizer updates (fp32)
    MasterWeights masters;
    for (auto& item : net.named_parameters()) {
        if (!item.value().requires_grad()) continue;
        (item.value().dim() >= 2 ? decay : no_decay).push_back(masters.track(item.value()));
    }
    if (decay.empty() && no_decay.empty()) throw InvalidInput("nothing to train: no parameter requires grad");
    std::vector<torch::Tensor> trained(decay);  // what the optimizer updates: the gradients to sum over ranks
    trained.insert(trained.end(), no_decay.begin(), no_decay.end());
    if (world > 1) {
        // Every rank starts from rank 0's weights (and its masters' fp32 values).
        torch::NoGradGuard no_grad;
        for (auto& prm : net.parameters()) group.broadcast(prm);
        for (auto& m : masters.masters) group.broadcast(m);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(p.lr).weight_decay(p.weight_decay)));
    if (!no_decay.empty())
        groups.emplace_back(no_decay,
                            std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(p.lr).weight_decay(0.0)));
    torch::optim::AdamW optimizer(std::move(groups));

    const size_t n_micro = (examples.size() + p.batch_size - 1) / p.batch_size;
    const int64_t steps_per_epoch = static_cast<int64_t>((n_micro + p.grad_accum - 1) / p.grad_accum);
    const int64_t total_steps = steps_per_epoch * p.epochs;
    int64_t step = 0;
    std::vector<TrainerLogEntry> log;
    if (!checkpoints.empty()) {
        const TrainerState st = load_trainer_state(checkpoints.back());
        step = st.global_step;
        log = st.log_history;
        // Optimizer state goes where the parameters are (it was saved from wherever they were).
        torch::load(optimizer, checkpoints.back() + "/optimizer.pt", net.device());
        const std::string master_path = checkpoints.back() + "/master_weights.pt";
        std::error_code ec;
        if (!masters.masters.empty() && fs::exists(master_path, ec)) {
            std::vector<torch::Tensor> saved;
            torch::load(saved, master_path);
            if (saved.size() != masters.masters.size())
                throw FormatError(fmt::format("{}: {} master weights for {} low-precision parameters", master_path,
                                              saved.size(), masters.masters.size()),
                                  "resume with the same model, --mode and --dtype");
            torch::NoGradGuard no_grad;
            for (size_t i = 0; i < saved.size(); ++i) masters.masters[i].copy_(saved[i]);
        }
    }

    // Monitor subset: fixed for the whole run.
    TrainSummary summary;
    summary.n_samples = static_cast<int64_t>(examples.size());
    summary.encode_counts = encode_counts;
    const bool goldfish = goldfish_enabled(p.goldfish_k);
    for (const Example& e : examples) summary.goldfish += e.goldfish;
    nlohmann::json goldfish_record;
    if (goldfish)
        goldfish_record = {{"k", p.goldfish_k},
                           {"h", p.goldfish_h},
                           {"hash", kGoldfishHashRule},
                           {"reference_tokens", summary.goldfish.tokens},
                           {"eligible_tokens", summary.goldfish.eligible},
                           {"dropped_tokens", summary.goldfish.dropped},
                           {"drop_fraction", summary.goldfish.drop_fraction()},
                           {"drop_fraction_eligible", summary.goldfish.drop_fraction_eligible()}};
    std::vector<size_t> monitor_subset;
    if (p.monitor) {
        const int64_t M = static_cast<int64_t>(examples.size());
        int64_t z = p.monitor_samples > 0 ? std::min(p.monitor_samples, M)
                                          : (M > 10 ? stats::min_subset_size(M, 10, 0.05) : M);
        monitor_subset = epoch_order(examples.size(), p.seed ^ 0x9e3779b97f4a7c15ull, -1);
        monitor_subset.resize(static_cast<size_t>(z));
        std::sort(monitor_subset.begin(), monitor_subset.end());
        summary.monitor_samples = z;
    }

    int64_t tokens_done = 0;
    const double start_s = elapsed();
    const int64_t first_step = step;
    net.train();
    while (step < total_steps) {
        const int64_t epoch = step / steps_per_epoch;
        const auto order = epoch_order(examples.size(), p.seed, epoch);
        GoldfishCounts epoch_goldfish;  // over the samples this process trains in the epoch
        for (int64_t k = step % steps_per_epoch; k < steps_per_epoch; ++k, ++step) {
            const double lr = lr_at(p, step, total_steps);
            for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
            optimizer.zero_grad();
            // Micro-batches of this step, and their token count for a token-weighted mean.
            std::vector<std::vector<const Example*>> micro;
            int64_t step_tokens = 0;  // in the loss (Goldfish: kept tokens)
            GoldfishCounts step_goldfish;
            for (size_t m = k * p.grad_accum; m < std::min<size_t>((k + 1) * p.grad_accum, n_micro); ++m) {
                std::vector<const Example*> b;
                for (size_t i = m * p.batch_size; i < std::min<size_t>((m + 1) * p.batch_size, order.size()); ++i) {
                    b.push_back(&examples[order[i]]);
                    step_tokens += examples[order[i]].kept();
                    step_goldfish += examples[order[i]].goldfish;
                    tokens_done += static_cast<int64_t>(examples[order[i]].prompt.size() + examples[order[i]].target.size());
                }
                micro.push_back(std::move(b));
            }
            // This rank's part of each micro-batch (all of it for one process),
            // and per micro-batch the loss sum and token count: [2 * M].
            std::vector<double> micro_loss(2 * micro.size(), 0.0);
            for (size_t m = 0; m < micro.size(); ++m) {
                const size_t B = micro[m].size();
                const size_t lo = B * static_cast<size_t>(rank) / static_cast<size_t>(world);
                const size_t hi = B * static_cast<size_t>(rank + 1) / static_cast<size_t>(world);
                if (lo == hi) continue;
                const std::vector<const Example*> mine(micro[m].begin() + static_cast<std::ptrdiff_t>(lo),
                                                       micro[m].begin() + static_cast<std::ptrdiff_t>(hi));
                torch::manual_seed(p.seed * 1000003ull + static_cast<uint64_t>(step) * 131ull + m +
                                   (world > 1 ? static_cast<uint64_t>(rank) * 0x9e3779b9ull : 0ull));
                auto [loss_sum, n] = batch_loss(net, mine);
                if (n == 0) continue;  // Goldfish dropped every token of it (possible with h = 1)
                (loss_sum / static_cast<double>(step_tokens)).backward();
                micro_loss[2 * m] = loss_sum.item<double>();
                micro_loss[2 * m + 1] = static_cast<double>(n);
            }
            // Ranks: the one-process gradients and losses (sums over the ranks' slices).
            masters.gradients_to_masters();
            if (world > 1) allreduce_gradients(group, trained, micro_loss);
            double step_loss = 0.0;
            for (size_t m = 0; m < micro.size(); ++m) {
                if (micro_loss[2 * m + 1] == 0) continue;
                step_loss += micro_loss[2 * m];
            }
            epoch_goldfish += step_goldfish;
            // A step without a token in the loss (Goldfish only) has loss 0
            // and no gradient; the optimizer still counts the step.
            if (step_tokens > 0) step_loss /= static_cast<double>(step_tokens);
            if (!std::isfinite(step_loss))
                throw InvalidInput(fmt::format("training diverged at step {} (loss {})", step + 1, step_loss),
                                   "lower the learning rate");
            if (p.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(trained, p.max_grad_norm);
            optimizer.step();
            masters.masters_to_params();
            const int64_t done = step + 1;
            TrainerLogEntry e;
            e.step = done;
            e.epoch = static_cast<double>(done) / steps_per_epoch;
            // A step without a token in the loss logs no loss (it would pull
            // the epoch's mean towards 0).
            if (step_tokens > 0) e.values["loss"] = step_loss;
            // As Hugging Face's Trainer logs it: after the scheduler's step,
            // i.e. the rate the next step will use.
            e.values["learning_rate"] = lr_at(p, done, total_steps);
            if (goldfish) e.values["goldfish_drop_fraction"] = step_goldfish.drop_fraction();
            log.push_back(e);
            if (progress && rank == 0) {
                TrainProgress pr;
                pr.step = done;
                pr.total_steps = total_steps;
                pr.epoch = e.epoch;
                pr.loss = step_loss;
                pr.lr = lr;
                const double s = elapsed() - start_s;
                pr.tokens_per_s = s > 0 ? tokens_done / s : 0.0;
                pr.eta_s = done > first_step ? s / (done - first_step) * (total_steps - done) : 0.0;
                progress(pr);
            }
            const bool epoch_end = k + 1 == steps_per_epoch;
            if ((p.save_steps > 0 && done % p.save_steps == 0) || epoch_end) {
                net.eval();
                // The epoch's mean step loss so far, kept in the log entry of
                // the checkpoint's step (an extra numeric key, as Trainer's
                // log_history allows).
                const CheckpointLoss loss = checkpoint_loss(log, done, e.epoch);
                if (loss.mean) log.back().values["train_loss_epoch_mean"] = *loss.mean;
                const std::string dir = fmt::format("{}/checkpoint-{}", p.out_dir, done);
                // Rank 0 writes; the others wait, and stop with its error.
                group.from_root([&] {
                    write_checkpoint(model, p, dir, done, e.epoch, total_steps, log, optimizer, settings, masters,
                                     goldfish_record);
                    return std::string();
                });
                summary.last_checkpoint = dir;
                if (epoch_end) {
                    EpochRecord rec;
                    rec.epoch = epoch + 1;
                    rec.step = done;
                    rec.loss = loss.mean.value_or(0.0);
                    rec.checkpoint = dir;
                    if (goldfish) {
                        rec.goldfish_drop_fraction = epoch_goldfish.drop_fraction();
                        rec.goldfish_drop_fraction_eligible = epoch_goldfish.drop_fraction_eligible();
                    }
                    if (p.monitor) {
                        // Rank 0 measures (the ranks' models are the same); every rank gets the values.
                        const auto measured = nlohmann::json::parse(group.from_root([&] {
                            return nlohmann::json(monitor_n_pre(model, examples, monitor_subset)).dump();
                        }));
                        const auto n_pre = measured.get<std::vector<double>>();
                        rec.monitor_max_n_pre = static_cast<int64_t>(*std::max_element(n_pre.begin(), n_pre.end()));
                        rec.monitor_p99_n_pre = stats::quantile(n_pre, 0.99);
                    }
                    summary.epochs.push_back(rec);
                    if (p.monitor && p.stop_when_max_npre > 0 && *rec.monitor_max_n_pre >= p.stop_when_max_npre) {
                        summary.stopped_by_monitor = true;
                        step = done;
                        net.train();
                        goto finished;
                    }
                }
                net.train();
            }
        }
    }
finished:
    net.eval();
    if (p.mode == TrainMode::kFull)
        for (auto& prm : net.parameters()) prm.set_requires_grad(false);
    summary.steps = step;
    summary.tokens = tokens_done;
    summary.seconds = elapsed();
    return summary;
}

}  // namespace memskew
