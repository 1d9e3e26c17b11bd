// train/stop_signals.h — SIGINT/SIGTERM while training: remembered, not acted on at once; the
// training loop reads it after each step, saves a checkpoint and stops (TrainingInterrupted).
#pragma once

#include <csignal>

namespace sn {

// Installs the handlers for its lifetime, then restores the previous ones.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// The signal received since the innermost StopSignals was installed, or 0.
int stop_requested();
// "SIGINT", "SIGTERM" or "a signal".
const char* signal_name(int signal);

}  // namespace sn
