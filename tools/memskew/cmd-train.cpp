#include <fmt/format.h>
#include <unistd.h>

#include <sstream>

#include "cli.h"
#include "memskew/error.h"
#include "memskew/goldfish.h"
#include "memskew/process-group.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"

namespace memskew::cli {

namespace {

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

}  // namespace

void register_train(CLI::App& app, Action& action) {
    struct Opts {
        ModelOptions model;
        DatasetOptions data;
        DistCliOptions dist;
        std::string init, out, mode = "lora", targets = "q_proj,k_proj,v_proj,o_proj", schedule = "cosine";
        uint64_t seed = 42;
        int64_t epochs = 3, batch_size = 8, grad_accum = 1, warmup = 0, save_steps = 0, lora_r = 8,
                monitor_samples = 0, stop_max_npre = 0, goldfish_k = 0, goldfish_h = 13;
        double lr = 2e-4, weight_decay = 0.0, clip = 1.0, lora_alpha = 16, lora_dropout = 0.05;
        bool resume = false, monitor = false, quiet = false, json = false, no_eos = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("train", "Fine-tune a model (LoRA or full) with a checkpoint per epoch");
    cmd->footer("Example: memskew train -m model.gguf -d train.jsonl --template alpaca --epochs 3 -o out/");
    cmd->add_option("--model,-m", o->model.model, "Base model (GGUF file or Hugging Face folder)");
    cmd->add_option("--init", o->init, "Train from random initialisation: dim=,layers=,heads=,kv_heads=,ffn=,ctx= "
                                       "(byte-level tokenizer)");
    cmd->add_option("--dtype", o->model.dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "fp32", "bf16", "bfloat16"}));
    cmd->add_option("--threads", o->model.threads, "CPU threads (0: all cores)");
    cmd->add_option("--device", o->model.device, "cpu, cuda or cuda:N (needs a CUDA LibTorch build)");
    o->data.add_to(cmd);
    o->dist.add_to(cmd);
    cmd->add_option("--out,-o", o->out, "Folder for checkpoint-<step> folders")->required();
    cmd->add_flag("--no-eos", o->no_eos, "Do not train an EOS token after each reference");
    cmd->add_option("--mode", o->mode, "lora or full")->check(CLI::IsMember({"lora", "full"}));
    cmd->add_option("--lora-r", o->lora_r, "LoRA rank")->check(CLI::PositiveNumber);
    cmd->add_option("--lora-alpha", o->lora_alpha, "LoRA alpha");
    cmd->add_option("--lora-dropout", o->lora_dropout, "LoRA dropout")->check(CLI::Range(0.0, 0.99));
    cmd->add_option("--lora-targets", o->targets, "Comma-separated module names (q_proj,...) or all-linear");
    cmd->add_option("--epochs", o->epochs, "Epochs")->check(CLI::PositiveNumber);
    cmd->add_option("--batch-size", o->batch_size, "Samples per micro-batch")->check(CLI::PositiveNumber);
    cmd->add_option("--grad-accum", o->grad_accum, "Micro-batches per optimizer step")->check(CLI::PositiveNumber);
    cmd->add_option("--lr", o->lr, "Peak learning rate")->check(CLI::PositiveNumber);
    cmd->add_option("--weight-decay", o->weight_decay, "AdamW weight decay")->check(CLI::NonNegativeNumber);
    cmd->add_option("--warmup-steps", o->warmup, "Linear warmup steps")->check(CLI::NonNegativeNumber);
    cmd->add_option("--schedule", o->schedule, "cosine, linear or constant")
        ->check(CLI::IsMember({"cosine", "linear", "constant"}));
    cmd->add_option("--max-grad-norm", o->clip, "Gradient clipping (0: off)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--save-steps", o->save_steps, "Also checkpoint every N steps");
    cmd->add_option("--seed", o->seed, "Seed (same seed, same result)");
    cmd->add_flag("--resume", o->resume, "Continue from the last checkpoint in --out");
    cmd->add_flag("--monitor", o->monitor, "Probe a fixed subset every epoch and log max/p99 n_pre");
    cmd->add_option("--monitor-samples", o->monitor_samples, "Monitor subset size (default: the M6 subset size that catches one of the top 10 with 95% confidence)");
    cmd->add_option("--stop-when-max-npre", o->stop_max_npre, "Stop once the monitored max n_pre reaches N");
    cmd->add_option("--goldfish-k", o->goldfish_k,
                    "Goldfish loss: leave about 1 in K reference tokens out of the loss, chosen by a hash of the "
                    "H tokens before each, so repeated text drops the same tokens (K >= 2; 0: off)");
    cmd->add_option("--goldfish-h", o->goldfish_h, "Goldfish: context tokens hashed per decision (default 13)");
    cmd->add_flag("--quiet,-q", o->quiet, "No progress output");
    cmd->add_flag("--json", o->json, "Print the summary as JSON");
    cmd->callback([&action, o] {
        o->data.validate();
        if (o->model.model.empty() == o->init.empty())
            throw CLI::ValidationError("give exactly one of --model and --init");
        action = [o] {
            validate_goldfish(o->goldfish_k, o->goldfish_h);  // before loading the model
            LoadParams lp = o->model.load_params();           // the device too: before --out is written
            if (o->dist.launching()) {
                o->dist.launch(o->model.threads);  // the ranks do the work
                return;
            }
            const DistEnv env = o->dist.env();
            if (env.distributed()) {
                lp.n_threads = rank_threads(env, o->model.threads);
                lp.device = parse_device(rank_device(env, o->model.device));
            }
            const auto group = ProcessGroup::connect(env);
            std::shared_ptr<Model> model;
            if (!o->init.empty()) model = Model::random_llama(parse_init_config(o->init), make_byte_vocab(), o->seed, lp);
            else model = Model::load(o->model.model, lp);
            TrainParams p;
            p.data_path = o->data.data;
            p.data = o->data.dataset_params(o->seed);
            p.text_split = o->data.text_split();
            p.truncate = o->data.truncate_policy();
            p.max_reference_tokens = o->data.max_reference;
            p.append_eos = !o->no_eos;
            p.mode = o->mode == "full" || !o->init.empty() ? TrainMode::kFull : TrainMode::kLora;
            p.lora.r = o->lora_r;
            p.lora.lora_alpha = o->lora_alpha;
            p.lora.lora_dropout = o->lora_dropout;
            if (o->targets == "all-linear") p.lora.all_linear = true;
            else p.lora.target_modules = split_list(o->targets);
            p.epochs = o->epochs;
            p.batch_size = o->batch_size;
            p.grad_accum = o->grad_accum;
            p.lr = o->lr;
            p.weight_decay = o->weight_decay;
            p.warmup_steps = o->warmup;
            p.schedule = parse_lr_schedule(o->schedule);
            p.max_grad_norm = o->clip;
            p.seed = o->seed;
            p.out_dir = o->out;
            p.save_steps = o->save_steps;
            p.resume = o->resume;
            p.monitor = o->monitor || o->stop_max_npre > 0;
            p.monitor_samples = o->monitor_samples;
            p.stop_when_max_npre = o->stop_max_npre;
            p.goldfish_k = o->goldfish_k;
            p.goldfish_h = o->goldfish_h;
            const bool tty = isatty(STDERR_FILENO);
            const TrainSummary s = train_model(*model, p, [&](const TrainProgress& pr) {
                if (o->quiet || o->json) return;
                const std::string line = fmt::format("step {}/{}  epoch {:.2f}  loss {:.4f}  lr {:.2e}  {:.0f} tok/s  ETA {:.0f}s",
                                                     pr.step, pr.total_steps, pr.epoch, pr.loss, pr.lr, pr.tokens_per_s, pr.eta_s);
                if (tty) fmt::print(stderr, "\r{}   {}", line, pr.step == pr.total_steps ? "\n" : "");
                else if (pr.step % 10 == 0 || pr.step == pr.total_steps) fmt::print(stderr, "train: {}\n", line);
            }, group.get());
            if (group->rank() != 0) return;  // rank 0 reports for the job
            if (o->json) {
                nlohmann::json epochs = nlohmann::json::array();
                for (const auto& e : s.epochs) {
                    nlohmann::json j = {{"epoch", e.epoch}, {"step", e.step}, {"loss", e.loss}, {"checkpoint", e.checkpoint}};
                    if (e.monitor_max_n_pre) j["monitor_max_n_pre"] = *e.monitor_max_n_pre;
                    if (e.monitor_p99_n_pre) j["monitor_p99_n_pre"] = *e.monitor_p99_n_pre;
                    if (e.goldfish_drop_fraction) {
                        j["goldfish_drop_fraction"] = *e.goldfish_drop_fraction;
                        j["goldfish_drop_fraction_eligible"] = *e.goldfish_drop_fraction_eligible;
                    }
                    epochs.push_back(j);
                }
                nlohmann::json out = {{"samples", s.n_samples}, {"steps", s.steps}, {"tokens", s.tokens},
                                      {"seconds", s.seconds}, {"stopped_by_monitor", s.stopped_by_monitor},
                                      {"monitor_samples", s.monitor_samples}, {"epochs", epochs},
                                      {"last_checkpoint", s.last_checkpoint}};
                if (goldfish_enabled(o->goldfish_k))
                    out["goldfish"] = {{"k", o->goldfish_k},
                                       {"h", o->goldfish_h},
                                       {"hash", kGoldfishHashRule},
                                       {"drop_fraction", s.goldfish.drop_fraction()},
                                       {"drop_fraction_eligible", s.goldfish.drop_fraction_eligible()}};
                print_json(out);
                return;
            }
            fmt::print("trained on {} samples: {} steps, {:.0f} tokens/s, {:.1f} s\n", s.n_samples, s.steps,
                       s.seconds > 0 ? s.tokens / s.seconds : 0.0, s.seconds);
            if (goldfish_enabled(o->goldfish_k))
                fmt::print("goldfish: k {} h {}: {} of {} reference tokens left out of the loss ({:.4f}; {:.4f} of the "
                           "{} eligible)\n",
                           o->goldfish_k, o->goldfish_h, s.goldfish.dropped, s.goldfish.tokens,
                           s.goldfish.drop_fraction(), s.goldfish.drop_fraction_eligible(), s.goldfish.eligible);
            for (const auto& e : s.epochs) {
                fmt::print("  epoch {:>3}  step {:>6}  mean loss {:.4f}", e.epoch, e.step, e.loss);
                if (e.goldfish_drop_fraction) fmt::print("  goldfish drop {:.4f}", *e.goldfish_drop_fraction);
                if (e.monitor_max_n_pre) fmt::print("  monitor: max n_pre {}  p99 {:.1f}", *e.monitor_max_n_pre, *e.monitor_p99_n_pre);
                fmt::print("  -> {}\n", e.checkpoint);
            }
            if (s.stopped_by_monitor) fmt::print("stopped: the monitored max n_pre reached {}\n", o->stop_max_npre);
        };
    });
}

}  // namespace memskew::cli
