// Sections of the audit page that live in files of their own (private to
// src/report/). Each returns its HTML; report.cpp puts them in page order.
#pragma once

#include <string>

#include "memskew/report.h"

namespace memskew {

// "Does similarity explain it?": the S / ΔS table per checkpoint, n_pre
// against the per-sample ΔS, n_pre by ΔS quintile and by near-duplicate
// cluster size, the largest clusters with their members' n_pre, and the
// risk-triage table (src/report/similarity-report.cpp).
std::string render_similarity_section(const AnalysisResult& result, const ReportInputs& inputs,
                                      const ReportParams& params);

}  // namespace memskew
