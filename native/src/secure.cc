#include "secure.h"

#include <strings.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace faceid {

static std::atomic<bool> g_wipe{true};
static thread_local AllocRecorder* t_recorder = nullptr;

#ifdef FACEID_TEST_HOOKS
void setWipeEnabled(bool enabled) { g_wipe.store(enabled); }
#endif
bool wipeEnabled() { return g_wipe.load(std::memory_order_relaxed); }

void wipe(void* p, size_t n) {
  if (p && n && wipeEnabled()) explicit_bzero(p, n);
}

void SecureBytes::assign(const void* src, size_t n) {
  reset();
  if (n == 0) return;
  data_ = static_cast<uint8_t*>(std::malloc(n));
  if (!data_) throw std::bad_alloc();
  size_ = n;
  std::memcpy(data_, src, n);
}

void SecureBytes::reset() {
  if (!data_) return;
  wipe(data_, size_);
  std::free(data_);
  data_ = nullptr;
  size_ = 0;
}

void setThreadRecorder(AllocRecorder* r) { t_recorder = r; }

void AllocRecorder::wipeLive(const std::unordered_set<cv::UMatData*>& which) {
  std::lock_guard<std::mutex> lock(mu);
  for (cv::UMatData* u : which) {
    if (live.count(u) && u->origdata) wipe(u->origdata, u->size);
  }
}

namespace {

constexpr size_t kAutoStep = 0x7fffffff;  // OpenCV's CV_AUTOSTEP (C API header)

// Same layout rules as OpenCV's StdMatAllocator; differs only in wiping on free and in recording.
class WipingAllocator : public cv::MatAllocator {
 public:
  cv::UMatData* allocate(int dims, const int* sizes, int type, void* data0, size_t* step, cv::AccessFlag /*flags*/,
                         cv::UMatUsageFlags /*usage*/) const override {
    size_t total = CV_ELEM_SIZE(type);
    for (int i = dims - 1; i >= 0; i--) {
      if (step) {
        if (data0 && step[i] != kAutoStep) {
          CV_Assert(total <= step[i]);
          total = step[i];
        } else {
          step[i] = total;
        }
      }
      total *= sizes[i];
    }
    uchar* data = data0 ? static_cast<uchar*>(data0) : static_cast<uchar*>(cv::fastMalloc(total));
    auto* u = new cv::UMatData(this);
    u->data = u->origdata = data;
    u->size = total;
    if (data0) u->flags |= cv::UMatData::USER_ALLOCATED;
    if (AllocRecorder* r = t_recorder) {
      std::lock_guard<std::mutex> lock(r->mu);
      r->live.insert(u);
      r->mark.insert(u);
      u->userdata = r;
    }
    return u;
  }

  bool allocate(cv::UMatData* u, cv::AccessFlag /*flags*/, cv::UMatUsageFlags /*usage*/) const override {
    return u != nullptr;
  }

  void deallocate(cv::UMatData* u) const override {
    if (!u) return;
    CV_Assert(u->urefcount == 0);
    CV_Assert(u->refcount == 0);
    if (auto* r = static_cast<AllocRecorder*>(u->userdata)) {
      std::lock_guard<std::mutex> lock(r->mu);
      r->live.erase(u);
      r->mark.erase(u);
    }
    if (!(u->flags & cv::UMatData::USER_ALLOCATED)) {
      wipe(u->origdata, u->size);
      cv::fastFree(u->origdata);
      u->origdata = nullptr;
    }
    delete u;
  }
};

}  // namespace

void installWipingAllocator() {
  static WipingAllocator* allocator = [] {
    auto* a = new WipingAllocator();  // never freed: Mats may outlive any owner
    cv::Mat::setDefaultAllocator(a);
    return a;
  }();
  (void)allocator;
}

}  // namespace faceid

// libjpeg-turbo frees its working pools (which hold decoded rows) without clearing them. These definitions take
// precedence over libjpeg's own for the copy loaded with this addon, so the pools are wiped first.
extern "C" {
__attribute__((visibility("default"))) void jpeg_free_small(void* /*cinfo*/, void* object, size_t sizeofobject) {
  faceid::wipe(object, sizeofobject);
  free(object);
}
__attribute__((visibility("default"))) void jpeg_free_large(void* /*cinfo*/, void* object, size_t sizeofobject) {
  faceid::wipe(object, sizeofobject);
  free(object);
}
}
