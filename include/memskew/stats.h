// The statistics layer (METHOD M5–M7, tests and fits): pure functions on vectors.
//   stats/summary.h     M5  distribution summary, quantiles, shape, Gini, histograms, CCDF
//   stats/sampling.h    M6  P(miss top-k), subset size, bootstrap
//   stats/hazard.h      M7  censored hazards, model PMFs, geometric / linear-hazard fits, MI check
//   stats/rank-tests.h      Spearman, Wilcoxon signed-rank, two-sample Kolmogorov–Smirnov
//   stats/optimize.h        Nelder–Mead
#pragma once

#include "memskew/stats/hazard.h"
#include "memskew/stats/optimize.h"
#include "memskew/stats/rank-tests.h"
#include "memskew/stats/sampling.h"
#include "memskew/stats/summary.h"
