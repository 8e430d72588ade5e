#pragma once

namespace meshbox {

/// Base for types with identity (handles, connections): no copies, no moves.
class NonCopyable {
 protected:
  NonCopyable() = default;
  ~NonCopyable() = default;

 public:
  NonCopyable(const NonCopyable&) = delete;
  NonCopyable& operator=(const NonCopyable&) = delete;
};

}  // namespace meshbox
