// The device-generic path (what `--device cuda` runs) against the fused CPU
// kernels, and the device option's checks.
//
// On a GPU every layer takes the plain LibTorch expressions:
// kernels::supported() is false for non-CPU tensors. kernels::set_fused_enabled(false)
// makes the CPU take exactly those expressions, so this machine checks, without
// a GPU, the code a GPU runs: batch buffers, masks, the KV cache, index
// tensors, the copy of the logits back for the per-token statistics, LoRA's
// dropout mask and the training loss (LibTorch's cross-entropy instead of the
// fused one). Compared through the public Engine: teacher-forced scores
// (log-probabilities, argmax, n_pre, embeddings) and greedy generation
// (tokens, log-probabilities); and the gradients of the training loss, LoRA
// (with dropout) and full, plus one epoch of train_model().
//
// Tolerances (fp32 throughout). The two paths compute the same formulas in
// fp32 and differ only in summation order, exp's last ulp and where the
// attention scale goes (the scores or q: exact for the power-of-two head dim
// here), as tests/model/test-kernels bounds per layer. Through a two-layer
// model with weights ~ N(0, 0.5) (peaked distributions: no near-ties in the
// argmax, so argmax, n_pre and the generated tokens must agree exactly) that
// stays below 1e-4 nats in a log-probability and 1e-5 in a unit-length
// embedding. Gradients are compared relative to the largest gradient entry:
// 1e-4 (fp32's 2^-24 times the depth of the sums and the backward chain).
// The epoch's mean loss agrees to 1e-5 relative. Each check prints its maximum
// difference.
//
// With a CUDA LibTorch and a visible GPU, CudaMatchesTheFusedCpuPath runs the
// same comparisons for --device cuda against the CPU (looser: TF32/cuBLAS
// summation orders); here it skips.
#include <gtest/gtest.h>

#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "memskew/adapter.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"
#include "model/cpu-kernels.h"
#include "model/model-impl.h"
#include "test-util.h"

namespace memskew {
namespace {

// Sets the fused kernels on or off for one scope.
class FusedKernels {
public:
    explicit FusedKernels(bool on) : saved_(kernels::fused_enabled()) { kernels::set_fused_enabled(on); }
    ~FusedKernels() { kernels::set_fused_enabled(saved_); }

private:
    bool saved_;
};

ModelConfig config() {
    ModelConfig c = test::tiny_llama_config(96);  // dim 32, 2 layers, 4 heads over 2 KV heads: head dim 8
    c.ffn_dim = 80;
    return c;
}

std::shared_ptr<Model> model(const std::string& device = "cpu") {
    LoadParams lp;
    lp.device = device;
    return Model::random_llama(config(), make_byte_vocab(), 21, lp, /*init_std=*/0.5);
}

std::vector<int32_t> random_ids(std::mt19937& rng, size_t n) {
    std::uniform_int_distribution<int32_t> d(0, 255);
    std::vector<int32_t> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Prompts of 1..21 tokens and references of 4..33, so batches are padded
// and the last layer's tail skips different prefixes.
std::vector<ScoreRequest> score_batch() {
    std::mt19937 rng(5);
    std::vector<ScoreRequest> b;
    for (size_t i = 0; i < 7; ++i) b.push_back({random_ids(rng, 1 + 3 * i), random_ids(rng, 4 + (11 * i) % 30)});
    return b;
}

std::vector<GenerateRequest> generate_batch() {
    std::mt19937 rng(9);
    std::vector<GenerateRequest> b;
    for (size_t i = 0; i < 4; ++i) b.push_back({random_ids(rng, 2 + 5 * i), {}, static_cast<int32_t>(10 + 6 * i)});
    return b;
}

struct Outputs {
    std::vector<TokenScores> scores;
    std::vector<GenerateResult> generated;
};

Outputs run(const std::shared_ptr<Model>& m) {
    Engine e(m);
    ScoreParams sp;
    sp.embeddings = true;
    sp.chunk_rows = 16;  // several output-projection chunks per batch
    GenerateParams gp;
    gp.stop_at_eos = false;
    return {e.score(score_batch(), sp), e.generate(generate_batch(), gp)};
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double d = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
    return d;
}

// Compares two runs; `what` names them in the output.
void expect_same_run(const Outputs& a, const Outputs& b, const char* what, double logprob_tol, double embedding_tol) {
    ASSERT_EQ(a.scores.size(), b.scores.size());
    double d_logprob = 0, d_entropy = 0, d_embedding = 0, d_gen = 0;
    for (size_t i = 0; i < a.scores.size(); ++i) {
        const TokenScores &x = a.scores[i], &y = b.scores[i];
        EXPECT_EQ(x.argmax, y.argmax) << "sample " << i;
        EXPECT_EQ(x.n_pre, y.n_pre) << "sample " << i;
        d_logprob = std::max(d_logprob, max_abs_diff(x.logprob, y.logprob));
        d_entropy = std::max(d_entropy, max_abs_diff(x.entropy, y.entropy));
        d_embedding = std::max({d_embedding, max_abs_diff(x.prompt_embedding, y.prompt_embedding),
                                max_abs_diff(x.full_embedding, y.full_embedding)});
    }
    ASSERT_EQ(a.generated.size(), b.generated.size());
    size_t n_tokens = 0;
    for (size_t i = 0; i < a.generated.size(); ++i) {
        EXPECT_EQ(a.generated[i].tokens, b.generated[i].tokens) << "sequence " << i;
        d_gen = std::max(d_gen, max_abs_diff(a.generated[i].logprobs, b.generated[i].logprobs));
        n_tokens += a.generated[i].tokens.size();
    }
    std::printf("%s: max |d logprob| %.3g, |d entropy| %.3g, |d embedding| %.3g; %zu generated tokens, "
                "max |d logprob| %.3g\n",
                what, d_logprob, d_entropy, d_embedding, n_tokens, d_gen);
    EXPECT_LT(d_logprob, logprob_tol);
    EXPECT_LT(d_entropy, logprob_tol);
    EXPECT_LT(d_embedding, embedding_tol);
    EXPECT_LT(d_gen, logprob_tol);
}

// The training loss as the trainer computes it (src/train/trainer.cpp,
// batch_loss): right-padded prompt ‖ target[:-1], the last layer from the
// first target row on, cross-entropy summed over the target tokens (the fused
// kernel where kernels::supported(), LibTorch's elsewhere); then its
// gradients, by parameter name. Dropout draws reseeded, as the trainer does.
std::pair<double, std::map<std::string, torch::Tensor>> loss_gradients(Model& m) {
    auto& net = *model_impl(m).net;
    std::mt19937 rng(13);
    std::vector<int64_t> prompt_lens, target_lens, targets;
    std::vector<std::vector<int32_t>> seqs;
    int64_t T = 1;
    for (size_t i = 0; i < 5; ++i) {
        auto p = random_ids(rng, 3 + 4 * i), t = random_ids(rng, 6 + (7 * i) % 15);
        prompt_lens.push_back(static_cast<int64_t>(p.size()));
        target_lens.push_back(static_cast<int64_t>(t.size()));
        targets.insert(targets.end(), t.begin(), t.end());
        p.insert(p.end(), t.begin(), t.end() - 1);
        T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
        seqs.push_back(std::move(p));
    }
    const int64_t B = static_cast<int64_t>(seqs.size());
    auto ids = torch::zeros({B, T}, torch::kLong);
    for (int64_t b = 0; b < B; ++b)
        for (size_t t = 0; t < seqs[b].size(); ++t) ids[b][static_cast<int64_t>(t)] = seqs[b][t];
    auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
    const ReferenceRows rr = reference_rows(prompt_lens, target_lens, T);
    net.train();
    torch::manual_seed(99);
    auto h = net.forward_hidden_tail(ids, pos, rr.first).reshape({B * rr.kept, -1});  // [B*kept, D]
    auto logits = net.project(h.index_select(0, torch::tensor(rr.rows, torch::kLong)));  // [N, V]
    const auto target_t = torch::tensor(targets, torch::kLong);
    auto loss = kernels::supported(logits)
                    ? kernels::cross_entropy_sum(logits, target_t)
                    : torch::nn::functional::cross_entropy(
                          logits.to(torch::kFloat), target_t,
                          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    loss.backward();
    net.eval();
    std::map<std::string, torch::Tensor> grads;
    for (auto& item : net.named_parameters()) {
        if (!item.value().requires_grad()) continue;
        grads[item.key()] = item.value().grad().detach().clone();
        item.value().mutable_grad().reset();
    }
    return {loss.item<double>(), grads};
}

// Both paths' gradients on two copies of one model; prepare() makes a copy trainable.
void expect_same_gradients(const char* what, const std::function<void(Model&)>& prepare) {
    auto fused_model = model(), generic_model = model();
    prepare(*fused_model);
    prepare(*generic_model);
    auto [fused_loss, fused] = loss_gradients(*fused_model);
    std::pair<double, std::map<std::string, torch::Tensor>> generic;
    {
        FusedKernels off(false);
        generic = loss_gradients(*generic_model);
    }
    ASSERT_FALSE(fused.empty());
    ASSERT_EQ(fused.size(), generic.second.size());
    double scale = 0, d = 0;
    std::string worst;
    for (const auto& [name, g] : fused) {
        ASSERT_TRUE(generic.second.count(name)) << name;
        scale = std::max(scale, g.abs().max().item<double>());
        const double di = (g - generic.second.at(name)).abs().max().item<double>();
        if (di > d) d = di, worst = name;
    }
    const double d_loss = std::fabs(fused_loss - generic.first) / std::fabs(fused_loss);
    std::printf("%s: %zu tensors, loss %.6f vs %.6f (relative %.3g); max |d grad| %.3g of max |grad| %.3g "
                "(relative %.3g, %s)\n",
                what, fused.size(), fused_loss, generic.first, d_loss, d, scale, d / scale, worst.c_str());
    EXPECT_LT(d_loss, 1e-5);
    EXPECT_GT(scale, 0.0);
    EXPECT_LT(d / scale, 1e-4);
}

}  // namespace

TEST(Device, GenericPathMatchesTheFusedKernelsInTheEngine) {
    ASSERT_TRUE(kernels::fused_enabled());  // the default (MEMSKEW_GENERIC_KERNELS unset)
    auto m = model();
    const Outputs fused = run(m);
    Outputs generic;
    {
        FusedKernels off(false);
        EXPECT_FALSE(kernels::supported(torch::zeros({2, 2})));
        generic = run(m);
    }
    EXPECT_TRUE(kernels::supported(torch::zeros({2, 2})));  // restored
    expect_same_run(fused, generic, "engine, generic vs fused (CPU, fp32)", 1e-4, 1e-5);

    // n_pre > 0: references that are the greedy continuations, every other
    // one with a token changed halfway (n_pre stops there).
    std::vector<ScoreRequest> greedy;
    const auto prompts = generate_batch();
    for (size_t i = 0; i < prompts.size(); ++i) {
        auto ref = fused.generated[i].tokens;
        if (i % 2 == 1) ref[ref.size() / 2] = (ref[ref.size() / 2] + 1) % 256;
        greedy.push_back({prompts[i].prompt, ref});
    }
    const auto fused_greedy = Engine(m).score(greedy);
    std::vector<TokenScores> generic_greedy;
    {
        FusedKernels off(false);
        generic_greedy = Engine(m).score(greedy);
    }
    std::string n_pres;
    for (size_t i = 0; i < greedy.size(); ++i) {
        EXPECT_EQ(fused_greedy[i].n_pre, generic_greedy[i].n_pre) << "sample " << i;
        EXPECT_EQ(fused_greedy[i].argmax, generic_greedy[i].argmax) << "sample " << i;
        const size_t L = greedy[i].reference.size();
        EXPECT_EQ(static_cast<size_t>(fused_greedy[i].n_pre), i % 2 == 1 ? L / 2 : L) << "sample " << i;
        n_pres += fmt::format("{}{}/{}", i ? ", " : "", generic_greedy[i].n_pre, L);
    }
    std::printf("greedy references, n_pre (generic path): %s; max |d logprob| %.3g\n", n_pres.c_str(),
                [&] {
                    double d = 0;
                    for (size_t i = 0; i < greedy.size(); ++i)
                        d = std::max(d, max_abs_diff(fused_greedy[i].logprob, generic_greedy[i].logprob));
                    return d;
                }());
}

TEST(Device, GenericPathMatchesTheFusedKernelsInLoraGradients) {
    PeftConfig cfg;
    cfg.r = 4;
    cfg.lora_alpha = 8;
    cfg.lora_dropout = 0.1;  // the fused kernel and dropout_mask draw the same mask from one generator state
    cfg.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    expect_same_gradients("LoRA gradients (dropout 0.1), generic vs fused", [&](Model& m) {
        attach_lora(m, cfg, 3, /*trainable=*/true);
        torch::NoGradGuard no_grad;  // a trained B: fresh adapters have B = 0 and A's gradient would vanish
        torch::manual_seed(31);      // the same B in both copies
        for (const auto& item : model_impl(m).net->named_parameters())
            if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.3);
    });
}

TEST(Device, GenericPathMatchesTheFusedKernelsInFullGradients) {
    expect_same_gradients("full gradients, generic vs fused", [](Model& m) {
        for (auto& p : model_impl(m).net->parameters()) p.set_requires_grad(true);
    });
}

TEST(Device, GenericPathTrainsAsTheFusedOne) {
    // One epoch of train_model() each way: the trainer's own loss (the fused
    // cross-entropy, or LibTorch's) and LoRA step.
    const std::string dir = test::temp_dir() + "/device-train";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string data = dir + "/qa.jsonl";
    {
        std::ofstream f(data);
        for (int i = 0; i < 6; ++i)
            f << fmt::format(R"({{"question": "What is item {}?", "answer": "Item {} weighs {} g."}})", i, i,
                             10 + 7 * i)
              << "\n";
    }
    auto epoch_loss = [&](bool fused, const std::string& out) {
        FusedKernels k(fused);
        auto m = Model::random_llama(config(), make_byte_vocab(), 4, {}, 0.02);
        TrainParams p;
        p.data_path = data;
        p.mode = TrainMode::kLora;
        p.lora.r = 4;
        p.lora.lora_alpha = 8;
        p.lora.lora_dropout = 0.1;
        p.lora.target_modules = {"q_proj", "v_proj", "down_proj"};
        p.epochs = 1;
        p.batch_size = 2;
        p.lr = 1e-3;
        p.seed = 17;
        p.out_dir = out;
        const TrainSummary s = train_model(*m, p);
        EXPECT_EQ(s.epochs.size(), 1u);
        return s.epochs.empty() ? 0.0 : s.epochs.back().loss;
    };
    const double fused = epoch_loss(true, dir + "/fused"), generic = epoch_loss(false, dir + "/generic");
    const double rel = std::fabs(fused - generic) / std::fabs(fused);
    std::printf("train_model, one LoRA epoch: loss %.7f (fused) vs %.7f (generic), relative difference %.3g\n", fused,
                generic, rel);
    EXPECT_LT(rel, 1e-5);
}

TEST(Device, ParseDeviceAcceptsCpuAndCudaSpellingsOnly) {
    EXPECT_EQ(parse_device("cpu"), "cpu");
    for (const char* bad : {"gpu", "cuda:x", "cuda:-1", "cuda:", "CUDA", "cuda0", " cuda", "cuda:0 ", "cpu:0", "",
                            "mps", "cuda:1:2", "cuda:+1"}) {
        SCOPED_TRACE(bad);
        test::expect_error<InvalidInput>([&] { parse_device(bad); }, {"unknown device"}, "cpu, cuda");
    }
}

TEST(Device, CudaWithoutCudaIsRefusedWithAHint) {
    if (torch::cuda::is_available()) {
        EXPECT_EQ(parse_device("cuda"), "cuda:0");
        const auto n = static_cast<int64_t>(torch::cuda::device_count());
        test::expect_error<InvalidInput>([&] { parse_device(fmt::format("cuda:{}", n)); }, {"visible GPU"});
        GTEST_SKIP() << "this LibTorch has CUDA: the CPU-only refusal cannot be checked here";
    }
    for (const char* d : {"cuda", "cuda:0", "cuda:3"}) {
        SCOPED_TRACE(d);
        test::expect_error<InvalidInput>([&] { parse_device(d); },
                                         {fmt::format("--device {}: this LibTorch build has no CUDA", d),
                                          "no GPU is visible"},
                                         "CUDA LibTorch");
    }
    // Checked before any work: before the weights (or a missing file) are looked at.
    LoadParams lp;
    lp.device = "cuda";
    test::expect_error<InvalidInput>([&] { Model::load("/no/such/model.gguf", lp); }, {"no CUDA"});
    test::expect_error<InvalidInput>([&] { Model::random_llama(config(), make_byte_vocab(), 1, lp); }, {"no CUDA"});
}

TEST(Device, ModelReportsItsDevice) {
    EXPECT_EQ(model()->device(), "cpu");
    EXPECT_EQ(model_impl(*model()).net->device(), torch::Device(torch::kCPU));
}

TEST(Device, CudaMatchesTheFusedCpuPath) {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA in this LibTorch build (or no visible GPU)";
    auto gpu = model("cuda");
    EXPECT_EQ(gpu->device(), "cuda:0");
    EXPECT_TRUE(model_impl(*gpu).net->device().is_cuda());
    // cuBLAS may use other summation orders (and TF32 where enabled): looser than the CPU-only comparison.
    expect_same_run(run(model()), run(gpu), "engine, cuda vs fused CPU (fp32)", 2e-3, 1e-4);
}

}  // namespace memskew
