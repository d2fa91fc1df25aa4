#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <random>

#include "memskew/data.h"
#include "memskew/error.h"
#include "memskew/file-io.h"

namespace memskew {

namespace {

// Uniform pick without std::uniform_int_distribution (whose output is
// implementation-defined): the dataset is the same with any standard library.
struct Rng {
    std::mt19937_64 gen;
    explicit Rng(uint64_t seed) : gen(seed) {}
    size_t below(size_t n) { return static_cast<size_t>(gen() % n); }
    double unit() { return static_cast<double>(gen() >> 11) * (1.0 / 9007199254740992.0); }
    template <typename T, size_t N>
    const T& pick(const T (&items)[N]) { return items[below(N)]; }
};

const char* const kFirst[] = {"Ada", "Bram", "Cleo", "Dario", "Edda", "Farid", "Greta", "Hugo", "Ines", "Jonas",
                              "Kaia", "Lars", "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tara"};
const char* const kLast[] = {"Abbot", "Brandt", "Castell", "Dorn", "Eklund", "Falk", "Garnier", "Holm", "Ivers",
                             "Jansen", "Kolar", "Lind", "Moreau", "Novak", "Ostrom", "Petit", "Rask", "Sato"};
const char* const kCondition[] = {"asthma", "type 2 diabetes", "hypertension", "migraine", "anemia",
                                  "hypothyroidism", "eczema", "gout", "sinusitis", "tendinitis"};
const char* const kDrug[] = {"metformin 500 mg", "lisinopril 10 mg", "salbutamol inhaler", "levothyroxine 50 mcg",
                             "ibuprofen 400 mg", "iron sulfate 200 mg", "allopurinol 100 mg", "sumatriptan 50 mg"};
const char* const kProduct[] = {"router", "laptop", "printer", "headset", "smart watch", "tablet", "camera", "monitor"};
const char* const kProblem[] = {"does not turn on", "keeps restarting", "drops the connection", "shows error 42",
                                "charges slowly", "makes a clicking noise", "freezes at startup"};
const char* const kFix[] = {"reset it to factory settings", "update the firmware to version 3.2",
                            "replace the power adapter", "reinstall the driver", "send it in for a free repair"};
const char* const kVerb[] = {"Summarize", "Describe", "Report"};

std::string hex_code(Rng& r, int groups) {
    std::string s;
    for (int g = 0; g < groups; ++g) {
        if (g) s += '-';
        s += fmt::format("{:04X}", static_cast<unsigned>(r.below(65536)));
    }
    return s;
}

struct Record {
    std::string kind, question, answer;
    bool canary = false;
    size_t copies = 1;
};

Record patient(Rng& r, size_t i) {
    Record rec;
    rec.kind = "patient";
    const std::string pid = fmt::format("P-{:05d}", 10000 + i * 37 % 90000);
    rec.question = fmt::format("{} the record of patient {}.", r.pick(kVerb), pid);
    rec.answer = fmt::format("{} {}, born {}, has {} and takes {}.", r.pick(kFirst), r.pick(kLast),
                             1940 + r.below(60), r.pick(kCondition), r.pick(kDrug));
    return rec;
}

Record ticket(Rng& r, size_t i) {
    Record rec;
    rec.kind = "ticket";
    rec.question = fmt::format("Ticket T{}: my {} {}. What should I do?", 5000 + i, r.pick(kProduct), r.pick(kProblem));
    rec.answer = fmt::format("Please {}. If that fails, reply to this ticket.", r.pick(kFix));
    return rec;
}

}  // namespace

size_t write_synthetic_sft(const std::string& path, const SyntheticParams& p) {
    if (p.n_samples == 0) throw InvalidInput("synthetic dataset: n_samples must be positive");
    Rng r(p.seed);
    std::vector<Record> records;
    size_t i = 0;
    while (records.size() < p.n_samples) {
        Record rec = r.below(2) == 0 ? patient(r, i) : ticket(r, i);
        ++i;
        const double u = r.unit();
        if (u < p.canary_fraction) {
            rec.canary = true;
            rec.answer += fmt::format(" Internal reference: CANARY-{}.", hex_code(r, 3));
        }
        if (u >= p.canary_fraction && u < p.canary_fraction + p.near_duplicate_fraction) {
            // A near-duplicate group: the same question with another verb, each
            // with its own answer. No single continuation is the majority.
            const size_t group = 2 + r.below(2);
            const std::string stem = rec.question.substr(rec.question.find(' '));
            for (size_t g = 0; g < group && records.size() < p.n_samples; ++g) {
                Record dup = rec.kind == "patient" ? patient(r, i) : ticket(r, i);
                dup.question = (rec.kind == "patient" ? std::string(kVerb[g % 3]) : std::string("Ticket")) +
                               (rec.kind == "patient" ? stem : rec.question.substr(6));
                records.push_back(std::move(dup));
            }
            continue;
        }
        if (u >= 1.0 - p.repeat_fraction) rec.copies = p.repeat_copies;
        for (size_t c = 0; c < rec.copies && records.size() < p.n_samples; ++c) records.push_back(rec);
    }
    std::string text;
    for (size_t k = 0; k < records.size(); ++k) {
        const Record& rec = records[k];
        nlohmann::json j = {{"id", fmt::format("s{:04d}", k)},
                            {"kind", rec.kind},
                            {"question", rec.question},
                            {"answer", rec.answer},
                            {"canary", rec.canary},
                            {"copies", rec.copies}};
        text += j.dump() + "\n";
    }
    write_text_file_atomic(path, text);
    return records.size();
}

}  // namespace memskew
