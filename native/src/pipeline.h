// One worker's networks and the per-frame pipeline. Only numbers come out.
#pragma once
#include <array>
#include <atomic>
#include <memory>
#include <opencv2/dnn.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "decode.h"
#include "helper.h"
#include "secure.h"

namespace faceid {

enum Stage : unsigned {
  kLandmarks = 1u << 0,
  kEmbedding = 1u << 1,
  kLiveness = 1u << 2,
  kEyes = 1u << 3,
  kPose = 1u << 4,
  kQuality = 1u << 5,
  kLight = 1u << 6,
  kAnchor = 1u << 7,
};

// The anchor: the mean grey level of the inner face box across (columns) and down (rows), each divided by its mean.
// Comparing two frames' anchors (same box) tells how far the face moved, at a fraction of a landmark pass.
constexpr int kAnchorBins = 32;
constexpr int kAnchorSize = 2 * kAnchorBins;

// Regions whose mean colour the light challenge follows (see src/liveness/light.ts).
enum LightRegion { kFace, kForehead, kNose, kLeftCheek, kRightCheek, kChin, kSurround, kFrame, kLightRegions };

struct ModelPaths {
  std::string detect, landmark, feature, liveness, eye;
  // The lighter detector for track calls (FrameJob::blazeface); empty = not loaded.
  std::string blazeface;
};

// Illumination normalisation of the aligned face before the feature network (EngineOptions.faceNormalisation).
enum class FaceNorm { kNone, kGain };

struct PipelineOptions {
  float detectThreshold = 0.7f;
  float nmsThreshold = 0.3f;
  size_t maxPixels = 4096u * 4096u;
  int threads = 1;
  // Runs liveness beside the embedding on the worker's helper thread when a core is idle (lower latency at low load).
  bool parallelStages = true;
  // For the feature network only (quality reads the face as the camera saw it); see normaliseFace in pipeline.cc.
  FaceNorm faceNorm = FaceNorm::kNone;
  // The embedding of the aligned face averaged with that of its mirror image (the feature network runs twice).
  bool mirrorEmbedding = false;
};

struct FaceResult {
  cv::Rect2f box;
  float score = 0;
  bool primary = false;
  bool hasLandmarks = false, hasEmbedding = false, hasLiveness = false, hasEyes = false, hasPose = false,
       hasQuality = false, hasLight = false, hasAnchor = false;
  // The landmarks are the caller's, from an earlier frame (FrameJob::reuse): the landmark network did not run.
  bool landmarksReused = false;
  std::array<float, 136> landmarks{};
  std::array<float, 512> embedding{};
  float liveness = 0;
  float eyeLeft = 0, eyeRight = 0;
  float yaw = 0, pitch = 0, roll = 0;
  float faceSize = 0, sharpness = 0, brightness = 0, poseAngle = -1;
  // Mean R,G,B per LightRegion; NaN where the region falls outside the frame.
  std::array<float, kLightRegions * 3> light{};
  std::array<float, kAnchorSize> anchor{};
};

struct Timings {
  double decode = 0, detect = 0, landmarks = 0, align = 0, embedding = 0, liveness = 0, eyes = 0, quality = 0,
         light = 0, wipe = 0, queued = 0, total = 0;
};

struct AnalysisResult {
  int width = 0, height = 0;
  // Stage quality: the mean grey level of the whole decoded frame (0-255), so a frame too dark for the detector to
  // find a face in can still say so; -1 when not measured.
  float brightness = -1;
  std::vector<FaceResult> faces;
  Timings timings;
};

struct FrameJob {
  const uint8_t* data;
  size_t size;
  FrameSpec spec;
  unsigned stages;
  int maxFaces;
  // Detect with BlazeFace instead of the default detector (needs ModelPaths::blazeface).
  bool blazeface = false;
  // Track mode: analyse this face box (from an earlier frame) instead of running the detector.
  bool hasBox = false;
  cv::Rect2f box;
  // Landmarks from the crop and its mirror image, averaged (mirror-consistent pose); false = the crop only (half the
  // cost, for frames whose pose is not measured closely).
  bool mirrorLandmarks = true;
  // Track mode only: the landmarks of an earlier frame of this face in the same box, and that frame's anchor. They
  // are reused (the landmark network skipped) when this frame's anchor says the face moved at most reuseMaxShift
  // pixels; otherwise the landmarks are computed as usual.
  bool hasReuse = false;
  std::array<float, 136> reuseLandmarks{};
  std::array<float, kAnchorSize> reuseAnchor{};
  float reuseMaxShift = 0;
};

class Pipeline {
 public:
  // Reads the networks (called on the creating thread).
  Pipeline(const ModelPaths& paths, const PipelineOptions& options);
  // Runs each network twice on the worker thread, to learn which blocks hold per-call data.
  void warmUp();
  // idleCores: cores not running a job right now, so a stage may borrow one.
  AnalysisResult run(const FrameJob& job, int idleCores = 0);

 private:
  // Each network runs with one input shape only: a reshape would reallocate the blocks learnt as volatile in warm-up.
  // Hence two landmark networks: the crop with its mirror image (batch 2), and the crop alone (batch 1).
  enum Net { kDetectNet, kLandmarkNet, kFeatureNet, kLivenessNet, kEyeNet, kLandmarkSingleNet, kBlazeFaceNet, kNets };
  cv::Mat forward(Net which, const cv::Mat& blob, std::vector<cv::Mat>* all = nullptr);
  float livenessOf(const cv::Mat& img, const cv::Rect2f& box);
  // BlazeFace's faces in img, boxes already mapped onto the default detector's and overlaps merged.
  void detectBlazeFace(const cv::Mat& img, std::vector<cv::Rect2d>& rects, std::vector<float>& scores);
  void wipeNetworks();

  PipelineOptions opt_;
  // Declared before the networks so that it outlives them: their blocks, freed as they are destroyed, are erased
  // from the recorder (secure.cc).
  AllocRecorder recorder_;
  cv::dnn::Net nets_[kNets];
  std::vector<std::string> detectOuts_, blazeFaceOuts_;
  // Per network, the blocks whose contents change with the input (its input copy and activations).
  std::unordered_set<cv::UMatData*> volatile_[kNets];
  std::atomic<unsigned> used_{0};  // networks run since the last wipe
  // The thread liveness runs on beside the embedding (parallelStages only). Last: it is stopped first, before the
  // networks and the recorder it uses go.
  std::unique_ptr<HelperThread> helper_;
};

}  // namespace faceid
