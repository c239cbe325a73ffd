// Internal to pyrun_proto: the primitive encoding of docs/PROTOCOL.md, "Encoding" (big-endian
// fixed-width integers, u32-length-prefixed strings, u32-count-prefixed lists).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::proto::wire {

// Appends fields to a payload.
class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  // Precondition: s.size() <= UINT32_MAX (frames are far smaller).
  void string(std::string_view s);
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

// Reads fields from a payload, remembering the first failure: once a read fails every later read
// returns a zero value, so a decoder reads straight through and checks finish() once. Field names
// appear in the error ("RUN: args[2]: length 70000 exceeds the 12 bytes that remain").
class Reader {
 public:
  Reader(std::span<const uint8_t> payload, std::string_view frame)
      : data_(payload), frame_(frame) {}

  uint8_t u8(std::string_view field);
  uint16_t u16(std::string_view field);
  uint32_t u32(std::string_view field);
  uint64_t u64(std::string_view field);
  int32_t i32(std::string_view field) { return static_cast<int32_t>(u32(field)); }
  // A string of at most max_length bytes. The length is compared with the bytes that remain
  // before anything is allocated.
  std::string string(std::string_view field, uint32_t max_length);
  // A list count: at most max_count, and count * min_item_size must fit in what remains, so a
  // forged count cannot make the decoder reserve memory the payload does not back.
  uint32_t count(std::string_view field, uint32_t max_count, size_t min_item_size);
  // A u8 that must be 0 or 1.
  uint8_t flag(std::string_view field);
  // Records a semantic failure of a field that decoded ("EXIT: verdict: invalid value 11").
  void fail(std::string_view field, std::string_view what);

  bool ok() const noexcept { return !error_; }
  size_t remaining() const noexcept { return data_.size() - pos_; }
  // The first error, or an error for trailing bytes, or success.
  Result<void> finish() const;

 private:
  bool take(std::string_view field, size_t n);
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  std::string_view frame_;
  std::optional<Error> error_;
};

}  // namespace pyrun::proto::wire
