// The JS surface: new Engine(models, options), engine.analyze(buffer, options) -> Promise, stats(), close().
// Jobs run on the engine's own threads (not libuv's pool, which fs and dns share), one Pipeline per thread.
#include <napi.h>
#include <strings.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <string_view>
#include <thread>

#include "errors.h"
#include "pipeline.h"
#include "secure.h"

namespace faceid {
namespace {

using Clock = std::chrono::steady_clock;

struct Job {
  SecureBytes input;  // our copy of the frame; wiped and freed as soon as the pipeline is done
  FrameJob frame{};
  Napi::Promise::Deferred deferred;
  Clock::time_point enqueued;
  bool ok = false;
  AnalysisResult result;
  std::string errCode, errMessage;
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  void freeInput() {
    input.reset();
    frame.data = nullptr;
    frame.size = 0;
  }
  ~Job() {
    // Numbers derived from the frame (the caller has its own copy by now): landmarks, embeddings, anchors.
    wipe(frame.reuseLandmarks.data(), sizeof(frame.reuseLandmarks));
    wipe(frame.reuseAnchor.data(), sizeof(frame.reuseAnchor));
    if (!result.faces.empty()) wipe(result.faces.data(), result.faces.size() * sizeof(FaceResult));
  }
};

// Process-wide OpenCV set-up, shared by every engine in the process: the wiping allocator is installed once, and the
// thread count (an OpenCV global) is set by the first engine open and must agree with the others open meanwhile.
struct ProcessSettings {
  std::mutex mu;
  int threads = 0;
  int engines = 0;
  void acquire(int wanted) {
    static std::once_flag once;
    std::call_once(once, installWipingAllocator);
    std::lock_guard<std::mutex> lock(mu);
    if (engines > 0 && wanted != threads) {
      throw FaceIdError("invalid_argument", "threadsPerJob is one setting per process: an open engine uses " +
                                                std::to_string(threads) + ".");
    }
    if (engines++ == 0) {
      threads = wanted;
      cv::setNumThreads(wanted);
    }
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    engines--;
  }
};
ProcessSettings& processSettings() {
  static ProcessSettings* s = new ProcessSettings();  // never destroyed: engines may close during exit
  return *s;
}

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// The options arrive from src/engine/engine.ts validated and complete (plain data: every key present, defaults filled
// in, enums as their names), as sharp's lib/ hands them to its src/. These only read them; a value of the wrong type
// (a caller other than engine.ts) is refused, never guessed or defaulted.
Napi::Value required(const Napi::Object& o, const char* key, bool (Napi::Value::*is)() const, const char* what) {
  Napi::Value v = o.Get(key);
  if (!(v.*is)()) throw FaceIdError("invalid_argument", std::string(key) + " must be " + what + ".");
  return v;
}

std::string stringOf(const Napi::Object& o, const char* key) {
  return required(o, key, &Napi::Value::IsString, "a string").As<Napi::String>();
}

double numberOf(const Napi::Object& o, const char* key) {
  return required(o, key, &Napi::Value::IsNumber, "a number").As<Napi::Number>();
}

bool boolOf(const Napi::Object& o, const char* key) {
  return required(o, key, &Napi::Value::IsBoolean, "true or false").As<Napi::Boolean>();
}

Napi::Object objectOf(const Napi::Object& o, const char* key) {
  return required(o, key, &Napi::Value::IsObject, "an object").As<Napi::Object>();
}

// The names of an enum's values, as the JS types spell them (src/engine/types.ts).
template <typename T>
using Name = std::pair<std::string_view, T>;
const Name<Format> kFormats[] = {
    {"jpeg", Format::Jpeg}, {"rgba", Format::Rgba}, {"bgr", Format::Bgr}, {"i420", Format::I420}};
const Name<FaceNorm> kFaceNorms[] = {{"none", FaceNorm::kNone}, {"gain", FaceNorm::kGain}};
const Name<bool> kDetectors[] = {{"default", false}, {"blazeface", true}};  // true: BlazeFace
const Name<Stage> kStages[] = {{"landmarks", kLandmarks}, {"embedding", kEmbedding}, {"liveness", kLiveness},
                               {"eyes", kEyes},           {"pose", kPose},           {"quality", kQuality},
                               {"light", kLight},         {"anchor", kAnchor}};

template <typename T, size_t N>
T enumOf(const Napi::Value& v, const std::string& what, const Name<T> (&names)[N]) {
  if (!v.IsString()) throw FaceIdError("invalid_argument", what + " must be a string.");
  const std::string name = v.As<Napi::String>().Utf8Value();
  for (const auto& [n, value] : names) {
    if (n == name) return value;
  }
  throw FaceIdError("invalid_argument", what + " \"" + name + "\" is not known.");
}

template <typename T, size_t N>
T enumOf(const Napi::Object& o, const char* key, const Name<T> (&names)[N]) {
  return enumOf(o.Get(key), key, names);
}

unsigned stagesOf(const Napi::Object& o) {
  Napi::Array a = required(o, "stages", &Napi::Value::IsArray, "an array").As<Napi::Array>();
  unsigned s = 0;
  for (uint32_t i = 0; i < a.Length(); i++) s |= enumOf(a.Get(i), "A stage", kStages);
  return s;
}

// A Float32Array of exactly N numbers (engine.ts checked that they are finite), copied into out.
template <size_t N>
void floatsOf(const Napi::Object& o, const char* key, std::array<float, N>& out) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      v.As<Napi::TypedArray>().ElementLength() != N) {
    throw FaceIdError("invalid_argument", std::string(key) + " must be a Float32Array of " + std::to_string(N) + ".");
  }
  std::memcpy(out.data(), v.As<Napi::Float32Array>().Data(), N * sizeof(float));
}

Napi::Float32Array floats(Napi::Env env, const float* v, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  std::memcpy(a.Data(), v, n * sizeof(float));
  return a;
}

Napi::Object toJs(Napi::Env env, const AnalysisResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("width", r.width);
  o.Set("height", r.height);
  if (r.brightness >= 0) o.Set("brightness", r.brightness);
  Napi::Array faces = Napi::Array::New(env, r.faces.size());
  for (size_t i = 0; i < r.faces.size(); i++) {
    const FaceResult& f = r.faces[i];
    Napi::Object jf = Napi::Object::New(env);
    Napi::Object box = Napi::Object::New(env);
    box.Set("x", f.box.x);
    box.Set("y", f.box.y);
    box.Set("width", f.box.width);
    box.Set("height", f.box.height);
    jf.Set("box", box);
    jf.Set("score", f.score);
    jf.Set("primary", f.primary);
    if (f.hasLandmarks) jf.Set("landmarks", floats(env, f.landmarks.data(), f.landmarks.size()));
    if (f.landmarksReused) jf.Set("landmarksReused", true);
    if (f.hasAnchor) jf.Set("anchor", floats(env, f.anchor.data(), f.anchor.size()));
    if (f.hasEmbedding) jf.Set("embedding", floats(env, f.embedding.data(), f.embedding.size()));
    if (f.hasLiveness) jf.Set("liveness", f.liveness);
    if (f.hasEyes) {
      Napi::Object eyes = Napi::Object::New(env);
      eyes.Set("left", f.eyeLeft);
      eyes.Set("right", f.eyeRight);
      jf.Set("eyes", eyes);
    }
    if (f.hasPose) {
      Napi::Object pose = Napi::Object::New(env);
      pose.Set("yaw", f.yaw);
      pose.Set("pitch", f.pitch);
      pose.Set("roll", f.roll);
      jf.Set("pose", pose);
    }
    if (f.hasQuality) {
      Napi::Object q = Napi::Object::New(env);
      q.Set("faceSize", f.faceSize);
      q.Set("sharpness", f.sharpness);
      q.Set("brightness", f.brightness);
      q.Set("poseAngle", f.poseAngle >= 0 ? Napi::Value(Napi::Number::New(env, f.poseAngle)) : env.Null());
      jf.Set("quality", q);
    }
    if (f.hasLight) {
      static const char* const kRegionNames[kLightRegions] = {"face",       "forehead", "nose",     "leftCheek",
                                                              "rightCheek", "chin",     "surround", "frame"};
      Napi::Object light = Napi::Object::New(env);
      for (int r = 0; r < kLightRegions; r++) {
        const float* v = &f.light[r * 3];
        if (std::isnan(v[0])) {
          light.Set(kRegionNames[r], env.Null());
          continue;
        }
        Napi::Array rgb = Napi::Array::New(env, 3);
        for (uint32_t c = 0; c < 3; c++) rgb.Set(c, v[c]);
        light.Set(kRegionNames[r], rgb);
      }
      jf.Set("light", light);
    }
    faces.Set(i, jf);
  }
  o.Set("faces", faces);
  const Timings& t = r.timings;
  Napi::Object tm = Napi::Object::New(env);
  tm.Set("decode", t.decode);
  tm.Set("detect", t.detect);
  tm.Set("landmarks", t.landmarks);
  tm.Set("align", t.align);
  tm.Set("embedding", t.embedding);
  tm.Set("liveness", t.liveness);
  tm.Set("eyes", t.eyes);
  tm.Set("quality", t.quality);
  tm.Set("light", t.light);
  tm.Set("wipe", t.wipe);
  tm.Set("queued", t.queued);
  tm.Set("total", t.total);
  o.Set("timings", tm);
  return o;
}

class Engine : public Napi::ObjectWrap<Engine> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("analyze", &Engine::Analyze), InstanceMethod("stats", &Engine::Stats),
                        InstanceMethod("close", &Engine::Close)});
  }

  explicit Engine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Engine>(info) {
    Napi::Env env = info.Env();
    try {
      if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) {
        throw FaceIdError("invalid_argument", "new Engine(models, options) takes two objects.");
      }
      Napi::Object m = info[0].As<Napi::Object>();
      Napi::Object o = info[1].As<Napi::Object>();
      ModelPaths paths{stringOf(m, "detect"),   stringOf(m, "landmark"), stringOf(m, "feature"),
                       stringOf(m, "liveness"), stringOf(m, "eye"),      std::string()};
      // The lighter detector, loaded only when asked for.
      if (enumOf(o, "trackDetector", kDetectors)) paths.blazeface = stringOf(m, "blazeface");
      const int workers = int(numberOf(o, "workers"));
      queueSize_ = size_t(numberOf(o, "queueSize"));
      PipelineOptions popt;
      popt.detectThreshold = float(numberOf(o, "detectThreshold"));
      popt.maxPixels = size_t(numberOf(o, "maxPixels"));
      popt.threads = int(numberOf(o, "threadsPerJob"));
      popt.parallelStages = boolOf(o, "parallelStages");
      popt.faceNorm = enumOf(o, "faceNormalisation", kFaceNorms);
      popt.mirrorEmbedding = boolOf(o, "mirrorEmbedding");
      if (boolOf(o, "unsafeDisableWipe")) {
#ifdef FACEID_TEST_HOOKS
        setWipeEnabled(false);
#else
        throw FaceIdError("invalid_argument", "unsafeDisableWipe exists only in a test build of the addon.");
#endif
      }
      processSettings().acquire(popt.threads);
      holdsSettings_ = true;
      for (int i = 0; i < workers; i++) pipelines_.push_back(std::make_unique<Pipeline>(paths, popt));
    } catch (const FaceIdError& e) {
      ReleaseSettings();
      throw makeError(env, e.code, e.what());
    } catch (const cv::Exception& e) {
      ReleaseSettings();
      throw makeError(env, "model_invalid", std::string("OpenCV could not load the models: ") + e.err);
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "faceid-engine", 0, 1);
    tsfn_.Unref(env);
    for (size_t i = 0; i < pipelines_.size(); i++) threads_.emplace_back([this, i] { WorkerLoop(i); });
    env_ = env;
    hookAdded_ = napi_add_env_cleanup_hook(env, &Engine::OnEnvCleanup, this) == napi_ok;
  }

  ~Engine() override {
    // The hook holds `this`: it must not run after the object is gone (the finalizer may run first).
    if (hookAdded_) napi_remove_env_cleanup_hook(env_, &Engine::OnEnvCleanup, this);
    StopAndJoin();
  }

  // At environment teardown (process exit, worker end) stop the threads before Node frees what they use.
  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<Engine*>(arg);
    self->hookAdded_ = false;
    self->StopAndJoin();
  }

 private:
  void ReleaseSettings() {
    if (holdsSettings_) processSettings().release();
    holdsSettings_ = false;
  }

  void WorkerLoop(size_t index) {
    Pipeline& p = *pipelines_[index];
    try {
      p.warmUp();
    } catch (const std::exception&) {
      // Warm-up failures surface on the first job, which runs the same networks.
    }
    for (;;) {
      std::unique_ptr<Job> job;
      int idle;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) break;  // stopping and drained
        job = std::move(queue_.front());
        queue_.pop_front();
        running_++;
        idle = running_ < cores_ ? int(cores_ - running_) : 0;
      }
      const auto start = Clock::now();
      try {
        job->result = p.run(job->frame, idle);
        job->ok = true;
      } catch (const FaceIdError& e) {
        job->errCode = e.code;
        job->errMessage = e.what();
      } catch (const cv::Exception& e) {
        job->errCode = "internal";
        job->errMessage = std::string("OpenCV failed: ") + e.err;
      } catch (const std::bad_alloc&) {
        job->errCode = "internal";
        job->errMessage = "Out of memory while analysing the frame.";
      } catch (const std::exception& e) {
        job->errCode = "internal";
        job->errMessage = e.what();
      }
      job->freeInput();
      job->result.timings.queued = std::chrono::duration<double, std::milli>(start - job->enqueued).count();
      {
        std::lock_guard<std::mutex> lock(mu_);
        running_--;
        (job->ok ? completed_ : failed_)++;
      }
      // The main thread takes the job over in Settle; when the call fails (the environment is going away) it is
      // ours again and freed here.
      Job* raw = job.release();
      if (tsfn_.NonBlockingCall(raw, [this](Napi::Env env, Napi::Function, Job* j) { Settle(env, j); }) != napi_ok) {
        delete raw;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      exited_++;
    }
  }

  void Settle(Napi::Env env, Job* raw) {
    std::unique_ptr<Job> job(raw);
    Napi::HandleScope scope(env);
    if (job->ok) {
      job->deferred.Resolve(toJs(env, job->result));
    } else {
      job->deferred.Reject(makeError(env, job->errCode, job->errMessage).Value());
    }
    job.reset();
    if (--pending_ == 0) {
      if (closePending_)
        FinishClose(env);
      else
        tsfn_.Unref(env);
    }
  }

  Napi::Value Analyze(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto job = std::make_unique<Job>(env);
    Napi::Promise promise = job->deferred.Promise();
    try {
      if (closing_) throw FaceIdError("engine_closed", "The engine has been closed.");
      if (info.Length() < 1 || !info[0].IsBuffer())
        throw FaceIdError("invalid_argument", "The frame must be a Buffer.");
      Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
      if (info.Length() < 2 || !info[1].IsObject()) throw FaceIdError("invalid_argument", "options must be an object.");
      Napi::Object o = info[1].As<Napi::Object>();
      FrameSpec spec;
      spec.format = enumOf(o, "format", kFormats);
      spec.width = int(numberOf(o, "width"));
      spec.height = int(numberOf(o, "height"));
      job->frame.spec = spec;
      job->frame.stages = stagesOf(o);
      job->frame.maxFaces = int(numberOf(o, "maxFaces"));
      job->frame.mirrorLandmarks = boolOf(o, "mirrorLandmarks");
      // The pipeline refuses blazeface when the engine did not load it.
      job->frame.blazeface = enumOf(o, "detector", kDetectors);
      // A face box from an earlier frame: the detector is skipped.
      if (!o.Get("box").IsUndefined()) {
        Napi::Object b = objectOf(o, "box");
        job->frame.hasBox = true;
        job->frame.box = cv::Rect2f(float(numberOf(b, "x")), float(numberOf(b, "y")), float(numberOf(b, "width")),
                                    float(numberOf(b, "height")));
      }
      // An earlier frame's landmarks and anchor, reused when the face has not moved (with a box only).
      if (!o.Get("reuseLandmarks").IsUndefined()) {
        Napi::Object r = objectOf(o, "reuseLandmarks");
        floatsOf(r, "landmarks", job->frame.reuseLandmarks);
        floatsOf(r, "anchor", job->frame.reuseAnchor);
        job->frame.reuseMaxShift = float(numberOf(r, "maxShift"));
        job->frame.hasReuse = job->frame.hasBox;
      }
      const bool wipeInput = boolOf(o, "wipeInput");
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.size() + running_ >= pipelines_.size() + queueSize_) {
          rejected_++;
          throw FaceIdError("busy", "The engine is at capacity; retry later.");
        }
      }
      // Copy now: the JS buffer may be detached or reused while a worker runs (see NOTES on ASan).
      try {
        job->input.assign(buf.Data(), buf.Length());
      } catch (const std::bad_alloc&) {
        throw FaceIdError("internal", "Out of memory copying the frame.");
      }
      if (wipeInput && buf.Length() > 0) explicit_bzero(buf.Data(), buf.Length());
      job->frame.data = job->input.data();
      job->frame.size = job->input.size();
      job->enqueued = Clock::now();
      if (pending_++ == 0) tsfn_.Ref(env);
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(job));
      }
      cv_.notify_one();
    } catch (const FaceIdError& e) {
      job->deferred.Reject(makeError(env, e.code, e.what()).Value());
    } catch (const Napi::Error& e) {
      // A JS getter or conversion that threw while the options were read: the promise carries it.
      job->deferred.Reject(e.Value());
    }
    return promise;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    std::lock_guard<std::mutex> lock(mu_);
    o.Set("workers", double(pipelines_.size()));
    o.Set("queueSize", double(queueSize_));
    o.Set("inFlight", double(running_));
    o.Set("queued", double(queue_.size()));
    o.Set("completed", double(completed_));
    o.Set("failed", double(failed_));
    o.Set("rejected", double(rejected_));
    return o;
  }

  // Lets queued jobs finish, then stops the threads and frees the networks.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!closeDeferred_) closeDeferred_ = std::make_unique<Napi::Promise::Deferred>(env);
    Napi::Promise promise = closeDeferred_->Promise();
    if (closing_) return promise;
    closing_ = true;
    if (pending_ == 0)
      FinishClose(env);
    else
      closePending_ = true;
    return promise;
  }

  void FinishClose(Napi::Env env) {
    closePending_ = false;
    StopAndJoin();
    closeDeferred_->Resolve(env.Undefined());
  }

  void StopAndJoin() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (joined_) return;
      stopping_ = true;
      joined_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    // Jobs still queued here only when the environment is being torn down.
    queue_.clear();
    pipelines_.clear();
    ReleaseSettings();
    tsfn_.Release();
  }

  std::vector<std::unique_ptr<Pipeline>> pipelines_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  size_t queueSize_ = 8, running_ = 0, exited_ = 0;
  const size_t cores_ = std::max(1u, std::thread::hardware_concurrency());
  uint64_t completed_ = 0, failed_ = 0, rejected_ = 0;
  bool stopping_ = false, joined_ = false;
  // Main-thread state.
  size_t pending_ = 0;
  bool closing_ = false, closePending_ = false;
  std::unique_ptr<Napi::Promise::Deferred> closeDeferred_;
  Napi::ThreadSafeFunction tsfn_;
  napi_env env_ = nullptr;
  bool hookAdded_ = false;
  bool holdsSettings_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", Engine::Init(env));
  exports.Set("opencvVersion", Napi::String::New(env, CV_VERSION));
  return exports;
}

}  // namespace
}  // namespace faceid

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return faceid::Init(env, exports); }
NODE_API_MODULE(faceid, InitAddon)
