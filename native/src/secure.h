// Wiping: every byte that held frame-derived data is cleared with explicit_bzero before it is freed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <opencv2/core.hpp>
#include <unordered_set>

namespace faceid {

#ifdef FACEID_TEST_HOOKS
// Test builds only (native/build-test): lets the zeroing test prove its scanner can fail. Process-wide, so the
// control runs happen in processes of their own. A product build has no way to turn wiping off.
void setWipeEnabled(bool enabled);
#endif
bool wipeEnabled();

// explicit_bzero unless wiping is switched off; the optimiser cannot drop it.
void wipe(void* p, size_t n);

// Bytes the engine owns (a frame's copy): wiped, then freed, on every path out, including exceptions.
class SecureBytes {
 public:
  SecureBytes() = default;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;
  ~SecureBytes() { reset(); }
  // Replaces the contents with a copy of n bytes; throws std::bad_alloc when memory runs out.
  void assign(const void* src, size_t n);
  void reset();
  [[nodiscard]] const uint8_t* data() const { return data_; }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

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
