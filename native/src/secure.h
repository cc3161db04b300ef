// Wiping: every byte that held frame-derived data is cleared with explicit_bzero before it is freed.
#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_set>
#include <opencv2/core.hpp>

namespace faceid {

// Test-only switch (unsafeDisableWipe): lets the zeroing test prove its scanner can fail.
void setWipeEnabled(bool enabled);
bool wipeEnabled();

// explicit_bzero unless wiping is switched off; the optimiser cannot drop it.
void wipe(void* p, size_t n);

// Tracks the cv::Mat blocks a worker thread allocates, so the blocks a network keeps between calls
// (its input blob and activations) can be found and wiped after every job.
struct AllocRecorder {
  std::mutex mu;
  std::unordered_set<cv::UMatData*> live;  // allocated by this thread and not yet freed
  std::unordered_set<cv::UMatData*> mark;  // allocated since the last takeMark()
  void wipeLive(const std::unordered_set<cv::UMatData*>& which);
};

// Records allocations made by the calling thread into `r` (nullptr stops).
void setThreadRecorder(AllocRecorder* r);

// Installs the wiping cv::MatAllocator as OpenCV's default. Idempotent.
void installWipingAllocator();

}  // namespace faceid
