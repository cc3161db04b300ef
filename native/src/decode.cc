#include "decode.h"

#include <jerror.h>
#include <jpeglib.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <string>
#include <string_view>

#include "errors.h"

namespace faceid {
namespace {

// Names the format of a non-JPEG payload from its magic bytes, for a helpful error.
const char* sniffOtherFormat(const uint8_t* d, size_t n) {
  using namespace std::string_view_literals;  // "...\0..."sv keeps the NUL bytes inside the magic numbers
  auto starts = [&](std::string_view magic) {
    return n >= magic.size() && std::memcmp(d, magic.data(), magic.size()) == 0;
  };
  if (starts("\x89PNG"sv)) return "PNG";
  if (starts("GIF8"sv)) return "GIF";
  if (starts("BM"sv)) return "BMP";
  if (starts("II*\0"sv) || starts("MM\0*"sv)) return "TIFF";
  if (n >= 12 && starts("RIFF"sv) && std::memcmp(d + 8, "WEBP", 4) == 0) return "WebP";
  if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
  if (starts("\xff\x0a"sv) || starts("\0\0\0\x0cJXL "sv)) return "JPEG XL";
  if (starts("\0\0\0\x0cjP  "sv) || starts("\xff\x4f\xff\x51"sv)) return "JPEG 2000";
  if (starts("P1"sv) || starts("P2"sv) || starts("P3"sv) || starts("P4"sv) || starts("P5"sv) || starts("P6"sv))
    return "PNM";
  return nullptr;
}

struct JpegErr {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  int fatalCode = 0;
  bool truncated = false;
  int warnings = 0;
  char message[JMSG_LENGTH_MAX] = {0};
};

void onJpegError(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  err->fatalCode = cinfo->err->msg_code;
  longjmp(err->jump, 1);
}

// libjpeg reports damaged data as warnings and goes on; a frame with any is refused rather than half-decoded.
void onJpegMessage(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  if (level >= 0) return;  // trace messages
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->truncated = true;
  err->warnings++;
}

cv::Mat decodeJpeg(const uint8_t* data, size_t size, size_t maxPixels) {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = onJpegError;
  err.mgr.emit_message = onJpegMessage;
  cv::Mat out;  // declared before setjmp so longjmp leaves it in a defined state
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    out.release();  // the wiping allocator clears what was decoded so far
    if (err.fatalCode == JERR_EMPTY_IMAGE) {
      throw FaceIdError("frame_dimensions_invalid", "The JPEG declares a zero dimension.");
    }
    if (err.fatalCode == JERR_IMAGE_TOO_BIG) {
      throw FaceIdError("frame_too_large", std::string("The JPEG is too large: ") + err.message);
    }
    throw FaceIdError("frame_corrupt", std::string("The JPEG could not be decoded: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const size_t w = cinfo.image_width, h = cinfo.image_height;
  if (w == 0 || h == 0) {
    jpeg_destroy_decompress(&cinfo);
    throw FaceIdError("frame_dimensions_invalid", "The JPEG declares a zero dimension.");
  }
  if (w * h > maxPixels) {
    jpeg_destroy_decompress(&cinfo);
    throw FaceIdError("frame_too_large", "The JPEG declares " + std::to_string(w) + "x" + std::to_string(h) +
                                             " pixels; the limit is " + std::to_string(maxPixels) + " pixels.");
  }
  cinfo.out_color_space = JCS_EXT_BGR;  // straight into OpenCV's channel order
  jpeg_start_decompress(&cinfo);
  out.create(static_cast<int>(cinfo.output_height), static_cast<int>(cinfo.output_width), CV_8UC3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.ptr<uint8_t>(static_cast<int>(cinfo.output_scanline));
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (err.truncated) {
    out.release();
    throw FaceIdError("frame_truncated", "The JPEG ends before its last scan (a truncated frame).");
  }
  if (err.warnings > 0) {
    out.release();
    throw FaceIdError("frame_corrupt", "The JPEG holds corrupt data.");
  }
  return out;
}

}  // namespace

cv::Mat decodeFrame(const uint8_t* data, size_t size, const FrameSpec& spec, size_t maxPixels) {
  if (size == 0) throw FaceIdError("frame_empty", "The frame is empty.");
  if (spec.format == Format::Jpeg) {
    if (size < 4 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) {
      if (const char* other = sniffOtherFormat(data, size)) {
        throw FaceIdError("frame_format_unsupported",
                          std::string("The frame is ") + other + "; only JPEG and raw pixels are accepted.");
      }
      throw FaceIdError("frame_corrupt", "The frame is not a JPEG (no start-of-image marker).");
    }
    return decodeJpeg(data, size, maxPixels);
  }
  const int w = spec.width, h = spec.height;
  if (w <= 0 || h <= 0) throw FaceIdError("frame_dimensions_invalid", "Raw frames need a width and height above 0.");
  if (static_cast<size_t>(w) * static_cast<size_t>(h) > maxPixels) {
    throw FaceIdError("frame_too_large", "The raw frame has more than " + std::to_string(maxPixels) + " pixels.");
  }
  size_t expected = 0;
  switch (spec.format) {
    case Format::Rgba:
      expected = size_t(w) * h * 4;
      break;
    case Format::Bgr:
      expected = size_t(w) * h * 3;
      break;
    case Format::I420:
      if (w % 2 || h % 2) throw FaceIdError("frame_dimensions_invalid", "I420 frames need an even width and height.");
      expected = size_t(w) * h * 3 / 2;
      break;
    default:
      break;
  }
  if (size != expected) {
    throw FaceIdError("frame_size_mismatch", "The raw frame has " + std::to_string(size) + " bytes; " +
                                                 std::to_string(w) + "x" + std::to_string(h) + " needs " +
                                                 std::to_string(expected) + ".");
  }
  // Views over the caller's bytes; conversion writes a new BGR image from the wiping allocator.
  auto* p = const_cast<uint8_t*>(data);
  cv::Mat out;
  switch (spec.format) {
    case Format::Rgba:
      cv::cvtColor(cv::Mat(h, w, CV_8UC4, p), out, cv::COLOR_RGBA2BGR);
      break;
    case Format::Bgr:
      cv::Mat(h, w, CV_8UC3, p).copyTo(out);
      break;
    case Format::I420:
      cv::cvtColor(cv::Mat(h * 3 / 2, w, CV_8UC1, p), out, cv::COLOR_YUV2BGR_I420);
      break;
    default:
      break;
  }
  return out;
}

}  // namespace faceid
