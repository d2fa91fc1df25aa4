// The SFT trainer (src/train/trainer.cpp) on tiny random Llamas and a small
// JSONL written here: LoRA touches only the adapter, merge == on the fly, a
// checkpoint loaded as `memskew probe` loads it == the trainer's model at that
// step, resume == uninterrupted, seeds, clear errors, and the learning-rate
// schedules against Hugging Face's formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memskew/adapter.h"
#include "memskew/error.h"
#include "memskew/trainer-state.h"
#include "memskew/probe.h"
#include "memskew/store.h"
#include "memskew/file-io.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"
#include "model/model-impl.h"
#include "test-util.h"

using namespace memskew;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny_config(int64_t dim = 32) {
    ModelConfig c;
    c.dim = dim;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn_dim = 64;
    c.max_ctx = 128;
    return c;
}

std::shared_ptr<Model> tiny_model(uint64_t seed = 7, int64_t dim = 32) {
    return Model::random_llama(tiny_config(dim), make_byte_vocab(), seed, {}, 0.02);
}

// A tiny base model saved as GGUF and loaded back, so checkpoints name a base
// path and `memskew probe`-style loading (Model::load(base)) is possible.
std::string tiny_gguf(uint64_t seed = 7, int64_t dim = 32) {
    const std::string path = test::temp_dir() + fmt::format("/tiny-{}-{}.gguf", seed, dim);
    tiny_model(seed, dim)->save_gguf(path);
    return path;
}

// n question/answer samples with distinct text (byte tokens: prompt ~25, answer ~30).
std::string write_qa(int n) {
    static const char* colours[] = {"red", "green", "blue", "amber", "violet", "grey", "white", "black"};
    const std::string path = test::temp_dir() + fmt::format("/qa-{}.jsonl", n);
    std::ofstream f(path);
    for (int i = 0; i < n; ++i)
        f << fmt::format(R"({{"id": "s{}", "question": "What is item {}?", "answer": "Item {} is {} and weighs {} g."}})",
                         i, i, i, colours[i % 8], 10 + 7 * i)
          << "\n";
    return path;
}

TrainParams lora_params(const std::string& data, const std::string& out) {
    TrainParams p;
    p.data_path = data;
    p.mode = TrainMode::kLora;
    p.lora.r = 4;
    p.lora.lora_alpha = 8;
    p.lora.lora_dropout = 0.0;
    p.lora.target_modules = {"q_proj", "v_proj", "down_proj"};
    p.epochs = 2;
    p.batch_size = 4;
    p.lr = 5e-3;
    p.seed = 11;
    p.out_dir = out;
    return p;
}

std::map<std::string, torch::Tensor> snapshot(const Model& m) {
    std::map<std::string, torch::Tensor> out;
    for (const auto& item : model_impl(m).net->named_parameters()) out[item.key()] = item.value().detach().clone();
    return out;
}

double max_param_diff(const Model& a, const Model& b) {
    auto sa = snapshot(a), sb = snapshot(b);
    EXPECT_EQ(sa.size(), sb.size());
    double d = 0;
    for (const auto& [k, v] : sa) {
        auto it = sb.find(k);
        EXPECT_NE(it, sb.end()) << k;
        if (it == sb.end()) continue;
        d = std::max(d, (v.to(torch::kDouble) - it->second.to(torch::kDouble)).abs().max().item<double>());
    }
    return d;
}

const std::vector<std::vector<int32_t>> kProbeInput = {{256, 87, 104, 97, 116, 32, 105, 115, 32, 105, 116, 101, 109, 32, 51, 63},
                                                       {256, 73, 116, 101, 109, 32, 49}};

std::vector<float> logits(const Model& model) {
    Engine e(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &model));
    auto rows = e.last_logits(kProbeInput);
    std::vector<float> out;
    for (auto& r : rows) out.insert(out.end(), r.begin(), r.end());
    return out;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double d = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
    return d;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        const char* kind = dynamic_cast<const InvalidInput*>(&e) ? "InvalidInput"
                           : dynamic_cast<const FormatError*>(&e) ? "FormatError"
                           : dynamic_cast<const IoError*>(&e)     ? "IoError"
                                                                  : "Error";
        return std::string(kind) + ": " + e.message() + " | hint: " + e.hint();
    }
    return "(no error)";
}

std::vector<TrainerLogEntry> log_of(const std::string& checkpoint) { return load_trainer_state(checkpoint).log_history; }

}  // namespace

TEST(Train, LoraChangesOnlyAdapterTensors) {
    auto m = tiny_model();
    const auto before = snapshot(*m);
    auto fresh = tiny_model();  // the same fresh adapter (same seed): A's initial values
    attach_lora(*fresh, lora_params("", "").lora, 11, true);
    const auto init = snapshot(*fresh);

    const auto s = train_model(*m, lora_params(write_qa(16), test::temp_dir() + "/out"));
    EXPECT_EQ(s.steps, 8);
    EXPECT_EQ(s.n_samples, 16);
    ASSERT_EQ(s.epochs.size(), 2u);
    EXPECT_LT(s.epochs[1].loss, s.epochs[0].loss);

    const auto after = snapshot(*m);
    int n_base = 0, n_lora = 0;
    for (const auto& [name, t] : after) {
        if (name.find(".lora_") != std::string::npos) {
            ++n_lora;
            ASSERT_TRUE(init.count(name)) << name;
            EXPECT_FALSE(torch::equal(t, init.at(name))) << name << " did not train";
            continue;
        }
        ++n_base;
        ASSERT_TRUE(before.count(name)) << name;
        EXPECT_TRUE(torch::equal(t, before.at(name))) << "base weight " << name << " changed";
        EXPECT_FALSE(t.requires_grad()) << name;
    }
    EXPECT_EQ(n_lora, 2 * 3 * 2);  // A and B of q, v, down in 2 layers
    EXPECT_EQ(n_base, static_cast<int>(before.size()));
}

TEST(Train, MergedAdapterGivesTheLogitsOfTheAdapterOnTheFly) {
    auto m = tiny_model();
    train_model(*m, lora_params(write_qa(16), test::temp_dir() + "/out"));
    const auto on_the_fly = logits(*m);
    const auto base = logits(*tiny_model());
    EXPECT_GT(max_diff(on_the_fly, base), 1e-3) << "the adapter should matter";
    merge_adapter(*m);
    EXPECT_FALSE(attached_adapter(*m).has_value());
    const double d = max_diff(logits(*m), on_the_fly);
    std::printf("merge vs on the fly: max |logit diff| = %.3g\n", d);
    EXPECT_LE(d, 1e-4);
}

// The training loss a checkpoint records and `memskew probe` stores with its
// run: the mean of the step losses of the checkpoint's epoch up to its step
// (all of the epoch at its end, the steps so far mid-epoch), and the last
// step's. The expected values are computed here from the per-step losses in
// the last checkpoint's trainer_state.json, read as plain JSON.
TEST(Train, CheckpointsRecordTheEpochMeanTrainingLoss) {
    const std::string base = tiny_gguf();
    const std::string data = write_qa(16);  // 4 steps per epoch at batch 4
    TrainParams p = lora_params(data, test::temp_dir() + "/epoch-loss");
    p.save_steps = 3;  // checkpoints 3 (mid-epoch 1), 4, 6 (mid-epoch 2), 8
    auto m = Model::load(base);
    const TrainSummary s = train_model(*m, p);
    ASSERT_EQ(s.steps, 8);
    ASSERT_EQ(s.epochs.size(), 2u);

    std::map<int64_t, double> step_loss;
    const auto state = nlohmann::json::parse(read_text_file(p.out_dir + "/checkpoint-8/trainer_state.json"));
    for (const auto& e : state["log_history"]) step_loss[e["step"].get<int64_t>()] = e["loss"].get<double>();
    ASSERT_EQ(step_loss.size(), 8u);
    // By hand: epoch 1 is steps 1-4, epoch 2 steps 5-8.
    const double l1 = step_loss[1], l2 = step_loss[2], l3 = step_loss[3], l4 = step_loss[4];
    const double l5 = step_loss[5], l6 = step_loss[6], l7 = step_loss[7], l8 = step_loss[8];
    const std::map<int64_t, double> mean = {{3, (l1 + l2 + l3) / 3},
                                            {4, (l1 + l2 + l3 + l4) / 4},
                                            {6, (l5 + l6) / 2},
                                            {8, (l5 + l6 + l7 + l8) / 4}};
    EXPECT_NE(mean.at(8), l8);  // the mean is not the last step's loss
    auto near = [](double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(b)); };
    EXPECT_TRUE(near(s.epochs[0].loss, mean.at(4))) << s.epochs[0].loss;
    EXPECT_TRUE(near(s.epochs[1].loss, mean.at(8))) << s.epochs[1].loss;

    for (const auto& [step, expected] : mean) {
        SCOPED_TRACE(step);
        const std::string ck = p.out_dir + "/checkpoint-" + std::to_string(step);
        const auto j = nlohmann::json::parse(read_text_file(ck + "/memskew-train.json"));
        ASSERT_TRUE(j.contains("train_loss"));
        EXPECT_TRUE(near(j["train_loss"].get<double>(), expected)) << j.dump();
        EXPECT_EQ(j["train_loss_last_step"].get<double>(), step_loss[step]);
        EXPECT_EQ(j["train_loss_steps"]["first"], step <= 4 ? 1 : 5);
        EXPECT_EQ(j["train_loss_steps"]["count"], step - (step <= 4 ? 0 : 4));
        // trainer_state.json: the mean in the checkpoint step's own entry.
        const auto ts = nlohmann::json::parse(read_text_file(ck + "/trainer_state.json"));
        ASSERT_FALSE(ts["log_history"].empty());
        const auto& last = ts["log_history"].back();
        EXPECT_EQ(last["step"], step);
        EXPECT_TRUE(near(last["train_loss_epoch_mean"].get<double>(), expected)) << last.dump();
        EXPECT_FALSE(ts.contains("train_loss"));  // only TrainerState's own keys at the top
    }

    // What `memskew probe --adapter OUT` stores with each checkpoint's run.
    ProbeParams pp;
    pp.model_path = base;
    pp.data_path = data;
    pp.data.limit = 2;
    pp.out_path = test::temp_dir() + "/epoch-loss.db";
    pp.adapters = {p.out_dir};
    run_probes(pp);
    const auto runs = ResultReader::open(pp.out_path).runs();
    ASSERT_EQ(runs.size(), 4u);
    for (const auto& run : runs) {
        ASSERT_TRUE(run.spec.checkpoint_step.has_value());
        const int64_t step = *run.spec.checkpoint_step;
        SCOPED_TRACE(step);
        ASSERT_TRUE(mean.count(step));
        ASSERT_TRUE(run.spec.train_loss.has_value());
        EXPECT_TRUE(near(*run.spec.train_loss, mean.at(step))) << *run.spec.train_loss;
        EXPECT_EQ(run.spec.train_loss_last_step, step_loss[step]);
    }
    fs::remove_all(p.out_dir);
}

TEST(Train, CheckpointsLoadedAsProbeLoadsThemMatchTheTrainer) {
    const std::string base = tiny_gguf();
    const std::string data = write_qa(16);
    for (const TrainMode mode : {TrainMode::kLora, TrainMode::kFull}) {
        SCOPED_TRACE(mode == TrainMode::kLora ? "lora" : "full");
        auto m = Model::load(base);
        TrainParams p = lora_params(data, test::temp_dir() + "/out");
        p.mode = mode;
        p.lr = mode == TrainMode::kLora ? 5e-3 : 1e-3;
        p.epochs = 3;
        // The weights of step k are final when progress(k) is called; checkpoint-k is written right after.
        std::map<int64_t, std::vector<float>> at_step;
        const auto s = train_model(*m, p, [&](const TrainProgress& pr) {
            if (pr.step % 4 == 0) at_step[pr.step] = logits(*m);
        });
        const auto cps = list_checkpoints(p.out_dir);
        ASSERT_EQ(cps.size(), 3u);
        ASSERT_EQ(at_step.size(), 3u);
        EXPECT_EQ(s.last_checkpoint, cps.back());
        // What `memskew probe --adapter OUT` would run.
        const auto targets = expand_probe_targets(base, {p.out_dir});
        ASSERT_EQ(targets.size(), 3u);
        int64_t i = 0;
        for (const auto& [step, expected] : at_step) {
            const auto& t = targets[static_cast<size_t>(i++)];
            ASSERT_TRUE(t.checkpoint_step.has_value());
            EXPECT_EQ(*t.checkpoint_step, step);
            ASSERT_TRUE(t.train_loss.has_value());
            std::shared_ptr<Model> loaded;
            if (mode == TrainMode::kLora) {
                EXPECT_EQ(t.model_path, base);
                EXPECT_FALSE(t.adapter_path.empty());
                loaded = Model::load(base);
                load_adapter(*loaded, t.adapter_path);
            } else {
                EXPECT_TRUE(t.adapter_path.empty());
                loaded = Model::load(t.model_path);
            }
            const double d = max_diff(logits(*loaded), expected);
            std::printf("%s checkpoint-%lld vs trainer: max |logit diff| = %.3g\n",
                        mode == TrainMode::kLora ? "lora" : "full", static_cast<long long>(step), d);
            EXPECT_LE(d, 1e-5) << t.label;
        }
        // The final in-memory model too.
        EXPECT_LE(max_diff(logits(*m), at_step.rbegin()->second), 1e-6);
        fs::remove_all(p.out_dir);
    }
}

// Full bf16 training keeps fp32 master weights: with a learning rate whose
// updates are far below bf16's resolution, pure bf16 weights would not move,
// but the masters accumulate the updates (Adam's first steps move each weight
// by about lr), the bf16 weights are the masters rounded, and a resume from
// the checkpoint (masters saved beside it) follows the uninterrupted run.
TEST(Train, Bf16FullTrainingKeepsFp32MasterWeights) {
    const std::string base = tiny_gguf();
    const std::string data = write_qa(14);  // 4 steps per epoch at batch 4
    TrainParams p = lora_params(data, test::temp_dir() + "/bf16-master");
    p.mode = TrainMode::kFull;
    p.schedule = LrSchedule::kConstant;
    p.lr = 1e-6;
    p.epochs = 2;
    auto init = Model::load(base, LoadParams{DType::kBF16, 0});
    auto m = Model::load(base, LoadParams{DType::kBF16, 0});
    train_model(*m, p);
    const auto ckpts = list_checkpoints(p.out_dir);
    ASSERT_EQ(ckpts.size(), 2u);
    const std::string master_path = ckpts.back() + "/master_weights.pt";
    ASSERT_TRUE(fs::exists(master_path));
    std::vector<torch::Tensor> masters;
    torch::load(masters, master_path);
    const auto params = model_impl(*m).net->parameters();
    const auto init_params = model_impl(*init).net->parameters();
    ASSERT_EQ(masters.size(), params.size());
    double max_move = 0;
    for (size_t i = 0; i < masters.size(); ++i) {
        ASSERT_EQ(masters[i].scalar_type(), torch::kFloat);
        // The bf16 weight is its master rounded.
        EXPECT_TRUE(torch::equal(masters[i].to(torch::kBFloat16), params[i])) << i;
        max_move = std::max(max_move, (masters[i] - init_params[i].to(torch::kFloat)).abs().max().item<double>());
    }
    const double steps = 8;
    std::printf("bf16 full, lr %.0e, %g steps: max |master - initial weight| = %.3g\n", p.lr, steps, max_move);
    EXPECT_GT(max_move, 0.5 * steps * p.lr);
    EXPECT_LT(max_move, 2.0 * steps * p.lr);

    // Resume after the first epoch equals the uninterrupted run.
    const std::string first = ckpts.front();
    const std::string resumed_dir = test::temp_dir() + "/bf16-master-resumed";
    fs::create_directories(resumed_dir);
    fs::copy(first, resumed_dir + "/" + fs::path(first).filename().string(), fs::copy_options::recursive);
    TrainParams r = p;
    r.out_dir = resumed_dir;
    r.resume = true;
    auto m2 = Model::load(base, LoadParams{DType::kBF16, 0});
    train_model(*m2, r);
    EXPECT_EQ(max_param_diff(*m, *m2), 0.0);
    std::vector<torch::Tensor> masters2;
    torch::load(masters2, list_checkpoints(resumed_dir).back() + "/master_weights.pt");
    for (size_t i = 0; i < masters.size(); ++i) EXPECT_TRUE(torch::equal(masters[i], masters2[i])) << i;
    fs::remove_all(p.out_dir);
    fs::remove_all(resumed_dir);
}

// Resuming with settings that change the trajectory is refused, naming them.
TEST(Train, ResumeWithOtherSettingsIsRefused) {
    const std::string base = tiny_gguf();
    const std::string data = write_qa(14);
    TrainParams p = lora_params(data, test::temp_dir() + "/settings");
    p.epochs = 1;
    {
        auto m = Model::load(base);
        train_model(*m, p);
    }
    TrainParams q = p;
    q.resume = true;
    q.epochs = 2;
    q.batch_size = p.batch_size + 1;
    q.seed = p.seed + 1;
    auto m = Model::load(base);
    try {
        train_model(*m, q);
        FAIL() << "resume with another batch size and seed was accepted";
    } catch (const InvalidInput& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("cannot resume from"), std::string::npos) << msg;
        EXPECT_NE(msg.find(fmt::format("batch_size ({} vs {})", p.batch_size, q.batch_size)), std::string::npos) << msg;
        EXPECT_NE(msg.find(fmt::format("seed ({} vs {})", p.seed, q.seed)), std::string::npos) << msg;
        EXPECT_EQ(msg.find("lr ("), std::string::npos) << msg;
    }
    // The same settings with more epochs resume.
    TrainParams r = p;
    r.resume = true;
    r.epochs = 2;
    auto m2 = Model::load(base);
    EXPECT_EQ(train_model(*m2, r).steps, 2 * ((14 + p.batch_size - 1) / p.batch_size));
    fs::remove_all(p.out_dir);
}

TEST(Train, ResumeFollowsTheUninterruptedRun) {
    const std::string base = tiny_gguf();
    const std::string data = write_qa(14);  // 4 micro-batches of 4, 4, 4, 2
    for (const TrainMode mode : {TrainMode::kLora, TrainMode::kFull}) {
        SCOPED_TRACE(mode == TrainMode::kLora ? "lora" : "full");
        TrainParams p = lora_params(data, "");
        p.mode = mode;
        p.lora.lora_dropout = 0.1;  // exercises the RNG reseeding
        p.epochs = 3;
        p.warmup_steps = 2;
        p.weight_decay = 0.01;
        p.schedule = LrSchedule::kCosine;
        p.lr = mode == TrainMode::kLora ? 5e-3 : 1e-3;
        const int64_t spe = 4;

        // Uninterrupted.
        auto a = Model::load(base);
        p.out_dir = test::temp_dir() + "/uninterrupted";
        train_model(*a, p);
        const auto log_a = log_of(list_checkpoints(p.out_dir).back());
        ASSERT_EQ(log_a.size(), 12u);

        // Interrupted one step after the epoch-2 checkpoint (a crash), then --resume.
        p.out_dir = test::temp_dir() + "/interrupted";
        {
            auto b = Model::load(base);
            EXPECT_THROW(train_model(*b, p, [&](const TrainProgress& pr) {
                if (pr.step == 2 * spe + 1) throw std::runtime_error("simulated crash");
            }), std::runtime_error);
        }
        ASSERT_EQ(list_checkpoints(p.out_dir).size(), 2u);
        auto b = Model::load(base);
        p.resume = true;
        const auto s = train_model(*b, p);
        p.resume = false;
        EXPECT_EQ(s.steps, 12);
        ASSERT_EQ(s.epochs.size(), 1u);
        EXPECT_EQ(s.epochs[0].epoch, 3);
        const auto log_b = log_of(list_checkpoints(p.out_dir).back());
        ASSERT_EQ(log_b.size(), log_a.size());
        double loss_diff = 0;
        for (size_t i = 0; i < log_a.size(); ++i) {
            EXPECT_EQ(log_a[i].step, log_b[i].step);
            EXPECT_DOUBLE_EQ(*log_a[i].learning_rate(), *log_b[i].learning_rate());
            loss_diff = std::max(loss_diff, std::fabs(*log_a[i].loss() - *log_b[i].loss()));
        }
        const double w_diff = max_param_diff(*a, *b);
        std::printf("%s resume after a crash: max |loss diff| = %.3g, max |weight diff| = %.3g\n",
                    mode == TrainMode::kLora ? "lora" : "full", loss_diff, w_diff);
        EXPECT_LE(loss_diff, 1e-6);
        EXPECT_LE(w_diff, 1e-5);

        // --epochs 2, then --resume --epochs 3. The schedule depends on the
        // total number of steps (as in Hugging Face's Trainer), so this is
        // only the same run for a constant schedule without warmup.
        p.schedule = LrSchedule::kConstant;
        p.warmup_steps = 0;
        auto c = Model::load(base);
        p.out_dir = test::temp_dir() + "/constant-3";
        train_model(*c, p);
        const auto log_c = log_of(list_checkpoints(p.out_dir).back());
        p.out_dir = test::temp_dir() + "/constant-2-3";
        p.epochs = 2;
        {
            auto d = Model::load(base);
            train_model(*d, p);
        }
        auto d = Model::load(base);
        p.epochs = 3;
        p.resume = true;
        train_model(*d, p);
        const auto log_d = log_of(list_checkpoints(p.out_dir).back());
        ASSERT_EQ(log_d.size(), log_c.size());
        loss_diff = 0;
        for (size_t i = 0; i < log_c.size(); ++i) {
            EXPECT_EQ(log_c[i].step, log_d[i].step);
            loss_diff = std::max(loss_diff, std::fabs(*log_c[i].loss() - *log_d[i].loss()));
        }
        const double w_diff2 = max_param_diff(*c, *d);
        std::printf("%s --epochs 2 then --resume --epochs 3 (constant lr): max |loss diff| = %.3g, "
                    "max |weight diff| = %.3g\n",
                    mode == TrainMode::kLora ? "lora" : "full", loss_diff, w_diff2);
        EXPECT_LE(loss_diff, 1e-6);
        EXPECT_LE(w_diff2, 1e-5);
    }
}

TEST(Train, SameSeedSameResultOtherSeedOtherResult) {
    const std::string data = write_qa(16);
    auto run = [&](uint64_t seed, const std::string& name) {
        auto m = tiny_model();
        TrainParams p = lora_params(data, test::temp_dir() + "/" + name);
        p.lora.lora_dropout = 0.1;
        p.seed = seed;
        const auto s = train_model(*m, p);
        return std::make_pair(m, s);
    };
    auto [a, sa] = run(5, "a");
    auto [b, sb] = run(5, "b");
    auto [c, sc] = run(6, "c");
    const double same = max_param_diff(*a, *b), other = max_param_diff(*a, *c);
    std::printf("same seed: max |weight diff| = %.3g; other seed: %.3g\n", same, other);
    EXPECT_EQ(same, 0.0);
    EXPECT_EQ(sa.epochs[1].loss, sb.epochs[1].loss);
    EXPECT_GT(other, 1e-4);
    EXPECT_NE(sa.epochs[1].loss, sc.epochs[1].loss);
}

TEST(Train, BadInputGivesClearErrors) {
    const std::string dir = test::temp_dir();
    // No usable sample: every prompt is longer than the context (128 byte tokens).
    {
        const std::string path = dir + "/too-long.jsonl";
        std::ofstream f(path);
        for (int i = 0; i < 3; ++i)
            f << fmt::format(R"({{"id": "{}", "question": "{}", "answer": "yes"}})", i, std::string(200, 'a' + i)) << "\n";
        f.close();
        auto m = tiny_model();
        const std::string err = error_of([&] { train_model(*m, lora_params(path, dir + "/o1")); });
        EXPECT_NE(err.find("no sample is left to use"), std::string::npos) << err;
        EXPECT_NE(err.find("too-long.jsonl"), std::string::npos) << err;
    }
    // An empty file.
    {
        const std::string path = dir + "/empty.jsonl";
        std::ofstream(path).close();
        auto m = tiny_model();
        const std::string err = error_of([&] { train_model(*m, lora_params(path, dir + "/o2")); });
        EXPECT_NE(err, "(no error)");
        EXPECT_NE(err.find("empty.jsonl"), std::string::npos) << err;
    }
    const std::string data = write_qa(8);
    // A LoRA target that names no module.
    {
        auto m = tiny_model();
        TrainParams p = lora_params(data, dir + "/o3");
        p.lora.target_modules = {"q_proj", "qkv_proj"};
        const std::string err = error_of([&] { train_model(*m, p); });
        EXPECT_EQ(err.rfind("InvalidInput", 0), 0u) << err;
        EXPECT_NE(err.find("qkv_proj"), std::string::npos) << err;
        EXPECT_FALSE(attached_adapter(*m).has_value());
    }
    // A shape that does not fit (what --init passes to random_llama).
    {
        ModelConfig c = tiny_config();
        c.dim = 30;  // 4 heads do not divide 30
        const std::string err = error_of([&] { Model::random_llama(c, make_byte_vocab(), 1); });
        EXPECT_EQ(err.rfind("InvalidInput", 0), 0u) << err;
        EXPECT_NE(err.find("head"), std::string::npos) << err;
    }
    // Parameters out of range.
    {
        auto m = tiny_model();
        TrainParams p = lora_params(data, dir + "/o4");
        p.lr = 0;
        EXPECT_NE(error_of([&] { train_model(*m, p); }).find("learning rate"), std::string::npos);
        p = lora_params(data, "");
        EXPECT_NE(error_of([&] { train_model(*m, p); }).find("output folder"), std::string::npos);
    }
    // --resume from checkpoints of another base model (another shape).
    {
        auto m = tiny_model(7, 32);
        TrainParams p = lora_params(data, dir + "/o5");
        p.epochs = 1;
        train_model(*m, p);
        auto other = tiny_model(7, 48);
        p.epochs = 2;
        p.resume = true;
        const std::string err = error_of([&] { train_model(*other, p); });
        EXPECT_EQ(err.rfind("FormatError", 0), 0u) << err;
        EXPECT_NE(err.find("another base model"), std::string::npos) << err;
        EXPECT_NE(err.find("checkpoint-2"), std::string::npos) << err;
    }
    // --resume --mode full from LoRA checkpoints.
    {
        auto m = tiny_model(7, 32);
        TrainParams p = lora_params(data, dir + "/o5");
        p.mode = TrainMode::kFull;
        p.epochs = 2;
        p.resume = true;
        const std::string err = error_of([&] { train_model(*m, p); });
        EXPECT_EQ(err.rfind("InvalidInput", 0), 0u) << err;
        EXPECT_NE(err.find("written by --mode lora training, this run is --mode full"), std::string::npos) << err;
    }
}

TEST(Train, LearningRateSchedulesAreThoseOfHuggingFace) {
    const std::string data = write_qa(20);
    // Hugging Face's lr_lambda(current_step) for get_{cosine,linear,constant}_schedule_with_warmup,
    // written out here; step k (1-based) of the run uses lr_lambda(k - 1), and
    // the Trainer's log entry of step k holds lr_lambda(k) (it logs after
    // lr_scheduler.step(), the rate of the next step).
    auto hf = [](LrSchedule s, int64_t step, int64_t warmup, int64_t total) -> double {
        if (step < warmup) return static_cast<double>(step) / std::max<int64_t>(1, warmup);
        if (s == LrSchedule::kConstant) return 1.0;
        if (s == LrSchedule::kLinear)
            return std::max(0.0, static_cast<double>(total - step) / std::max<int64_t>(1, total - warmup));
        const double progress = static_cast<double>(step - warmup) / std::max<int64_t>(1, total - warmup);
        return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 0.5 * 2.0 * progress)));
    };
    for (const LrSchedule sched : {LrSchedule::kCosine, LrSchedule::kLinear, LrSchedule::kConstant}) {
        for (const int64_t warmup : {0, 5}) {
            auto m = tiny_model();
            TrainParams p = lora_params(data, test::temp_dir() + fmt::format("/lr-{}-{}", int(sched), warmup));
            p.batch_size = 2;  // 10 steps per epoch
            p.epochs = 2;
            p.warmup_steps = warmup;
            p.schedule = sched;
            p.lr = 3e-3;
            std::vector<double> seen;
            train_model(*m, p, [&](const TrainProgress& pr) { seen.push_back(pr.lr); });
            const auto log = log_of(list_checkpoints(p.out_dir).back());
            ASSERT_EQ(log.size(), 20u);
            ASSERT_EQ(seen.size(), 20u);
            for (const auto& e : log) {
                const double used = p.lr * hf(sched, e.step - 1, warmup, 20);
                const double logged = p.lr * hf(sched, e.step, warmup, 20);
                EXPECT_NEAR(*e.learning_rate(), logged, 1e-12) << "schedule " << int(sched) << " warmup " << warmup
                                                               << " step " << e.step;
                EXPECT_NEAR(seen[static_cast<size_t>(e.step - 1)], used, 1e-12);
            }
        }
    }
    // Spot values: cosine, warmup 5 of 20: step 3 -> 2/5 lr; step 13 -> lr/2 (halfway through the decay).
    EXPECT_DOUBLE_EQ(hf(LrSchedule::kCosine, 2, 5, 20), 0.4);
    EXPECT_NEAR(hf(LrSchedule::kCosine, 12, 5, 20), 0.5 * (1 + std::cos(M_PI * 7.0 / 15.0)), 1e-15);
    EXPECT_NEAR(hf(LrSchedule::kLinear, 12, 5, 20), 8.0 / 15.0, 1e-15);
    EXPECT_EQ(parse_lr_schedule("linear"), LrSchedule::kLinear);
    EXPECT_NE(error_of([] { parse_lr_schedule("step"); }).find("unknown learning-rate schedule"), std::string::npos);
}
