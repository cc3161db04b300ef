// A thread that runs one task at a time for its owner (a worker's Pipeline) and lives as long as the owner: the
// liveness stage beside the embedding, without starting an OS thread per call as std::async did.
#pragma once
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace faceid {

class HelperThread {
 public:
  // The task posted, as std::async's future: get() waits and rethrows what the task threw; the destructor waits too
  // (dropping any error, as an exception is then already on its way), so a task never outlives what it borrowed.
  class Pending {
   public:
    Pending() = default;
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;
    Pending(Pending&& other) noexcept;
    Pending& operator=(Pending&& other) noexcept;
    ~Pending();
    [[nodiscard]] bool valid() const { return owner_ != nullptr; }
    void get();

   private:
    friend class HelperThread;
    explicit Pending(HelperThread* owner) : owner_(owner) {}
    HelperThread* owner_ = nullptr;
  };

  // init runs first on the new thread, finish last (e.g. to set and clear a thread-local).
  HelperThread(std::function<void()> init, std::function<void()> finish);
  HelperThread(const HelperThread&) = delete;
  HelperThread& operator=(const HelperThread&) = delete;
  HelperThread(HelperThread&&) = delete;
  HelperThread& operator=(HelperThread&&) = delete;
  // Stops and joins the thread (after the task in flight, if any).
  ~HelperThread();

  // Runs task on the thread. One task at a time: the previous one's Pending must be done with.
  [[nodiscard]] Pending post(std::function<void()> task);

 private:
  void loop(const std::function<void()>& init, const std::function<void()>& finish);
  // Waits for the task posted last; rethrows its exception when rethrow is true.
  void await(bool rethrow);

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> task_;  // posted, not yet taken by the thread
  std::exception_ptr error_;    // what the task threw
  bool busy_ = false;           // posted and not yet waited for
  bool done_ = false;           // the task posted last has returned
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace faceid
