// The primitive encoding shared by every pyrun/1 message.
#include "proto/wire.h"

#include <limits>

namespace pyrun::proto::wire {

void Writer::u16(uint16_t v) {
  out_.push_back(static_cast<uint8_t>(v >> 8));
  out_.push_back(static_cast<uint8_t>(v));
}

void Writer::u32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<uint8_t>(v >> shift));
}

void Writer::u64(uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out_.push_back(static_cast<uint8_t>(v >> shift));
}

void Writer::string(std::string_view s) {
  u32(static_cast<uint32_t>(s.size()));
  out_.insert(out_.end(), s.begin(), s.end());
}

bool Reader::take(std::string_view field, size_t n) {
  if (error_) return false;
  if (n > remaining()) {
    fail(field,
         "needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " remain");
    return false;
  }
  return true;
}

uint8_t Reader::u8(std::string_view field) {
  if (!take(field, 1)) return 0;
  return data_[pos_++];
}

uint16_t Reader::u16(std::string_view field) {
  if (!take(field, 2)) return 0;
  auto v = static_cast<uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
  pos_ += 2;
  return v;
}

uint32_t Reader::u32(std::string_view field) {
  if (!take(field, 4)) return 0;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | data_[pos_++];
  return v;
}

uint64_t Reader::u64(std::string_view field) {
  if (!take(field, 8)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | data_[pos_++];
  return v;
}

std::string Reader::string(std::string_view field, uint32_t max_length) {
  uint32_t length = u32(field);
  if (error_) return {};
  if (length > max_length) {
    fail(field, "length " + std::to_string(length) + " exceeds the maximum of " +
                    std::to_string(max_length));
    return {};
  }
  if (length > remaining()) {
    fail(field, "length " + std::to_string(length) + " exceeds the " + std::to_string(remaining()) +
                    " bytes that remain");
    return {};
  }
  std::string s(reinterpret_cast<const char*>(data_.data() + pos_), length);
  pos_ += length;
  return s;
}

uint32_t Reader::count(std::string_view field, uint32_t max_count, size_t min_item_size) {
  uint32_t n = u32(field);
  if (error_) return 0;
  if (n > max_count) {
    fail(field,
         "count " + std::to_string(n) + " exceeds the maximum of " + std::to_string(max_count));
    return 0;
  }
  // n <= max_count (small) keeps the product far from overflow.
  if (static_cast<size_t>(n) * min_item_size > remaining()) {
    fail(field, "count " + std::to_string(n) + " needs at least " +
                    std::to_string(static_cast<size_t>(n) * min_item_size) + " bytes, " +
                    std::to_string(remaining()) + " remain");
    return 0;
  }
  return n;
}

uint8_t Reader::flag(std::string_view field) {
  uint8_t v = u8(field);
  if (error_) return 0;
  if (v > 1) {
    fail(field, "invalid value " + std::to_string(v) + " (must be 0 or 1)");
    return 0;
  }
  return v;
}

void Reader::fail(std::string_view field, std::string_view what) {
  if (error_) return;
  std::string detail(frame_);
  detail += ": ";
  detail += field;
  detail += ": ";
  detail += what;
  error_ = Error(Errc::kProtocol, std::move(detail));
}

Result<void> Reader::finish() const {
  if (error_) return *error_;
  if (remaining() != 0) {
    return Error(Errc::kProtocol, std::string(frame_) + ": " + std::to_string(remaining()) +
                                      " trailing bytes after the last field");
  }
  return {};
}

}  // namespace pyrun::proto::wire
