#pragma once
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>

namespace faceid {

enum class Format { Jpeg, Rgba, Bgr, I420 };

struct FrameSpec {
  Format format = Format::Jpeg;
  int width = 0;   // raw formats only
  int height = 0;  // raw formats only
};

// Decodes a frame into a BGR image. Throws FaceIdError with frame_* codes on bad input; refuses frames larger
// than maxPixels before allocating for them.
cv::Mat decodeFrame(const uint8_t* data, size_t size, const FrameSpec& spec, size_t maxPixels);

}  // namespace faceid
