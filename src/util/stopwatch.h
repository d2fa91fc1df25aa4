// Wall-clock timing for the seconds figures that jobs report.
#pragma once

#include <chrono>

namespace memskew {

class Stopwatch {
public:
    // Seconds since the start or the previous lap, and starts a new lap.
    double lap() {
        const auto now = std::chrono::steady_clock::now();
        const double s = std::chrono::duration<double>(now - last_).count();
        last_ = now;
        return s;
    }
    // Seconds since construction.
    double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

}  // namespace memskew
