#pragma once
#include <stdexcept>
#include <string>

namespace faceid {

// A failure with a stable code (see src/engine/errors.ts). Messages never hold frame data.
struct FaceIdError : std::runtime_error {
  std::string code;
  FaceIdError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

}  // namespace faceid
