#include "pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <opencv2/calib3d.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string_view>
#include <unordered_map>

#include "errors.h"

namespace faceid {
namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

constexpr int kDetectW = 320, kDetectH = 240;
constexpr float kLivenessScale = 2.7f;
constexpr int kEyeOpenClass = 1;  // checked on open-eyed portraits and synthetic closed eyes in test/engine.test.ts

// ArcFace's 112x112 template: eye centres, nose tip, mouth corners.
const cv::Point2f kTemplate[5] = {
    {38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f}, {41.5493f, 92.3655f}, {70.7299f, 92.2041f}};

cv::dnn::Net readNet(const std::string& path, const char* name) {
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
    if (net.empty()) throw FaceIdError("model_invalid", std::string("The ") + name + " model is empty: " + path);
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    return net;
  } catch (const cv::Exception& e) {
    throw FaceIdError("model_invalid", std::string("The ") + name + " model could not be loaded from " + path +
                                           " (run `npm run models`).");
  }
}

// iBUG 68: the index each point takes in the mirror image.
const int kMirror68[68] = {16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1,  0,  26, 25, 24, 23, 22, 21,
                           20, 19, 18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36,
                           41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65};

cv::Point2f pt(const std::array<float, 136>& l, int i) { return {l[2 * i], l[2 * i + 1]}; }
cv::Point2f mean(std::initializer_list<cv::Point2f> ps) {
  cv::Point2f s(0, 0);
  for (const auto& p : ps) s += p;
  return s * (1.0f / ps.size());
}

// Eye centres, nose tip and mouth corners from the 68 points (left = the image's left).
std::array<cv::Point2f, 5> fivePoints(const std::array<float, 136>& l) {
  return {mean({pt(l, 37), pt(l, 38), pt(l, 40), pt(l, 41)}), mean({pt(l, 43), pt(l, 44), pt(l, 46), pt(l, 47)}),
          pt(l, 30), mean({pt(l, 48), pt(l, 60)}), mean({pt(l, 54), pt(l, 64)})};
}

// Least-squares similarity (rotation, uniform scale, translation) mapping src onto the template.
cv::Mat similarityToTemplate(const std::array<cv::Point2f, 5>& src) {
  cv::Point2f ms(0, 0), md(0, 0);
  for (int i = 0; i < 5; i++) {
    ms += src[i];
    md += kTemplate[i];
  }
  ms *= 0.2f;
  md *= 0.2f;
  double num_a = 0, num_b = 0, den = 0;
  for (int i = 0; i < 5; i++) {
    const cv::Point2f p = src[i] - ms, q = kTemplate[i] - md;
    num_a += p.x * q.x + p.y * q.y;
    num_b += p.x * q.y - p.y * q.x;
    den += p.x * p.x + p.y * p.y;
  }
  if (den < 1e-6) den = 1e-6;
  const double a = num_a / den, b = num_b / den;
  cv::Mat m = (cv::Mat_<double>(2, 3) << a, -b, md.x - (a * ms.x - b * ms.y), b, a, md.y - (b * ms.x + a * ms.y));
  return m;
}

// The inner face of the 112x112 aligned crop (brows to chin, cheek to cheek): its mean leaves out the background and
// the black border the alignment adds when the face is near the frame's edge.
const cv::Rect kInnerFace(28, 36, 56, 64);
// FaceNorm::kGain lifts an inner face darker than this mean grey level to it, by at most kNormMaxGain.
constexpr double kNormTarget = 100, kNormMaxGain = 2;

// Illumination normalisation of the aligned face (8-bit BGR) into out, for the feature network; false = use the
// face as it is. Only a gain, and only on faces darker than kNormTarget, so that well-lit faces (enrollment photos)
// embed exactly as without it. Measured (README, "Webcam frames"): it helps dark faces without noise and costs noisy
// ones (the mean/std, per-channel, gamma and CLAHE variants tried did worse), hence off by default.
bool normaliseFace(const cv::Mat& aligned, cv::Mat& out, FaceNorm mode) {
  if (mode == FaceNorm::kNone) return false;
  cv::Mat grey;
  cv::cvtColor(aligned(kInnerFace), grey, cv::COLOR_BGR2GRAY);
  const double m = cv::mean(grey)[0];
  if (m >= kNormTarget) return false;
  aligned.convertTo(out, CV_8U, std::min(kNormMaxGain, kNormTarget / std::max(1.0, m)), 0);
  return true;
}

// The face box scaled about its centre, shifted (not cut) to stay inside the image, as the liveness model expects.
cv::Rect scaledBoxInside(const cv::Rect2f& box, float scaleWanted, int w, int h) {
  const float scale = std::min({(h - 1) / box.height, (w - 1) / box.width, scaleWanted});
  const float nw = box.width * scale, nh = box.height * scale;
  const float cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  float x1 = cx - nw / 2, y1 = cy - nh / 2, x2 = cx + nw / 2, y2 = cy + nh / 2;
  if (x1 < 0) {
    x2 -= x1;
    x1 = 0;
  }
  if (y1 < 0) {
    y2 -= y1;
    y1 = 0;
  }
  if (x2 > w - 1) {
    x1 -= x2 - w + 1;
    x2 = w - 1;
  }
  if (y2 > h - 1) {
    y1 -= y2 - h + 1;
    y2 = h - 1;
  }
  cv::Rect r(int(std::max(x1, 0.f)), int(std::max(y1, 0.f)), int(x2 - x1), int(y2 - y1));
  return r & cv::Rect(0, 0, w, h);
}

// Square crop around an eye, 1.6x the eye's width, as the eye model was trained on.
cv::Rect eyeBox(const std::array<float, 136>& l, int first, int w, int h) {
  const cv::Point2f c = mean({pt(l, first + 1), pt(l, first + 2), pt(l, first + 4), pt(l, first + 5)});
  const float size = (pt(l, first + 3).x - pt(l, first).x) * 1.6f;
  cv::Rect r(int(c.x - size / 2), int(c.y - size / 2), int(size), int(size));
  return r & cv::Rect(0, 0, w, h);
}

float softmaxAt(const float* v, int n, int k) {
  float mx = v[0];
  for (int i = 1; i < n; i++) mx = std::max(mx, v[i]);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += std::exp(v[i] - mx);
  return float(std::exp(v[k] - mx) / sum);
}

float softmaxAt(const cv::Mat& logits, int k) { return softmaxAt(logits.ptr<float>(), int(logits.total()), k); }

double radToDeg(double r) { return r * 180.0 / M_PI; }

// A generic adult face in millimetres (x to the image's right, y down, z away from the camera; nose tip at the
// origin), for the landmarks that stay put on the skin. Jaw contour points are left out: they slide along the
// silhouette as the head turns.
struct ModelPoint {
  int index;
  float x, y, z;
};
const ModelPoint kFace3d[] = {
    {17, -50, -55, 40}, {21, -12, -52, 25}, {22, 12, -52, 25}, {26, 50, -55, 40},                   // brow ends
    {27, 0, -38, 20},   {30, 0, 0, 0},      {31, -13, 7, 18},  {33, 0, 10, 15},   {35, 13, 7, 18},  // nose
    {36, -45, -35, 38}, {39, -16, -35, 28}, {42, 16, -35, 28}, {45, 45, -35, 38},                   // eye corners
    {48, -25, 30, 32},  {51, 0, 22, 18},    {54, 25, 30, 32},  {57, 0, 40, 22},                     // mouth
    {8, 0, 68, 20},                                                                                 // chin
};

// Head pose: the landmarks fitted to the generic 3D face with solvePnP (a pinhole camera with a ~53 degree field of
// view, centred). Yaw and pitch come from where the fitted face points; roll from the eye line.
void poseFromLandmarks(const std::array<float, 136>& l, int W, int H, FaceResult& f) {
  std::vector<cv::Point3f> model;
  std::vector<cv::Point2f> image;
  for (const auto& m : kFace3d) {
    model.emplace_back(m.x, m.y, m.z);
    image.push_back(pt(l, m.index));
  }
  const double focal = std::max(W, H);
  const cv::Matx33d camera(focal, 0, W / 2.0, 0, focal, H / 2.0, 0, 0, 1);
  const auto five = fivePoints(l);
  const double roll = std::atan2(five[1].y - five[0].y, five[1].x - five[0].x);
  // Start from a frontal face at the distance its eye width implies, so the fit never flips behind the camera.
  const double iod = std::max(1.0, double(cv::norm(five[1] - five[0])));
  const cv::Point2f nose = pt(l, 30);
  const double z = focal * 62.0 / iod;
  cv::Vec3d rvec(0, 0, 0), tvec((nose.x - W / 2.0) * z / focal, (nose.y - H / 2.0) * z / focal, z);
  bool ok = false;
  try {
    ok = cv::solvePnP(model, image, camera, cv::noArray(), rvec, tvec, true, cv::SOLVEPNP_ITERATIVE);
  } catch (const cv::Exception&) {
    ok = false;
  }
  f.roll = float(radToDeg(roll));
  if (!ok || tvec[2] <= 0) {
    f.yaw = f.pitch = 0;
    f.hasPose = false;
    return;
  }
  cv::Matx33d R;
  cv::Rodrigues(rvec, R);
  // The face looks along -z of its own frame.
  const cv::Vec3d forward = R * cv::Vec3d(0, 0, -1);
  // Seen from the camera at the face's place (not the image centre), so a frontal face off-centre reads frontal.
  const cv::Vec3d toCamera = -cv::normalize(tvec);
  const double yawFace = std::atan2(forward[0], -forward[2]), yawView = std::atan2(toCamera[0], -toCamera[2]);
  const double pitchFace = std::atan2(-forward[1], std::hypot(forward[0], forward[2]));
  const double pitchView = std::atan2(-toCamera[1], std::hypot(toCamera[0], toCamera[2]));
  f.yaw = float(radToDeg(yawFace - yawView));
  f.pitch = float(radToDeg(pitchFace - pitchView));
  f.hasPose = true;
}

cv::Rect rectAround(cv::Point2f c, float w, float h, int W, int H) {
  return cv::Rect(cvRound(c.x - w / 2), cvRound(c.y - h / 2), std::max(1, cvRound(w)), std::max(1, cvRound(h))) &
         cv::Rect(0, 0, W, H);
}

// Mean R,G,B of the regions the light challenge compares. The sums are over a few hundred pixels each.
void lightRegions(const cv::Mat& img, const FaceResult& f, std::array<float, kLightRegions * 3>& out) {
  const int W = img.cols, H = img.rows;
  const auto& l = f.landmarks;
  const auto five = fivePoints(l);
  const float iod = std::max(2.0f, float(cv::norm(five[1] - five[0])));
  auto put = [&](int region, const cv::Scalar& bgr, bool valid) {
    for (int c = 0; c < 3; c++) out[region * 3 + c] = valid ? float(bgr[2 - c]) : NAN;
  };
  auto meanOf = [&](int region, const cv::Rect& r) {
    const bool valid = r.width >= 2 && r.height >= 2;
    put(region, valid ? cv::mean(img(r)) : cv::Scalar(), valid);
  };
  // Inner face: brows to mouth.
  float x1 = W, y1 = H, x2 = 0, y2 = 0;
  for (int i = 17; i < 68; i++) {
    x1 = std::min(x1, l[2 * i]);
    x2 = std::max(x2, l[2 * i]);
    y1 = std::min(y1, l[2 * i + 1]);
    y2 = std::max(y2, l[2 * i + 1]);
  }
  meanOf(kFace,
         cv::Rect(cv::Point(cvRound(x1), cvRound(y1)), cv::Point(cvRound(x2), cvRound(y2))) & cv::Rect(0, 0, W, H));
  const cv::Point2f brows = mean({pt(l, 19), pt(l, 24)});
  meanOf(kForehead, rectAround(brows - cv::Point2f(0, 0.35f * iod), 0.8f * iod, 0.3f * iod, W, H));
  meanOf(kNose, rectAround(mean({pt(l, 29), pt(l, 30)}), 0.25f * iod, 0.3f * iod, W, H));
  meanOf(kLeftCheek, rectAround((pt(l, 2) + pt(l, 31)) * 0.5f, 0.3f * iod, 0.3f * iod, W, H));
  meanOf(kRightCheek, rectAround((pt(l, 14) + pt(l, 35)) * 0.5f, 0.3f * iod, 0.3f * iod, W, H));
  meanOf(kChin, rectAround((pt(l, 8) + pt(l, 57)) * 0.5f, 0.35f * iod, 0.2f * iod, W, H));
  // Beside the head at eye-to-mouth height: normally the wall behind the patient.
  const float cx = f.box.x + f.box.width / 2, bw = f.box.width;
  const int top = cvRound(five[0].y), bottom = cvRound(std::max(five[3].y, five[4].y));
  const cv::Rect frame(0, 0, W, H);
  const cv::Rect left = cv::Rect(cvRound(cx - 1.25f * bw), top, cvRound(0.35f * bw), std::max(1, bottom - top)) & frame;
  const cv::Rect right = cv::Rect(cvRound(cx + 0.9f * bw), top, cvRound(0.35f * bw), std::max(1, bottom - top)) & frame;
  cv::Scalar sum(0, 0, 0);
  double n = 0;
  for (const cv::Rect& r : {left, right}) {
    if (r.width < 2 || r.height < 2) continue;
    sum += cv::sum(img(r));
    n += r.area();
  }
  put(kSurround, n > 0 ? sum * (1.0 / n) : cv::Scalar(), n >= 16);
  put(kFrame, cv::mean(img), true);
}

// The anchor's region: the central 70% of the face box each way, the face's own features (eyes, brows, nose, mouth)
// rather than its outline and the background beside it.
constexpr float kAnchorInner = 0.7f;
// Shifts searched when comparing two anchors, in bins each way (4 bins are about 7 px for an 80 px face box).
constexpr int kAnchorSearch = 4;

cv::Rect anchorRect(const cv::Rect2f& box) {
  const float w = box.width * kAnchorInner, h = box.height * kAnchorInner;
  return {cvRound(box.x + (box.width - w) / 2), cvRound(box.y + (box.height - h) / 2), cvRound(w), cvRound(h)};
}

// Divides a profile by its mean (so a change of the light's level or colour cancels), minus 1; false when it is black.
bool normaliseProfile(const float* v, float* out) {
  double sum = 0;
  for (int i = 0; i < kAnchorBins; i++) sum += v[i];
  const double m = sum / kAnchorBins;
  if (!(m >= 1.0)) return false;
  for (int i = 0; i < kAnchorBins; i++) out[i] = float(v[i] / m - 1.0);
  return true;
}

// The anchor of the face in `box`: false when the inner box is too small or not wholly inside the frame.
bool anchorOf(const cv::Mat& img, const cv::Rect2f& box, std::array<float, kAnchorSize>& out) {
  const cv::Rect r = anchorRect(box);
  if (r.width < kAnchorBins || r.height < kAnchorBins || (r & cv::Rect(0, 0, img.cols, img.rows)) != r) return false;
  cv::Mat grey, small, cols, rows;
  cv::cvtColor(img(r), grey, cv::COLOR_BGR2GRAY);
  cv::resize(grey, small, cv::Size(kAnchorBins, kAnchorBins), 0, 0, cv::INTER_AREA);
  cv::reduce(small, cols, 0, cv::REDUCE_AVG, CV_32F);  // 1 x bins: across
  cv::reduce(small, rows, 1, cv::REDUCE_AVG, CV_32F);  // bins x 1: down
  return normaliseProfile(cols.ptr<float>(), out.data()) &&
         normaliseProfile(rows.ptr<float>(), out.data() + kAnchorBins);
}

// The shift (in bins, to a fraction of one) that best lays profile b over profile a; infinity when the best is at the
// edge of the search (the face moved further) or the profiles are not numbers.
float profileShift(const float* a, const float* b) {
  double err[2 * kAnchorSearch + 1];
  int best = 0;
  for (int s = -kAnchorSearch; s <= kAnchorSearch; s++) {
    double e = 0;
    int n = 0;
    for (int i = std::max(0, -s); i < std::min(kAnchorBins, kAnchorBins - s); i++) {
      const double d = double(b[i + s]) - a[i];
      e += d * d;
      n++;
    }
    err[s + kAnchorSearch] = e / n;
    if (!std::isfinite(err[s + kAnchorSearch])) return INFINITY;
    if (err[s + kAnchorSearch] < err[best + kAnchorSearch]) best = s;
  }
  if (best == -kAnchorSearch || best == kAnchorSearch) return INFINITY;
  const double l = err[best + kAnchorSearch - 1], c = err[best + kAnchorSearch], r = err[best + kAnchorSearch + 1];
  const double curve = l - 2 * c + r;
  return float(curve > 0 ? best + 0.5 * (l - r) / curve : best);
}

// How far the face moved between the frames of two anchors taken in the same box, in pixels (x, y).
cv::Point2f anchorShift(const std::array<float, kAnchorSize>& a, const std::array<float, kAnchorSize>& b,
                        const cv::Rect2f& box) {
  const cv::Rect r = anchorRect(box);
  const float dx = profileShift(a.data(), b.data()), dy = profileShift(a.data() + kAnchorBins, b.data() + kAnchorBins);
  return {dx * r.width / kAnchorBins, dy * r.height / kAnchorBins};
}

uint64_t hashBlock(const cv::UMatData* u) {
  return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(u->origdata), u->size));
}

// BlazeFace, MediaPipe's short-range face detector (models/manifest.json `blazeface`): 128x128 RGB in [-1, 1], NHWC.
// Its 896 anchors are MediaPipe's front SSD configuration: strides 8, 16, 16, 16, i.e. a 16x16 grid with 2 anchors a
// cell and an 8x8 grid with 6, all of unit size, so each regresses its box centre offset and size in input pixels.
constexpr int kBlazeSize = 128;
constexpr int kBlazeAnchors = 16 * 16 * 2 + 8 * 8 * 6;
// MediaPipe's own threshold for this model. On 82 face-free crops of the labelled photos, 4 gave a face at 0.5, none
// at 0.75; desk-sized faces of the labelled set score 0.8-0.97.
constexpr float kBlazeThreshold = 0.75f;
// Overlapping boxes (IoU from 0.3, MediaPipe's) are blended, weighted by score, into one.
constexpr float kBlazeOverlap = 0.3f;
// BlazeFace's boxes are square and sit around brows to mouth; the default detector's, which the landmark network was
// trained on, are about 1.4 times as tall as wide, forehead to chin. The mapping (centre shift in box widths and
// heights, then width and height factors), fitted on the labelled set's desk frames (face 60-80 px wide) with the
// median of each ratio: box IoU with the default detector 0.89 (median; 0.70 unmapped).
constexpr float kBlazeShiftX = -0.007f, kBlazeShiftY = -0.114f, kBlazeScaleW = 0.865f, kBlazeScaleH = 1.242f;

std::vector<cv::Point2f> blazeAnchors() {
  std::vector<cv::Point2f> a;
  a.reserve(kBlazeAnchors);
  for (const auto& [cells, perCell] : {std::pair{16, 2}, std::pair{8, 6}}) {
    for (int y = 0; y < cells; y++) {
      for (int x = 0; x < cells; x++) {
        for (int k = 0; k < perCell; k++) a.emplace_back((x + 0.5f) / cells, (y + 0.5f) / cells);
      }
    }
  }
  return a;
}

double overlap(const cv::Rect2d& a, const cv::Rect2d& b) {
  const double inter = (a & b).area();
  return inter > 0 ? inter / (a.area() + b.area() - inter) : 0;
}

}  // namespace

Pipeline::Pipeline(const ModelPaths& paths, const PipelineOptions& options) : opt_(options) {
  nets_[kDetectNet] = readNet(paths.detect, "detect");
  nets_[kLandmarkNet] = readNet(paths.landmark, "landmark");
  nets_[kLandmarkSingleNet] = readNet(paths.landmark, "landmark");
  nets_[kFeatureNet] = readNet(paths.feature, "feature");
  nets_[kLivenessNet] = readNet(paths.liveness, "liveness");
  nets_[kEyeNet] = readNet(paths.eye, "eye");
  detectOuts_ = nets_[kDetectNet].getUnconnectedOutLayersNames();
  if (!paths.blazeface.empty()) {
    nets_[kBlazeFaceNet] = readNet(paths.blazeface, "blazeface");
    blazeFaceOuts_ = nets_[kBlazeFaceNet].getUnconnectedOutLayersNames();
  }
  if (opt_.parallelStages) {
    // Its allocations are recorded as the worker's are, so that what the liveness network keeps is wiped too.
    helper_ =
        std::make_unique<HelperThread>([this] { setThreadRecorder(&recorder_); }, [] { setThreadRecorder(nullptr); });
  }
}

cv::Mat Pipeline::forward(Net which, const cv::Mat& blob, std::vector<cv::Mat>* all) {
  used_ |= 1u << which;
  cv::dnn::Net& net = nets_[which];
  net.setInput(blob);
  if (all) {
    net.forward(*all, which == kBlazeFaceNet ? blazeFaceOuts_ : detectOuts_);
    return {};
  }
  return net.forward().clone();
}

float Pipeline::livenessOf(const cv::Mat& img, const cv::Rect2f& box) {
  const cv::Rect r = scaledBoxInside(box, kLivenessScale, img.cols, img.rows);
  if (r.width < 8 || r.height < 8) return -1;
  cv::Mat patch;
  cv::resize(img(r), patch, cv::Size(128, 128), 0, 0, cv::INTER_LINEAR);
  return softmaxAt(forward(kLivenessNet, cv::dnn::blobFromImage(patch, 1.0, cv::Size(), cv::Scalar(), true)), 0);
}

void Pipeline::detectBlazeFace(const cv::Mat& img, std::vector<cv::Rect2d>& rects, std::vector<float>& scores) {
  static const std::vector<cv::Point2f> anchors = blazeAnchors();
  if (nets_[kBlazeFaceNet].empty()) throw FaceIdError("invalid_argument", "The blazeface detector is not loaded.");
  const int W = img.cols, H = img.rows;
  // Letterboxed, as MediaPipe feeds it: the whole frame, its aspect kept, centred on a black square. (Stretching a
  // 4:3 frame to the square found as many faces but boxes that agree less with the default detector's.)
  const double k = double(kBlazeSize) / std::max(W, H);
  const int w = std::clamp(cvRound(W * k), 1, kBlazeSize), h = std::clamp(cvRound(H * k), 1, kBlazeSize);
  const int ox = (kBlazeSize - w) / 2, oy = (kBlazeSize - h) / 2;
  const double sx = double(W) / w, sy = double(H) / h;  // square pixels to frame pixels
  std::vector<cv::Mat> outs;
  {
    cv::Mat square(kBlazeSize, kBlazeSize, CV_8UC3, cv::Scalar::all(0));
    cv::Mat inner = square(cv::Rect(ox, oy, w, h));
    cv::resize(img, inner, inner.size(), 0, 0, cv::INTER_AREA);
    cv::cvtColor(square, square, cv::COLOR_BGR2RGB);
    const int shape[4] = {1, kBlazeSize, kBlazeSize, 3};
    cv::Mat blob(4, shape, CV_32F);
    cv::Mat pixels(kBlazeSize, kBlazeSize, CV_32FC3, blob.ptr<float>());
    square.convertTo(pixels, CV_32F, 1.0 / 127.5, -1.0);
    forward(kBlazeFaceNet, blob, &outs);
  }
  // Per grid (16x16, then 8x8): scores [1, n, 1] and regressors [1, n, 16] (box centre, size, then 6 keypoints).
  const cv::Mat* score[2] = {nullptr, nullptr};
  const cv::Mat* reg[2] = {nullptr, nullptr};
  for (const auto& o : outs) {
    if (o.dims != 3 || o.type() != CV_32F) continue;
    const int grid = o.size[1] == 16 * 16 * 2 ? 0 : o.size[1] == 8 * 8 * 6 ? 1 : -1;
    if (grid >= 0 && o.size[2] == 1) score[grid] = &o;
    if (grid >= 0 && o.size[2] == 16) reg[grid] = &o;
  }
  if (!score[0] || !score[1] || !reg[0] || !reg[1]) {
    throw FaceIdError("model_invalid", "The blazeface model has unexpected outputs.");
  }
  struct Candidate {
    float score;
    cv::Rect2d box;
  };
  std::vector<Candidate> found;
  const float minLogit = std::log(kBlazeThreshold / (1 - kBlazeThreshold));
  for (int grid = 0, base = 0; grid < 2; base += score[grid]->size[1], grid++) {
    const float* s = score[grid]->ptr<float>();
    const float* r = reg[grid]->ptr<float>();
    for (int i = 0; i < score[grid]->size[1]; i++) {
      if (!(s[i] >= minLogit)) continue;
      const float* v = r + 16 * i;
      const double cx = anchors[base + i].x * kBlazeSize + v[0], cy = anchors[base + i].y * kBlazeSize + v[1];
      const cv::Rect2d box((cx - v[2] / 2 - ox) * sx, (cy - v[3] / 2 - oy) * sy, v[2] * sx, v[3] * sy);
      if (box.width > 0 && box.height > 0) found.push_back({1.0f / (1.0f + std::exp(-s[i])), box});
    }
  }
  std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  std::vector<bool> merged(found.size(), false);
  for (size_t i = 0; i < found.size(); i++) {
    if (merged[i]) continue;
    double total = 0, x = 0, y = 0, bw = 0, bh = 0;
    for (size_t j = i; j < found.size(); j++) {
      if (merged[j] || (j != i && overlap(found[i].box, found[j].box) < kBlazeOverlap)) continue;
      merged[j] = true;
      const double wgt = found[j].score;
      const cv::Rect2d& b = found[j].box;
      total += wgt;
      x += wgt * b.x;
      y += wgt * b.y;
      bw += wgt * b.width;
      bh += wgt * b.height;
    }
    x /= total, y /= total, bw /= total, bh /= total;
    // Onto the default detector's box, then clamped to the frame as its boxes are.
    const double cx = x + bw * (0.5 + kBlazeShiftX), cy = y + bh * (0.5 + kBlazeShiftY);
    const double mw = bw * kBlazeScaleW, mh = bh * kBlazeScaleH;
    const double x1 = std::clamp(cx - mw / 2, 0.0, double(W)), y1 = std::clamp(cy - mh / 2, 0.0, double(H));
    const double x2 = std::clamp(cx + mw / 2, 0.0, double(W)), y2 = std::clamp(cy + mh / 2, 0.0, double(H));
    if (x2 - x1 < 2 || y2 - y1 < 2) continue;
    rects.emplace_back(x1, y1, x2 - x1, y2 - y1);
    scores.push_back(found[i].score);
  }
}

void Pipeline::warmUp() {
  setThreadRecorder(&recorder_);
  const std::vector<std::vector<int>> shapes = {
      {1, 3, kDetectH, kDetectW},    {2, 1, 64, 64}, {1, 3, 112, 112}, {1, 3, 128, 128}, {2, 1, 24, 24}, {1, 1, 64, 64},
      {1, kBlazeSize, kBlazeSize, 3}};
  for (int n = 0; n < kNets; n++) {
    if (nets_[n].empty()) continue;  // an optional network not loaded (blazeface)
    // Run twice on random inputs; blocks that changed in between hold per-call data.
    std::unordered_map<cv::UMatData*, uint64_t> before;
    for (int pass = 0; pass < 2; pass++) {
      {
        cv::Mat blob(shapes[n], CV_32F);
        cv::randu(blob, -1, 1);
        std::vector<cv::Mat> outs;
        forward(Net(n), blob, n == kDetectNet || n == kBlazeFaceNet ? &outs : nullptr);
      }
      std::lock_guard<std::mutex> lock(recorder_.mu);
      for (cv::UMatData* u : recorder_.live) {
        if (pass == 0) {
          before[u] = hashBlock(u);
        } else {
          auto it = before.find(u);
          if (it == before.end() || it->second != hashBlock(u)) volatile_[n].insert(u);
        }
      }
    }
  }
  // What warm-up allocated includes state the networks keep (e.g. fused weights): never wipe that wholesale.
  {
    std::lock_guard<std::mutex> lock(recorder_.mu);
    recorder_.mark.clear();
  }
  used_ = (1u << kNets) - 1;
  wipeNetworks();
}

void Pipeline::wipeNetworks() {
  const unsigned used = used_.exchange(0);
  std::unordered_set<cv::UMatData*> targets;
  {
    std::lock_guard<std::mutex> lock(recorder_.mu);
    for (int n = 0; n < kNets; n++) {
      if (used & (1u << n)) targets.insert(volatile_[n].begin(), volatile_[n].end());
    }
    targets.insert(recorder_.mark.begin(), recorder_.mark.end());
    recorder_.mark.clear();
  }
  recorder_.wipeLive(targets);
}

AnalysisResult Pipeline::run(const FrameJob& job, int idleCores) {
  // Wipes what the networks keep, on success and on error alike; total includes the wipe.
  struct WipeOnExit {
    Pipeline* p;
    Timings* tm;
    Clock::time_point t0;
    bool done = false;
    void finish() {
      if (done) return;
      done = true;
      const auto t = Clock::now();
      p->wipeNetworks();
      tm->wipe = msSince(t);
      tm->total = msSince(t0);
    }
    ~WipeOnExit() { finish(); }
  };
  AnalysisResult res;
  const auto t0 = Clock::now();
  WipeOnExit guard{this, &res.timings, t0};
  {
    std::lock_guard<std::mutex> lock(recorder_.mu);
    recorder_.mark.clear();
  }
  Timings& tm = res.timings;
  cv::Mat img = decodeFrame(job.data, job.size, job.spec, opt_.maxPixels);
  tm.decode = msSince(t0);
  res.width = img.cols;
  res.height = img.rows;
  const int W = img.cols, H = img.rows;
  if (job.stages & kQuality) {
    // One pass over the decoded frame (about 0.02 ms at 320x240), with the grey weights of cv::COLOR_BGR2GRAY.
    const auto tq = Clock::now();
    const cv::Scalar m = cv::mean(img);
    res.brightness = float(0.114 * m[0] + 0.587 * m[1] + 0.299 * m[2]);
    tm.quality += msSince(tq);
  }

  // Detect, unless the caller tracks a face from an earlier frame.
  auto t = Clock::now();
  if (job.hasBox) {
    FaceResult f;
    f.box = job.box & cv::Rect2f(0, 0, float(W), float(H));
    f.primary = true;
    if (f.box.width >= 8 && f.box.height >= 8) res.faces.push_back(f);
  } else {
    std::vector<cv::Rect2d> rects;
    std::vector<float> scores;
    std::vector<int> keep;
    if (job.blazeface) {
      detectBlazeFace(img, rects, scores);  // overlaps already merged
      for (int k = 0; k < int(rects.size()); k++) keep.push_back(k);
    }
    // The default detector, also when BlazeFace found nothing: it misses a few faces the default finds (88 of 1,250
    // frames of rendered head turns; a low-contrast face scores 0.74-0.78 frontal), and a frame without a face must
    // mean that neither found one.
    if (!job.blazeface || rects.empty()) {
      cv::Mat blob = cv::dnn::blobFromImage(img, 1.0 / 128, cv::Size(kDetectW, kDetectH), cv::Scalar(127, 127, 127),
                                            false, false, CV_32F);
      std::vector<cv::Mat> outs;
      forward(kDetectNet, blob, &outs);
      const cv::Mat* boxes = nullptr;
      const cv::Mat* conf = nullptr;
      for (const auto& o : outs) (o.size[o.dims - 1] == 4 ? boxes : conf) = &o;
      if (!boxes || !conf) throw FaceIdError("model_invalid", "The detect model has unexpected outputs.");
      const int n = boxes->size[1];
      const float* b = boxes->ptr<float>();
      const float* c = conf->ptr<float>();
      for (int i = 0; i < n; i++) {
        if (c[2 * i + 1] < opt_.detectThreshold) continue;
        const float x1 = std::clamp(b[4 * i] * W, 0.f, float(W)), y1 = std::clamp(b[4 * i + 1] * H, 0.f, float(H));
        const float x2 = std::clamp(b[4 * i + 2] * W, 0.f, float(W)), y2 = std::clamp(b[4 * i + 3] * H, 0.f, float(H));
        if (x2 - x1 < 2 || y2 - y1 < 2) continue;
        rects.emplace_back(x1, y1, x2 - x1, y2 - y1);
        scores.push_back(c[2 * i + 1]);
      }
      cv::dnn::NMSBoxes(rects, scores, opt_.detectThreshold, opt_.nmsThreshold, keep);
    }
    for (int k : keep) {
      FaceResult f;
      f.box = cv::Rect2f(rects[k]);
      f.score = scores[k];
      res.faces.push_back(f);
    }
    // Primary: the largest, most central face; the rest follow by size.
    auto weight = [&](const FaceResult& f) {
      const double dx = (f.box.x + f.box.width / 2) / W - 0.5, dy = (f.box.y + f.box.height / 2) / H - 0.5;
      return f.box.area() * (1.0 - std::sqrt(dx * dx + dy * dy));
    };
    std::sort(res.faces.begin(), res.faces.end(),
              [](const FaceResult& a, const FaceResult& b) { return a.box.area() > b.box.area(); });
    if (!res.faces.empty()) {
      auto best = std::max_element(res.faces.begin(), res.faces.end(),
                                   [&](const FaceResult& a, const FaceResult& b) { return weight(a) < weight(b); });
      std::rotate(res.faces.begin(), best, best + 1);
      res.faces[0].primary = true;
    }
  }
  tm.detect = msSince(t);

  const int detailed = std::min<int>(job.maxFaces, int(res.faces.size()));
  for (int i = 0; i < detailed; i++) {
    FaceResult& f = res.faces[i];
    // Liveness needs only the box: with a core idle, run it beside landmarks and embedding on the helper thread. On
    // any way out of this iteration, `beside` waits for it (it borrows img).
    float besideLiveness = -1;
    HelperThread::Pending beside;
    if ((job.stages & kLiveness) && (job.stages & kEmbedding) && helper_ && idleCores > 0) {
      beside = helper_->post([this, &img, box = f.box, out = &besideLiveness, ms = &tm.liveness] {
        const auto start = Clock::now();
        *out = livenessOf(img, box);
        *ms += msSince(start);
      });
    }
    const cv::Rect crop = cv::Rect(f.box) & cv::Rect(0, 0, W, H);
    const bool wantLm = job.stages & (kLandmarks | kEmbedding | kEyes | kPose | kQuality | kLight);
    // The anchor first: in track mode it may show that an earlier frame's landmarks still fit this one.
    const bool reuse = job.hasBox && job.hasReuse && i == 0 && wantLm;
    bool anchored = false;
    if ((job.stages & kAnchor) || reuse) {
      t = Clock::now();
      anchored = anchorOf(img, f.box, f.anchor);
      f.hasAnchor = anchored && (job.stages & kAnchor);
      const cv::Point2f shift =
          reuse && anchored ? anchorShift(job.reuseAnchor, f.anchor, f.box) : cv::Point2f(INFINITY, INFINITY);
      if (std::hypot(shift.x, shift.y) <= job.reuseMaxShift) {
        // The earlier landmarks, moved along with the face.
        for (int j = 0; j < 68; j++) {
          f.landmarks[2 * j] = job.reuseLandmarks[2 * j] + shift.x;
          f.landmarks[2 * j + 1] = job.reuseLandmarks[2 * j + 1] + shift.y;
        }
        f.hasLandmarks = f.landmarksReused = true;
      }
      tm.landmarks += msSince(t);
    }
    if (wantLm && !f.landmarksReused && crop.width >= 8 && crop.height >= 8) {
      t = Clock::now();
      // The crop and its mirror image in one batch, the mirror's points flipped back and averaged: the landmarks
      // (and the pose fitted to them) answer a mirrored face in kind, and their noise drops.
      std::vector<cv::Mat> crops(job.mirrorLandmarks ? 2 : 1);
      cv::Mat grey;
      cv::cvtColor(img(crop), grey, cv::COLOR_BGR2GRAY);
      cv::resize(grey, crops[0], cv::Size(64, 64), 0, 0, cv::INTER_LINEAR);
      if (job.mirrorLandmarks) cv::flip(crops[0], crops[1], 1);
      cv::Mat out =
          forward(job.mirrorLandmarks ? kLandmarkNet : kLandmarkSingleNet, cv::dnn::blobFromImages(crops, 1.0 / 256));
      const float* v = out.ptr<float>();
      const float* m = v + 136;
      for (int j = 0; j < 68; j++) {
        const int k = kMirror68[j];
        const float x = job.mirrorLandmarks ? 0.5f * (v[2 * j] + (1.0f - m[2 * k])) : v[2 * j];
        const float y = job.mirrorLandmarks ? 0.5f * (v[2 * j + 1] + m[2 * k + 1]) : v[2 * j + 1];
        f.landmarks[2 * j] = crop.x + x * crop.width;
        f.landmarks[2 * j + 1] = crop.y + y * crop.height;
      }
      f.hasLandmarks = true;
      tm.landmarks += msSince(t);
    }

    cv::Mat aligned;
    if (f.hasLandmarks && (job.stages & (kEmbedding | kQuality))) {
      t = Clock::now();
      cv::warpAffine(img, aligned, similarityToTemplate(fivePoints(f.landmarks)), cv::Size(112, 112), cv::INTER_LINEAR,
                     cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
      tm.align += msSince(t);
    }

    if (!aligned.empty() && (job.stages & kEmbedding)) {
      t = Clock::now();
      cv::Mat normalised;
      const cv::Mat& face = normaliseFace(aligned, normalised, opt_.faceNorm) ? normalised : aligned;
      // One unit-length embedding per view, summed, then normalised. The batch-1 network runs once per view (a batch-2
      // one would need its own copy of the weights; see Net): the mirror costs a second pass.
      cv::Mat sum(1, 512, CV_32F, cv::Scalar(0));
      auto addView = [&](const cv::Mat& view) {
        cv::Mat out =
            forward(kFeatureNet, cv::dnn::blobFromImage(view, 1.0 / 128, cv::Size(), cv::Scalar(127, 127, 127), false));
        const float* v = out.ptr<float>();
        double norm = 0;
        for (int j = 0; j < 512; j++) norm += double(v[j]) * v[j];
        const float inv = norm > 0 ? float(1.0 / std::sqrt(norm)) : 0.f;
        float* s = sum.ptr<float>();
        for (int j = 0; j < 512; j++) s[j] += v[j] * inv;
      };
      addView(face);
      if (opt_.mirrorEmbedding) {
        cv::Mat mirrored;
        cv::flip(face, mirrored, 1);
        addView(mirrored);
      }
      const float* s = sum.ptr<float>();
      double norm = 0;
      for (int j = 0; j < 512; j++) norm += double(s[j]) * s[j];
      const float inv = norm > 0 ? float(1.0 / std::sqrt(norm)) : 0.f;
      for (int j = 0; j < 512; j++) f.embedding[j] = s[j] * inv;
      f.hasEmbedding = true;
      tm.embedding += msSince(t);
    }

    if (beside.valid()) {
      beside.get();
      f.liveness = besideLiveness;
      f.hasLiveness = f.liveness >= 0;
    } else if (job.stages & kLiveness) {
      t = Clock::now();
      f.liveness = livenessOf(img, f.box);
      f.hasLiveness = f.liveness >= 0;
      tm.liveness += msSince(t);
    }

    if (f.hasLandmarks && (job.stages & kEyes)) {
      t = Clock::now();
      // Both eyes in one forward pass (batch of 2).
      const cv::Rect boxes[2] = {eyeBox(f.landmarks, 36, W, H), eyeBox(f.landmarks, 42, W, H)};
      if (boxes[0].width >= 4 && boxes[0].height >= 4 && boxes[1].width >= 4 && boxes[1].height >= 4) {
        std::vector<cv::Mat> crops(2);
        for (int e = 0; e < 2; e++) {
          cv::Mat grey;
          cv::cvtColor(img(boxes[e]), grey, cv::COLOR_BGR2GRAY);
          cv::resize(grey, crops[e], cv::Size(24, 24), 0, 0, cv::INTER_LINEAR);
        }
        cv::Mat out = forward(kEyeNet, cv::dnn::blobFromImages(crops, 1.0 / 255));
        // The model flattens the batch: [1, 4] = two pairs of logits.
        f.eyeLeft = softmaxAt(out.ptr<float>(), 2, kEyeOpenClass);
        f.eyeRight = softmaxAt(out.ptr<float>() + 2, 2, kEyeOpenClass);
        f.hasEyes = true;
      }
      tm.eyes += msSince(t);
    }

    // Pose only from mirror-averaged landmarks: the network alone reads frontal faces as turned by 20-30 degrees.
    if (f.hasLandmarks && job.mirrorLandmarks && (job.stages & (kPose | kQuality)))
      poseFromLandmarks(f.landmarks, W, H, f);

    if (f.hasLandmarks && (job.stages & kLight)) {
      t = Clock::now();
      lightRegions(img, f, f.light);
      f.hasLight = true;
      tm.light += msSince(t);
    }

    if (job.stages & kQuality) {
      t = Clock::now();
      cv::Mat grey, lap;
      if (!aligned.empty()) {
        cv::cvtColor(aligned, grey, cv::COLOR_BGR2GRAY);
      } else if (crop.width >= 8 && crop.height >= 8) {
        cv::Mat g;
        cv::cvtColor(img(crop), g, cv::COLOR_BGR2GRAY);
        cv::resize(g, grey, cv::Size(112, 112));
      }
      if (!grey.empty()) {
        cv::Laplacian(grey, lap, CV_32F);
        cv::Scalar m, sd;
        cv::meanStdDev(lap, m, sd);
        f.sharpness = float(sd[0] * sd[0]);
        f.brightness = float(cv::mean(grey)[0]);
      }
      if (f.hasLandmarks) {
        const auto five = fivePoints(f.landmarks);
        f.faceSize = float(cv::norm(five[1] - five[0]));
        f.poseAngle = std::max(std::fabs(f.yaw), std::fabs(f.pitch));
      } else {
        f.faceSize = f.box.width / 2.5f;
      }
      f.hasQuality = true;
      tm.quality += msSince(t);
    }
    if (!(job.stages & kPose)) f.hasPose = false;
    if (!(job.stages & kLandmarks)) f.hasLandmarks = false;  // computed for other stages, not asked for
  }
  img.release();
  guard.finish();
  return res;
}

}  // namespace faceid
