// The decoding guard of a training set (memskew/ngram-guard.h): the n-gram
// map itself is LibTorch-free (src/metrics/ngram-guard.cpp); this side reads
// the training set through the trainer's own encoder, so the guard's ids are
// the ids training fed, EOS included where training appended it.
#include <utility>

#include "memskew/ngram-guard.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"

namespace memskew {

NgramGuard build_training_guard(const TrainParams& training, const Tokenizer& tok, int64_t max_context,
                                const TrainingGuardParams& params) {
    NgramGuardParams gp;
    gp.tokenizer_fingerprint = tokenizer_fingerprint(tok);
    gp.max_context = max_context;
    // Checked before the dataset is read: a bad n should not cost a full encode.
    (void)NgramGuard::build({}, params.n, gp);
    EncodedDataset enc = encode_training_set(training, tok, max_context);
    std::vector<std::vector<int32_t>> sequences;
    sequences.reserve(enc.items.size());
    for (EncodedSample& s : enc.items) {
        std::vector<int32_t> seq;
        if (params.include_prompt) seq = std::move(s.prompt);
        seq.insert(seq.end(), s.reference.begin(), s.reference.end());
        if (s.eos) seq.push_back(tok.eos());
        sequences.push_back(std::move(seq));
    }
    return NgramGuard::build(sequences, params.n, gp);
}

}  // namespace memskew
