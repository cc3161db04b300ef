#include "helper.h"

#include <utility>

namespace faceid {

HelperThread::Pending::Pending(Pending&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}

HelperThread::Pending& HelperThread::Pending::operator=(Pending&& other) noexcept {
  if (this != &other) {
    if (owner_) owner_->await(false);
    owner_ = std::exchange(other.owner_, nullptr);
  }
  return *this;
}

HelperThread::Pending::~Pending() {
  if (owner_) owner_->await(false);
}

void HelperThread::Pending::get() {
  HelperThread* owner = std::exchange(owner_, nullptr);
  if (owner) owner->await(true);
}

HelperThread::HelperThread(std::function<void()> init, std::function<void()> finish)
    : thread_([this, init = std::move(init), finish = std::move(finish)] { loop(init, finish); }) {}

HelperThread::~HelperThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

HelperThread::Pending HelperThread::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    task_ = std::move(task);
    busy_ = true;
    done_ = false;
    error_ = nullptr;
  }
  cv_.notify_all();
  return Pending(this);
}

void HelperThread::await(bool rethrow) {
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!busy_) return;
    cv_.wait(lock, [this] { return done_; });
    busy_ = false;
    error = std::exchange(error_, nullptr);
  }
  if (error && rethrow) std::rethrow_exception(error);
}

void HelperThread::loop(const std::function<void()>& init, const std::function<void()>& finish) {
  if (init) init();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || task_; });
    if (!task_) break;  // stopping, nothing posted
    std::function<void()> task = std::move(task_);
    task_ = nullptr;
    lock.unlock();
    std::exception_ptr error;
    try {
      task();
    } catch (...) {
      error = std::current_exception();
    }
    task = nullptr;  // its captures go before the owner hears that the task is done
    lock.lock();
    error_ = error;
    done_ = true;
    cv_.notify_all();
  }
  lock.unlock();
  if (finish) finish();
}

}  // namespace faceid
