// LoRA adapters (PEFT format): the forward pass against hand-computed values,
// merge vs on the fly, save/load round trip, PEFT key names, clear errors for
// mismatched adapters and targets, and probing a folder of Trainer checkpoints.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "memskew/adapter.h"
#include "memskew/error.h"
#include "memskew/peft-config.h"
#include "memskew/trainer-state.h"
#include "memskew/probe.h"
#include "memskew/safetensors.h"
#include "memskew/store.h"
#include "model/lora.h"
#include "model/model-impl.h"
#include "test-util.h"

using namespace memskew;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny_config(int64_t n_layers = 2, int64_t dim = 32) {
    ModelConfig c;
    c.dim = dim;
    c.n_layers = n_layers;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn_dim = 64;
    c.max_ctx = 64;
    return c;
}

std::shared_ptr<Model> tiny_model(uint64_t seed = 7, int64_t n_layers = 2, int64_t dim = 32) {
    return Model::random_llama(tiny_config(n_layers, dim), make_byte_vocab(), seed, {}, 0.2);
}

PeftConfig lora_config(std::vector<std::string> targets = {"q_proj", "v_proj"}, int64_t r = 4, double alpha = 8) {
    PeftConfig c;
    c.r = r;
    c.lora_alpha = alpha;
    c.target_modules = std::move(targets);
    c.base_model_name_or_path = "tiny";
    return c;
}

// B of a fresh adapter is zero; give it random values so the adapter matters.
void randomize_b(Model& model, uint64_t seed, double std = 0.2) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (const auto& [name, lin] : linear_modules(*model_impl(model).net))
        if (lin->has_lora()) lin->lora_B->weight.normal_(0.0, std);
}

std::vector<float> logits(const Model& model) {
    Engine e(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &model));
    return e.last_logits({{1, 72, 101, 108, 108, 111, 32, 119}}).front();
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
        return e.message() + " | hint: " + e.hint();
    }
    return "(no error)";
}

}  // namespace

TEST(Lora, ForwardMatchesHandComputedValues) {
    // W = [[1, 2, 3], [4, 5, 6]], A = [[1, 0, -1]], B = [[1], [2]], r = 1, alpha = 2,
    // x = [1, 1, 2]:  W x = [9, 21], A x = -1, B A x * alpha/r = [-2, -4]  ->  [7, 17];
    // merged: W + B A * 2 = [[3, 2, 1], [8, 5, 2]].
    for (const bool conv1d : {false, true}) {
        Linear lin(3, 2, /*bias=*/false, conv1d);
        torch::NoGradGuard no_grad;
        auto w = torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).view({2, 3});
        lin->weight.copy_(conv1d ? w.t() : w);
        lin->attach_lora(1, 2.0);
        EXPECT_DOUBLE_EQ(lin->lora_scaling, 2.0);
        lin->lora_A->weight.copy_(torch::tensor({1.f, 0.f, -1.f}).view({1, 3}));
        lin->lora_B->weight.copy_(torch::tensor({1.f, 2.f}).view({2, 1}));
        auto y = lin->forward(torch::tensor({1.f, 1.f, 2.f}).view({1, 3}));
        EXPECT_FLOAT_EQ(y[0][0].item<float>(), 7.f) << "conv1d " << conv1d;
        EXPECT_FLOAT_EQ(y[0][1].item<float>(), 17.f) << "conv1d " << conv1d;
        // The merged weight gives the same output; the adapter is gone.
        lin->merge_lora();
        EXPECT_FALSE(lin->has_lora());
        auto merged = conv1d ? lin->weight.t() : lin->weight;
        EXPECT_TRUE(torch::equal(merged, torch::tensor({3.f, 2.f, 1.f, 8.f, 5.f, 2.f}).view({2, 3})))
            << merged;
        y = lin->forward(torch::tensor({1.f, 1.f, 2.f}).view({1, 3}));
        EXPECT_FLOAT_EQ(y[0][0].item<float>(), 7.f);
        EXPECT_FLOAT_EQ(y[0][1].item<float>(), 17.f);
    }
    // rsLoRA scales by alpha / sqrt(r).
    Linear lin(3, 2, false);
    lin->attach_lora(4, 8.0, 0.0, /*use_rslora=*/true);
    EXPECT_DOUBLE_EQ(lin->lora_scaling, 4.0);
    lin->attach_lora(4, 8.0);
    EXPECT_DOUBLE_EQ(lin->lora_scaling, 2.0);
    lin->detach_lora();
    EXPECT_EQ(lin->named_parameters().size(), 1u);
}

TEST(Lora, ParameterNamesAreThoseOfPeft) {
    auto m = tiny_model();
    const auto info = attach_lora(*m, lora_config(), 1, /*trainable=*/true);
    EXPECT_EQ(info.lora_modules.size(), 4u);  // q_proj, v_proj of 2 layers
    std::vector<std::string> trainable;
    for (const auto& [name, t] : trainable_parameters(*model_impl(*m).net)) trainable.push_back(name);
    EXPECT_EQ(trainable, (std::vector<std::string>{
                             "model.layers.0.self_attn.q_proj.lora_A.weight",
                             "model.layers.0.self_attn.q_proj.lora_B.weight",
                             "model.layers.0.self_attn.v_proj.lora_A.weight",
                             "model.layers.0.self_attn.v_proj.lora_B.weight",
                             "model.layers.1.self_attn.q_proj.lora_A.weight",
                             "model.layers.1.self_attn.q_proj.lora_B.weight",
                             "model.layers.1.self_attn.v_proj.lora_A.weight",
                             "model.layers.1.self_attn.v_proj.lora_B.weight",
                         }));
    // q_proj: A [4, 32] + B [32, 4]; v_proj (2 KV heads): A [4, 32] + B [16, 4]; 2 layers.
    EXPECT_EQ(info.n_lora_parameters, 2 * (256 + 192));
    const std::string dir = test::temp_dir() + "/adapter";
    save_adapter(*m, dir, lora_config());
    auto st = SafetensorsFile::open(dir + "/adapter_model.safetensors");
    EXPECT_TRUE(st->contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    EXPECT_TRUE(st->contains("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
    EXPECT_EQ(st->tensors().size(), 8u);
    EXPECT_EQ(st->tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").shape,
              (std::vector<int64_t>{4, 32}));
    EXPECT_EQ(st->tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape,
              (std::vector<int64_t>{16, 4}));
    EXPECT_EQ(st->metadata().at("format"), "pt");
    EXPECT_EQ(peft_lora_key("model.layers.0.self_attn.q_proj", 'A'),
              "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    const PeftConfig back = load_peft_config(dir);
    EXPECT_EQ(back.r, 4);
    EXPECT_EQ(back.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
}

TEST(Lora, FreshAdapterChangesNothingAndUnloadRestores) {
    auto m = tiny_model();
    const auto before = logits(*m);
    attach_lora(*m, lora_config({"q_proj", "k_proj", "v_proj", "o_proj"}), 3);
    EXPECT_EQ(max_diff(before, logits(*m)), 0.0);  // B = 0
    randomize_b(*m, 4);
    EXPECT_GT(max_diff(before, logits(*m)), 1e-3);
    unload_adapter(*m);
    EXPECT_EQ(max_diff(before, logits(*m)), 0.0);
    EXPECT_FALSE(attached_adapter(*m));
}

TEST(Lora, MergedEqualsOnTheFly) {
    for (const char* target : {"q_proj", "all-linear"}) {
        auto m = tiny_model();
        PeftConfig cfg = lora_config({target}, 8, 16);
        if (std::string(target) == "all-linear") {
            cfg.target_modules.clear();
            cfg.all_linear = true;
        }
        const auto info = attach_lora(*m, cfg, 5);
        if (cfg.all_linear) {
            EXPECT_EQ(info.lora_modules.size(), 14u);  // 7 per layer, lm_head left out
        }
        randomize_b(*m, 6);
        const auto fly = logits(*m);
        merge_adapter(*m);
        EXPECT_FALSE(attached_adapter(*m));
        const auto merged = logits(*m);
        const double d = max_diff(fly, merged);
        std::printf("[ info ] %s: merged vs on-the-fly logits max |diff| = %.3g\n", target, d);
        EXPECT_LE(d, 1e-4);
    }
}

TEST(Lora, SaveLoadRoundTripGivesIdenticalLogits) {
    auto m = tiny_model();
    PeftConfig cfg = lora_config({"q_proj", "v_proj", "down_proj"}, 4, 8);
    cfg.rank_pattern["down_proj"] = 2;
    cfg.alpha_pattern["down_proj"] = 3;
    cfg.modules_to_save = {"lm_head"};
    attach_lora(*m, cfg, 11);
    randomize_b(*m, 12);
    {
        torch::NoGradGuard no_grad;  // a "trained" lm_head
        auto& net = *model_impl(*m).net;
        for (auto& item : net.named_parameters())
            if (item.key() == "lm_head.weight") item.value().add_(0.05);
    }
    const auto want = logits(*m);
    const std::string dir = test::temp_dir() + "/rt";
    save_adapter(*m, dir, cfg);
    unload_adapter(*m);
    const auto base = logits(*m);
    EXPECT_GT(max_diff(base, want), 1e-3);

    auto fresh = tiny_model();  // same seed: the same base weights
    EXPECT_EQ(max_diff(base, logits(*fresh)), 0.0);
    const AdapterInfo info = load_adapter(*fresh, dir);
    EXPECT_EQ(info.lora_modules.size(), 6u);
    EXPECT_EQ(info.replaced_parameters, (std::vector<std::string>{"lm_head.weight"}));
    EXPECT_EQ(info.fingerprint, adapter_fingerprint(dir));
    EXPECT_EQ(max_diff(want, logits(*fresh)), 0.0);
    // Loaded adapters are frozen; loading for training makes them trainable.
    EXPECT_TRUE(trainable_parameters(*model_impl(*fresh).net).empty());
    EXPECT_NE(error_of([&] { load_adapter(*fresh, dir); }).find("already has an adapter"), std::string::npos);
    unload_adapter(*fresh);
    EXPECT_EQ(max_diff(base, logits(*fresh)), 0.0);  // lm_head restored
    load_adapter(*fresh, dir, AdapterLoadParams{true});
    EXPECT_EQ(trainable_parameters(*model_impl(*fresh).net).size(), 13u);  // 6 x (A, B) + lm_head
}

TEST(Lora, AdapterForAnotherBaseModelIsRejected) {
    auto big = tiny_model(7, /*n_layers=*/3);
    attach_lora(*big, lora_config(), 1);
    const std::string deep = test::temp_dir() + "/deep";
    save_adapter(*big, deep, lora_config());
    auto wide = tiny_model(7, 2, /*dim=*/64);
    attach_lora(*wide, lora_config(), 1);
    const std::string wide_dir = test::temp_dir() + "/wide";
    save_adapter(*wide, wide_dir, lora_config());

    auto m = tiny_model();
    const auto base = logits(*m);
    std::string e = error_of([&] { load_adapter(*m, deep); });
    EXPECT_NE(e.find("adapter tensor 'base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight' names module "
                     "'model.layers.2.self_attn.q_proj' that the model does not have — is this adapter for another "
                     "base model?"),
              std::string::npos)
        << e;
    e = error_of([&] { load_adapter(*m, wide_dir); });
    EXPECT_NE(e.find("has shape [4, 64] but module 'model.layers.0.self_attn.q_proj' expects [4, 32]"),
              std::string::npos)
        << e;
    try {
        load_adapter(*m, wide_dir);
        FAIL();
    } catch (const FormatError&) {
    }
    // Nothing was attached by the failed loads.
    EXPECT_FALSE(attached_adapter(*m));
    EXPECT_EQ(max_diff(base, logits(*m)), 0.0);

    // r in the config disagrees with the tensors.
    PeftConfig lying = lora_config();
    lying.r = 8;
    save_peft_config(lying, deep + "/adapter_config.json");
    auto deep_model = tiny_model(7, 3);
    e = error_of([&] { load_adapter(*deep_model, deep); });
    EXPECT_NE(e.find("expects [8, 32] (r = 8"), std::string::npos) << e;

    // Not LoRA.
    const std::string ia3 = test::temp_dir() + "/ia3";
    fs::create_directories(ia3);
    std::ofstream(ia3 + "/adapter_config.json") << R"({"peft_type": "IA3", "target_modules": ["k_proj"]})";
    try {
        load_adapter(*m, ia3);
        FAIL();
    } catch (const FormatError& err) {
        EXPECT_NE(std::string(err.what()).find("unsupported peft_type 'IA3'"), std::string::npos) << err.what();
    }
    // Missing folder.
    EXPECT_THROW(load_adapter(*m, test::temp_dir() + "/nope"), IoError);
}

TEST(Lora, TargetNamingNoModuleIsRejected) {
    auto m = tiny_model();
    try {
        attach_lora(*m, lora_config({"q_proj", "query_key_value"}), 1);
        FAIL();
    } catch (const InvalidInput& e) {
        EXPECT_NE(e.message().find("'query_key_value' names no module"), std::string::npos) << e.message();
        EXPECT_NE(e.hint().find("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head"),
                  std::string::npos)
            << e.hint();
    }
    PeftConfig re = lora_config({});
    re.target_modules_regex = R"(.*\.attention\.dense)";
    EXPECT_NE(error_of([&] { attach_lora(*m, re, 1); }).find("selects no module"), std::string::npos);
    EXPECT_NE(error_of([&] { attach_lora(*m, lora_config({"embed_tokens"}), 1); }).find("not a linear layer"),
              std::string::npos);
    EXPECT_FALSE(attached_adapter(*m));
    // A regex and layers_to_transform as PEFT reads them.
    re.target_modules_regex = R"(.*\.layers\.1\.self_attn\.(q|k)_proj)";
    EXPECT_EQ(lora_target_modules(*m, re),
              (std::vector<std::string>{"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj"}));
    PeftConfig layers = lora_config({"o_proj"});
    layers.layers_to_transform = {0};
    EXPECT_EQ(lora_target_modules(*m, layers), (std::vector<std::string>{"model.layers.0.self_attn.o_proj"}));
}

TEST(Lora, ProbeOverTrainerCheckpoints) {
    const std::string dir = test::temp_dir();
    const std::string model_path = dir + "/base.gguf";
    tiny_model()->save_gguf(model_path);
    const std::string data = dir + "/data.jsonl";
    {
        std::ofstream out(data);
        out << R"({"id": "a", "prompt": "Hello", "completion": " world"})" << "\n";
        out << R"({"id": "b", "prompt": "The cat", "completion": " sat on the mat"})" << "\n";
        out << R"({"id": "c", "prompt": "One two", "completion": " three four"})" << "\n";
    }
    // output/checkpoint-20 and output/checkpoint-100 (numeric order, not lexical).
    const std::string output = dir + "/output";
    const std::vector<std::tuple<int64_t, double, double>> ckpts = {{100, 2.0, 1.25}, {20, 1.0, 2.5}};
    for (const auto& [step, epoch, loss] : ckpts) {
        auto m = Model::load(model_path);
        attach_lora(*m, lora_config(), step);
        randomize_b(*m, step, 0.5);
        const std::string ck = output + "/checkpoint-" + std::to_string(step);
        save_adapter(*m, ck, lora_config());
        TrainerState st;
        st.global_step = step;
        st.epoch = epoch;
        for (int64_t s = 10; s <= step; s += 10) {
            TrainerLogEntry e;
            e.step = s;
            e.epoch = epoch * s / step;
            e.values["loss"] = s == step ? loss : 9.0;
            e.values["learning_rate"] = 1e-4;
            st.log_history.push_back(e);
        }
        TrainerLogEntry eval;  // evaluation entries carry no "loss"
        eval.step = step;
        eval.epoch = epoch;
        eval.values["eval_loss"] = 3.0;
        st.log_history.push_back(eval);
        save_trainer_state(st, ck + "/trainer_state.json");
    }
    const auto targets = expand_probe_targets(model_path, {output});
    ASSERT_EQ(targets.size(), 2u);
    EXPECT_EQ(targets[0].label, "checkpoint-20");
    EXPECT_EQ(targets[1].label, "checkpoint-100");

    ProbeParams p;
    p.model_path = model_path;
    p.data_path = data;
    p.out_path = dir + "/runs.db";
    p.adapters = {output};
    const auto summaries = run_probes(p);
    ASSERT_EQ(summaries.size(), 2u);
    auto r = ResultReader::open(p.out_path);
    const auto runs = r.runs();
    ASSERT_EQ(runs.size(), 2u);
    // The training loss of each checkpoint: the mean of the losses logged in
    // its epoch, epoch e covering (e - 1, e], and the last logged one.
    // checkpoint-20 (epoch 1.0): steps 10 (epoch 0.5, 9.0) and 20 (2.5).
    EXPECT_EQ(runs[0].spec.checkpoint_step, 20);
    EXPECT_EQ(runs[0].spec.checkpoint_epoch, 1);
    EXPECT_EQ(runs[0].spec.train_loss, (9.0 + 2.5) / 2);
    EXPECT_EQ(runs[0].spec.train_loss_last_step, 2.5);
    // checkpoint-100 (epoch 2.0): step s at epoch s / 50, so epoch 2 is steps
    // 60..100 (step 50 is epoch 1.0): four at 9.0 and 1.25.
    EXPECT_EQ(runs[1].spec.checkpoint_step, 100);
    EXPECT_EQ(runs[1].spec.checkpoint_epoch, 2);
    EXPECT_DOUBLE_EQ(*runs[1].spec.train_loss, (4 * 9.0 + 1.25) / 5);
    EXPECT_EQ(runs[1].spec.train_loss_last_step, 1.25);
    for (const auto& run : runs) {
        EXPECT_EQ(run.status, RunStatus::kDone);
        EXPECT_EQ(run.n_samples, 3);
        EXPECT_EQ(run.spec.model_path, model_path);
        EXPECT_EQ(run.spec.adapter_fingerprint, adapter_fingerprint(run.spec.adapter_path));
    }
    EXPECT_EQ(fs::path(runs[0].spec.adapter_path).filename(), "checkpoint-20");
    EXPECT_NE(runs[0].spec.adapter_fingerprint, runs[1].spec.adapter_fingerprint);
    // The adapters matter: per-token log-probs differ between the checkpoints.
    const auto s0 = r.load_samples(runs[0].run_id), s1 = r.load_samples(runs[1].run_id);
    ASSERT_EQ(s0.size(), 3u);
    EXPECT_NE(s0[0].tokens->logprob, s1[0].tokens->logprob);

    // Resuming skips both finished runs; a third checkpoint resumes into the same store.
    p.resume = true;
    for (const auto& s : run_probes(p)) {
        EXPECT_EQ(s.n_probed, 0);
        EXPECT_EQ(s.n_already_done, 3);
    }
    // Adapter folders named one by one (a file inside one names its folder).
    ProbeParams q = p;
    q.resume = false;
    q.out_path = dir + "/plain.db";
    q.adapters = {output + "/checkpoint-20/adapter_config.json", output + "/checkpoint-100"};
    EXPECT_EQ(run_probes(q).size(), 2u);
    EXPECT_THROW(run_probe(q), InvalidInput);
    q.adapters = {dir + "/nothing-here"};
    EXPECT_THROW(run_probes(q), IoError);
    fs::create_directories(dir + "/empty");
    q.adapters = {dir + "/empty"};
    EXPECT_THROW(run_probes(q), InvalidInput);
}

TEST(Lora, ProbeFullModelCheckpointBesideAdapters) {
    // A checkpoint that is a whole model (full fine-tuning, or a merged
    // adapter) is probed as a model of its own.
    const std::string dir = test::temp_dir();
    const std::string model_path = dir + "/base.gguf";
    tiny_model()->save_gguf(model_path);
    const std::string data = dir + "/data.jsonl";
    std::ofstream(data) << R"({"id": "a", "prompt": "Hello", "completion": " world"})" << "\n";
    const std::string output = dir + "/output";
    {
        auto m = Model::load(model_path);
        attach_lora(*m, lora_config(), 1);
        randomize_b(*m, 2, 0.5);
        save_adapter(*m, output + "/checkpoint-5", lora_config());
        merge_adapter(*m);
        m->save_hf(output + "/checkpoint-9");
    }
    TrainerState st;
    st.global_step = 9;
    st.epoch = 3.0;
    save_trainer_state(st, output + "/checkpoint-9/trainer_state.json");
    const auto targets = expand_probe_targets(model_path, {output});
    ASSERT_EQ(targets.size(), 2u);
    EXPECT_EQ(targets[0].adapter_path, output + "/checkpoint-5");
    EXPECT_EQ(targets[0].checkpoint_step, 5);  // from the folder name: no trainer_state.json
    EXPECT_EQ(targets[1].model_path, output + "/checkpoint-9");
    EXPECT_TRUE(targets[1].adapter_path.empty());
    ProbeParams p;
    p.model_path = model_path;
    p.data_path = data;
    p.out_path = dir + "/runs.db";
    p.adapters = {output};
    const auto s = run_probes(p);
    ASSERT_EQ(s.size(), 2u);
    auto r = ResultReader::open(p.out_path);
    const auto runs = r.runs();
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[1].spec.checkpoint_step, 9);
    EXPECT_EQ(runs[1].spec.checkpoint_epoch, 3);
    // The merged model scores as the adapter on the fly.
    const auto a = r.load_samples(runs[0].run_id), b = r.load_samples(runs[1].run_id);
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(b.size(), 1u);
    for (size_t j = 0; j < a[0].tokens->logprob.size(); ++j)
        EXPECT_NEAR(a[0].tokens->logprob[j], b[0].tokens->logprob[j], 1e-4);
}
