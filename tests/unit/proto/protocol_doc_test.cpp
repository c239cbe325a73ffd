// Keeps docs/PROTOCOL.md exact: its worked example must be the bytes the real encoder produces,
// and its frame table must list every type with its code and maximum payload.
// PYRUN_UPDATE_DOCS=1 rewrites the generated example in place instead of comparing.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

#include "proto/frame.h"
#include "proto/messages.h"
#include "unit/proto/samples.h"

namespace pyrun::proto {
namespace {

const std::string kDoc = std::string(PYRUN_SOURCE_DIR) + "/docs/PROTOCOL.md";
const std::string kBegin =
    "<!-- BEGIN GENERATED EXAMPLE: tests/unit/proto/protocol_doc_test.cpp, PYRUN_UPDATE_DOCS=1 "
    "-->\n";
const std::string kEnd = "<!-- END GENERATED EXAMPLE -->\n";

// Walks one encoded frame field by field, printing each field's bytes beside its meaning. The
// walk follows the layout in PROTOCOL.md and must end exactly at the frame's end.
class Annotator {
 public:
  explicit Annotator(const std::vector<uint8_t>& frame) : b_(frame) {}

  std::string annotate() {
    const auto type = static_cast<FrameType>(b_[0]);
    fixed(1, "type " + frameTypeName(b_[0]));
    fixed(4, "length " + std::to_string(be(1, 4)));
    switch (type) {
      case FrameType::kReady:
        num(2, "version");
        num(4, "max_frame_payload");
        str("server");
        break;
      case FrameType::kRun: {
        str("script_name");
        str("script");
        const uint64_t nargs = num(4, "args: count");
        for (uint64_t i = 0; i < nargs; ++i) str("args[" + std::to_string(i) + "]");
        limits();
        const uint64_t nfiles = num(4, "files: count");
        for (uint64_t i = 0; i < nfiles; ++i) {
          const std::string f = "files[" + std::to_string(i) + "]";
          str(f + ".name");
          num(4, f + ".mode");
          str(f + ".data");
        }
        break;
      }
      case FrameType::kStarted:
        str("job_id");
        limits();
        break;
      case FrameType::kGet: {
        const uint64_t n = num(4, "patterns: count");
        for (uint64_t i = 0; i < n; ++i) str("patterns[" + std::to_string(i) + "]");
        num(4, "max_files");
        num(8, "max_bytes");
        break;
      }
      case FrameType::kTerminal:
        num(2, "rows");
        num(2, "cols");
        str("term");
        break;
      case FrameType::kWindow:
        num(2, "rows");
        num(2, "cols");
        break;
      case FrameType::kFile:
      case FrameType::kResult:
        str("name");
        num(4, "mode");
        num(8, "size");
        break;
      case FrameType::kFileData:
      case FrameType::kResultData:
      case FrameType::kStdin:
      case FrameType::kStdout:
      case FrameType::kStderr:
        bytes(b_.size() - pos_, "data " + quoted(pos_, b_.size() - pos_));
        break;
      case FrameType::kExit:
        num(1, "kind (0 = exited)");
        num(4, "code");
        num(1, "verdict (0 = ok)");
        num(8, "cpu_us");
        num(8, "wall_us");
        num(8, "peak_memory_bytes");
        num(8, "stdout_bytes");
        num(8, "stderr_bytes");
        num(1, "output_truncated");
        str("detail");
        break;
      default:
        break;
    }
    EXPECT_EQ(pos_, b_.size()) << "the annotation did not consume the whole frame";
    return out_;
  }

 private:
  uint64_t be(size_t at, size_t n) const {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | b_.at(at + i);
    return v;
  }
  std::string quoted(size_t at, size_t n) const {
    std::string q = "\"";
    for (size_t i = 0; i < n; ++i) {
      const auto c = static_cast<char>(b_.at(at + i));
      if (c == '\n') {
        q += "\\n";
      } else if (c == '\r') {
        q += "\\r";
      } else if (c == '"' || c == '\\') {
        q += '\\';
        q += c;
      } else {
        q += c;
      }
    }
    return q + "\"";
  }
  // Up to 8 bytes per line; the meaning on the first line only.
  void bytes(size_t n, const std::string& meaning) {
    size_t done = 0;
    do {
      std::string hex;
      for (size_t i = 0; i < 8 && done < n; ++i, ++done) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x", b_.at(pos_ + done));
        if (!hex.empty()) hex += ' ';
        hex += buf;
      }
      std::string line = "  " + hex;
      if (done <= 8) {
        line.resize(28, ' ');
        line += meaning;
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out_ += line + "\n";
    } while (done < n);
    pos_ += n;
  }
  void fixed(size_t n, const std::string& meaning) { bytes(n, meaning); }
  uint64_t num(size_t n, const std::string& name) {
    const uint64_t v = be(pos_, n);
    bytes(n, name + " " + std::to_string(v));
    return v;
  }
  void str(const std::string& name) {
    const auto n = static_cast<size_t>(num(4, name + ": length"));
    if (n > 0) bytes(n, name + " " + quoted(pos_, n));
  }
  void limits() {
    num(4, "limits.cpu_seconds");
    num(4, "limits.wall_seconds");
    num(8, "limits.memory_bytes");
    num(8, "limits.output_bytes");
  }

  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
  std::string out_;
};

std::string generatedExample(const std::vector<samples::ExampleFrame>& frames) {
  std::string out = "```text\n";
  bool first = true;
  for (const auto& f : frames) {
    if (!first) out += "\n";
    first = false;
    out += std::string(f.from_client ? "client -> server: " : "server -> client: ") +
           frameTypeName(f.bytes[0]) + ", " + std::to_string(f.bytes.size()) + " bytes\n";
    out += Annotator(f.bytes).annotate();
  }
  return out + "```\n";
}

std::string readDoc() {
  std::ifstream in(kDoc);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compares (or with PYRUN_UPDATE_DOCS=1 rewrites) the block between `begin_line` and the next
// end marker with `generated`.
void checkGeneratedBlock(const std::string& begin_line, const std::string& generated) {
  std::string doc = readDoc();
  ASSERT_FALSE(doc.empty()) << "cannot read " << kDoc;
  const size_t begin = doc.find(begin_line);
  ASSERT_NE(begin, std::string::npos) << kDoc << " lacks the line " << begin_line;
  const size_t end = doc.find(kEnd, begin);
  ASSERT_NE(end, std::string::npos)
      << kDoc << " lacks the line " << kEnd << " after " << begin_line;
  const size_t body = begin + begin_line.size();
  if (std::getenv("PYRUN_UPDATE_DOCS") != nullptr) {
    doc.replace(body, end - body, generated);
    std::ofstream(kDoc, std::ios::trunc) << doc;
    GTEST_SKIP() << "rewrote the example in " << kDoc;
  }
  EXPECT_EQ(doc.substr(body, end - body), generated)
      << "the example in " << kDoc
      << " is stale; rerun this test with PYRUN_UPDATE_DOCS=1 and review the diff";
}

TEST(ProtocolDoc, WorkedExampleIsWhatTheEncoderProduces) {
  checkGeneratedBlock(kBegin, generatedExample(samples::exampleSession()));
}

TEST(ProtocolDoc, WorkedUploadExampleIsWhatTheEncoderProduces) {
  checkGeneratedBlock(
      "<!-- BEGIN GENERATED UPLOAD EXAMPLE: tests/unit/proto/protocol_doc_test.cpp, "
      "PYRUN_UPDATE_DOCS=1 -->\n",
      generatedExample(samples::exampleUpload()));
}

TEST(ProtocolDoc, WorkedTerminalExampleIsWhatTheEncoderProduces) {
  checkGeneratedBlock(
      "<!-- BEGIN GENERATED TERMINAL EXAMPLE: tests/unit/proto/protocol_doc_test.cpp, "
      "PYRUN_UPDATE_DOCS=1 -->\n",
      generatedExample(samples::exampleTerminal()));
}

TEST(ProtocolDoc, FrameTableListsEveryTypeWithItsCodeAndMaximum) {
  const std::string doc = readDoc();
  for (int t = 0; t <= 255; ++t) {
    const auto type = static_cast<uint8_t>(t);
    if (!isKnownFrameType(type)) continue;
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", t);
    const std::string row = "| `" + std::string(code) + "` | " + frameTypeName(type) + " | " +
                            std::to_string(maxPayload(static_cast<FrameType>(type))) + " |";
    EXPECT_NE(doc.find(row), std::string::npos) << "missing row starting " << row;
  }
}

TEST(ProtocolDoc, ListsEveryErrorCodeAndVerdict) {
  const std::string doc = readDoc();
  for (int c = 1; c <= static_cast<int>(ErrorCode::kShuttingDown); ++c) {
    const std::string row =
        "| " + std::to_string(c) + " | `" + errorCodeName(static_cast<ErrorCode>(c)) + "` |";
    EXPECT_NE(doc.find(row), std::string::npos) << "missing row starting " << row;
  }
  for (int v = 0; v <= static_cast<int>(Verdict::kProtocolError); ++v) {
    const std::string row =
        "| " + std::to_string(v) + " | `" + verdictName(static_cast<Verdict>(v)) + "` |";
    EXPECT_NE(doc.find(row), std::string::npos) << "missing row starting " << row;
  }
}

TEST(FuzzCorpus, SeedsAreExactlyWhatTheEncoderProduces) {
  const std::string dir = std::string(PYRUN_SOURCE_DIR) + "/tests/fuzz/corpus/proto/";
  std::set<std::string> expected;
  for (const auto& [name, bytes] : samples::corpus()) {
    expected.insert(name);
    std::ifstream in(dir + name, std::ios::binary);
    ASSERT_TRUE(in) << dir << name << " is missing; regenerate with make_proto_corpus";
    std::vector<uint8_t> got((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
    EXPECT_EQ(got, bytes) << dir << name << " is stale; regenerate with make_proto_corpus";
  }
  std::set<std::string> present;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    present.insert(entry.path().filename().string());
  }
  EXPECT_EQ(present, expected) << "unexpected files in " << dir;
}

}  // namespace
}  // namespace pyrun::proto
