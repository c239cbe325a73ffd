// Tests of the pyrun/1 rules above the encoding: validateRunRequest and the state tables.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "proto/messages.h"
#include "unit/proto/samples.h"

namespace pyrun::proto {
namespace {

RunRequest valid() { return samples::run(); }

std::string rejection(const RunRequest& m) {
  auto r = validateRunRequest(m);
  if (r) return "(accepted)";
  EXPECT_TRUE(r.error().is(Errc::kInvalidArgument));
  return r.error().detail();
}

TEST(ValidateRunRequest, AcceptsTheSample) { EXPECT_TRUE(validateRunRequest(valid())); }

TEST(ValidateRunRequest, ScriptName) {
  struct Case {
    std::string name;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", "script name is empty"},
      {"dir/fib.py", "script name \"dir/fib.py\" contains '/' (a base name is required)"},
      {"/fib.py", "script name \"/fib.py\" contains '/' (a base name is required)"},
      {".", "script name \".\" is not a file name"},
      {"..", "script name \"..\" is not a file name"},
      {std::string("a\0b", 3), "script name contains a NUL byte"},
      {"a\nb.py", "script name contains a control character"},
      {"a\x7f", "script name contains a control character"},
      {"-c", "script name \"-c\" starts with '-'"},
      {std::string(kMaxNameLength + 1, 'n'), "script name is longer than 255 bytes"},
  };
  for (const auto& c : cases) {
    RunRequest m = valid();
    m.script_name = c.name;
    EXPECT_EQ(rejection(m), c.expected) << c.name;
  }
  for (const std::string& ok : std::vector<std::string>{"fib.py", "x", "...", ".hidden", "a-b",
                                                        std::string(kMaxNameLength, 'n')}) {
    RunRequest m = valid();
    m.script_name = ok;
    EXPECT_TRUE(validateRunRequest(m)) << ok;
  }
}

TEST(ValidateRunRequest, EmptyScript) {
  RunRequest m = valid();
  m.script.clear();
  EXPECT_EQ(rejection(m), "script \"fib.py\" is empty");
}

TEST(ValidateRunRequest, ArgumentCountAtAndAboveTheLimit) {
  RunRequest m = valid();
  m.args.assign(kMaxArgs, "x");
  EXPECT_TRUE(validateRunRequest(m));
  m.args.push_back("x");
  EXPECT_EQ(rejection(m), "65 arguments exceed the maximum of 64");
}

TEST(ValidateRunRequest, ArgumentWithNul) {
  RunRequest m = valid();
  m.args = {"ok", std::string("a\0b", 3)};
  EXPECT_EQ(rejection(m), "argument 2 contains a NUL byte");
}

TEST(ValidateRunRequest, FileCountAtAndAboveTheLimit) {
  RunRequest m = valid();
  m.files.clear();
  for (uint32_t i = 0; i < kMaxFiles; ++i)
    m.files.push_back(File{"f" + std::to_string(i), 0644, ""});
  EXPECT_TRUE(validateRunRequest(m));
  m.files.push_back(File{"extra", 0644, ""});
  EXPECT_EQ(rejection(m), "1001 files exceed the maximum of 1000");
}

TEST(ValidateRunRequest, FileNames) {
  struct Case {
    std::string name;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", "a file name is empty"},
      {"/etc/passwd", "file name \"/etc/passwd\" is absolute"},
      {"..", "file name \"..\" has a \"..\" component"},
      {"../x", "file name \"../x\" has a \"..\" component"},
      {"a/../../x", "file name \"a/../../x\" has a \"..\" component"},
      {"a/..", "file name \"a/..\" has a \"..\" component"},
      {".", "file name \".\" has a \".\" component"},
      {"a/./b", "file name \"a/./b\" has a \".\" component"},
      {"a//b", "file name \"a//b\" has an empty component"},
      {"a/", "file name \"a/\" has an empty component"},
      {std::string("a\0b", 3), "a file name contains a NUL byte"},
      {"a\tb", "a file name contains a control character"},
      {"d/" + std::string(kMaxNameLength + 1, 'c'), "file name \"d/" +
                                                        std::string(kMaxNameLength + 1, 'c') +
                                                        "\" has a component longer than 255 bytes"},
      {"fib.py", "file name \"fib.py\" is the script's name"},
  };
  for (const auto& c : cases) {
    RunRequest m = valid();
    m.files = {File{c.name, 0644, "x"}};
    EXPECT_EQ(rejection(m), c.expected) << c.name;
  }
  for (const std::string& ok : std::vector<std::string>{"a", "a/b/c.txt", "...", "a/.b", "-x",
                                                        "d/" + std::string(kMaxNameLength, 'c')}) {
    RunRequest m = valid();
    m.files = {File{ok, 0644, "x"}};
    EXPECT_TRUE(validateRunRequest(m)) << ok;
  }
}

TEST(ValidateRunRequest, FileNameLengthAtAndAboveTheLimit) {
  RunRequest m = valid();
  std::string name;
  while (name.size() < kMaxPathLength) name += "abcdefg/";
  name.resize(kMaxPathLength);
  if (name.back() == '/') name.back() = 'z';
  m.files = {File{name, 0644, ""}};
  EXPECT_TRUE(validateRunRequest(m));
  m.files[0].name += "z";
  EXPECT_EQ(rejection(m), "file name \"" + name.substr(0, 64) + "...\" is longer than 1024 bytes");
}

TEST(ValidateRunRequest, DuplicateFileNames) {
  RunRequest m = valid();
  m.files = {File{"a/b", 0644, "1"}, File{"c", 0644, ""}, File{"a/b", 0600, "2"}};
  EXPECT_EQ(rejection(m), "file name \"a/b\" appears twice");
}

TEST(ValidateRunRequest, FileThatIsAlsoADirectory) {
  RunRequest m = valid();
  // "a-b" and "a.b" sort between "a" and "a/b": the check must not stop at them.
  m.files = {File{"a/b", 0644, ""}, File{"a-b", 0644, ""}, File{"a.b", 0644, ""},
             File{"a", 0644, ""}};
  EXPECT_EQ(rejection(m), "file name \"a/b\" needs \"a\" to be a directory, but it is a file");
  m.files = {File{"fib.py/x", 0644, ""}};
  EXPECT_EQ(rejection(m),
            "file name \"fib.py/x\" needs \"fib.py\" to be a directory, but it is a file");
  m.files = {File{"ab/c", 0644, ""}, File{"a", 0644, ""}, File{"a/c", 0644, ""},
             File{"a/d", 0644, ""}};
  EXPECT_EQ(rejection(m), "file name \"a/c\" needs \"a\" to be a directory, but it is a file");
  m.files = {File{"ab/c", 0644, ""}, File{"a", 0644, ""}, File{"a.d/e", 0644, ""}};
  EXPECT_TRUE(validateRunRequest(m));
}

TEST(ValidateRunRequest, FileMode) {
  RunRequest m = valid();
  m.files = {File{"x", 0777, ""}};
  EXPECT_TRUE(validateRunRequest(m));
  m.files[0].mode = 01000;
  EXPECT_EQ(rejection(m), "file \"x\" has mode 1000 (only permission bits 0..777)");
  m.files[0].mode = 04755;  // setuid
  EXPECT_EQ(rejection(m), "file \"x\" has mode 4755 (only permission bits 0..777)");
}

TEST(ValidateRunRequest, EncodedSizeAtAndAboveTheFrameLimit) {
  RunRequest m;
  m.script_name = "big.py";
  // Fixed parts: 4+6 (name) + 4 (script length) + 4 (args) + 24 (limits) + 4 (files).
  const size_t fixed = 4 + 6 + 4 + 4 + 24 + 4;
  m.script.assign(kMaxFramePayload - fixed, '#');
  ASSERT_TRUE(validateRunRequest(m));
  EXPECT_EQ(encode(m).size(), kFrameHeaderSize + kMaxFramePayload);
  m.script += "#";
  EXPECT_EQ(rejection(m),
            "the script and files take 1048577 bytes encoded, above the request limit of 1048576 "
            "bytes");
  EXPECT_THROW(encode(m), std::length_error);
}

// ---------------------------------------------------------------------------------------------
// State tables: every state x every type, against the table in docs/PROTOCOL.md.

const std::vector<FrameType> kAllTypes = {
    FrameType::kReady,    FrameType::kQueued,   FrameType::kStarted, FrameType::kStdout,
    FrameType::kStderr,   FrameType::kExit,     FrameType::kError,   FrameType::kRun,
    FrameType::kStdin,    FrameType::kStdinEnd, FrameType::kSignal,  FrameType::kCancel,
    FrameType::kTerminal, FrameType::kWindow};

TEST(States, ServerAcceptsExactlyTheDocumentedFrames) {
  using F = FrameType;
  const std::map<ServerState, std::set<FrameType>> table = {
      {ServerState::kAwaitRun, {F::kRun, F::kTerminal}},
      {ServerState::kQueued, {F::kSignal, F::kCancel, F::kWindow}},
      {ServerState::kRunning, {F::kStdin, F::kStdinEnd, F::kSignal, F::kCancel, F::kWindow}},
      {ServerState::kDone, {}},
  };
  for (const auto& [state, accepted] : table) {
    for (auto type : kAllTypes) {
      EXPECT_EQ(serverAccepts(state, type), accepted.contains(type))
          << "state " << static_cast<int>(state) << ", "
          << frameTypeName(static_cast<uint8_t>(type));
    }
  }
}

TEST(States, ClientAcceptsExactlyTheDocumentedFrames) {
  using F = FrameType;
  const std::map<ClientState, std::set<FrameType>> table = {
      {ClientState::kAwaitReady, {F::kReady, F::kError}},
      {ClientState::kAwaitStart, {F::kQueued, F::kStarted, F::kExit, F::kError}},
      {ClientState::kQueued, {F::kQueued, F::kStarted, F::kExit, F::kError}},
      {ClientState::kRunning, {F::kStdout, F::kStderr, F::kExit, F::kError}},
      {ClientState::kDone, {}},
  };
  for (const auto& [state, accepted] : table) {
    for (auto type : kAllTypes) {
      EXPECT_EQ(clientAccepts(state, type), accepted.contains(type))
          << "state " << static_cast<int>(state) << ", "
          << frameTypeName(static_cast<uint8_t>(type));
    }
  }
}

TEST(States, OnlyAClientAwaitingTimingsAcceptsThem) {
  using F = FrameType;
  for (auto type : kAllTypes) EXPECT_FALSE(clientAccepts(ClientState::kAwaitTimings, type));
  EXPECT_TRUE(clientAccepts(ClientState::kAwaitTimings, F::kTimings));
  for (auto s : {ClientState::kAwaitReady, ClientState::kAwaitStart, ClientState::kQueued,
                 ClientState::kRunning, ClientState::kDone}) {
    EXPECT_FALSE(clientAccepts(s, F::kTimings));
  }
  for (auto s : {ServerState::kAwaitRun, ServerState::kUploading, ServerState::kQueued,
                 ServerState::kRunning, ServerState::kDone}) {
    EXPECT_FALSE(serverAccepts(s, F::kTimings));
  }
}

TEST(States, NeitherSideAcceptsItsOwnFrames) {
  for (auto type : kAllTypes) {
    const bool from_server = static_cast<uint8_t>(type) < 0x10;
    for (auto s : {ServerState::kAwaitRun, ServerState::kQueued, ServerState::kRunning}) {
      if (from_server) {
        EXPECT_FALSE(serverAccepts(s, type));
      }
    }
    for (auto s : {ClientState::kAwaitReady, ClientState::kAwaitStart, ClientState::kQueued,
                   ClientState::kRunning}) {
      if (!from_server) {
        EXPECT_FALSE(clientAccepts(s, type));
      }
    }
  }
}

}  // namespace
}  // namespace pyrun::proto

namespace pyrun::proto {
namespace {

TEST(TerminalFrames, RoundTrip) {
  Terminal t{WindowSize{50, 132}, "tmux-256color"};
  auto frame = encode(t);
  ASSERT_EQ(frame[0], static_cast<uint8_t>(FrameType::kTerminal));
  auto back = decodeTerminal(std::span(frame).subspan(kFrameHeaderSize));
  ASSERT_TRUE(back) << back.error().detail();
  EXPECT_EQ(*back, t);
  auto w = encode(WindowSize{1, 10000});
  auto size = decodeWindow(std::span(w).subspan(kFrameHeaderSize));
  ASSERT_TRUE(size) << size.error().detail();
  EXPECT_EQ(*size, (WindowSize{1, 10000}));
}

TEST(TerminalFrames, RefusesSizesOutsideOneToTenThousand) {
  for (WindowSize bad :
       {WindowSize{0, 80}, WindowSize{24, 0}, WindowSize{10001, 80}, WindowSize{24, 65535}}) {
    auto w = encode(bad);
    auto size = decodeWindow(std::span(w).subspan(kFrameHeaderSize));
    EXPECT_FALSE(size) << bad.rows << "x" << bad.cols;
    auto t = encode(Terminal{bad, "xterm"});
    EXPECT_FALSE(decodeTerminal(std::span(t).subspan(kFrameHeaderSize)));
  }
}

TEST(TerminalFrames, RefusesTermNamesOutsideTheAllowList) {
  for (std::string term : {"", "xterm\x1b]0;pwned\x07", "../../etc/passwd", "XTERM",
                           "xterm-256color ", "konsole-direct"}) {
    auto t = encode(Terminal{WindowSize{}, term});
    auto r = decodeTerminal(std::span(t).subspan(kFrameHeaderSize));
    ASSERT_FALSE(r) << term;
    EXPECT_EQ(r.error().detail(),
              "TERMINAL: term: not a known terminal type (xterm-256color, screen, tmux, vt100, "
              "...)");
  }
  for (auto name : terminalNames()) EXPECT_TRUE(isKnownTerminalName(name)) << name;
  for (auto name : {"xterm", "xterm-256color", "screen", "screen-256color", "tmux", "tmux-256color",
                    "vt100", "linux", "dumb"}) {
    EXPECT_TRUE(isKnownTerminalName(name)) << name;
  }
}

TEST(TransferFrames, FileHeaderAndGetRoundTrip) {
  const FileHeader h{"data/in.csv", 0640, 1ull << 40};
  auto frame = encode(h);
  auto back = decodeFileHeader(std::span<const uint8_t>(frame).subspan(kFrameHeaderSize));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, h);
  auto result = encode(h, FrameType::kResult);
  EXPECT_EQ(result[0], static_cast<uint8_t>(FrameType::kResult));
  const Get g{{"out/*.png", "results/**"}, 7, 1u << 20};
  auto gf = encode(g);
  auto gb = decodeGet(std::span<const uint8_t>(gf).subspan(kFrameHeaderSize));
  ASSERT_TRUE(gb);
  EXPECT_EQ(*gb, g);
}

TEST(TransferFrames, GetRefusesPatternsBreakingTheNameRules) {
  for (std::string bad : {"../x", "/etc/*", "a/../../x", "", "a\nb"}) {
    auto frame = encode(Get{{bad}, 1, 1});
    EXPECT_FALSE(decodeGet(std::span<const uint8_t>(frame).subspan(kFrameHeaderSize))) << bad;
  }
}

TEST(TransferFrames, FileNameRules) {
  EXPECT_TRUE(validateFileName("a/b.txt", 0644));
  for (std::string bad :
       std::vector<std::string>{"", "/abs", "a/../b", "./a", "a//b", "..", std::string("a\0b", 3),
                                "a\x7f", std::string(1025, 'a'), std::string(256, 'a')}) {
    EXPECT_FALSE(validateFileName(bad, 0644)) << bad;
  }
  EXPECT_FALSE(validateFileName("a", 01777));
}

TEST(TransferFrames, FileNameSetRefusesTwiceAndFileDirectoryClashes) {
  FileNameSet names;
  ASSERT_TRUE(names.add("a/b"));
  EXPECT_FALSE(names.add("a/b"));
  EXPECT_FALSE(names.add("a"));      // a directory of a/b
  EXPECT_FALSE(names.add("a/b/c"));  // a/b is a file
  EXPECT_TRUE(names.add("a/c"));
  EXPECT_EQ(names.size(), 2u);
  EXPECT_EQ(names.directories(), 1u);
}

TEST(TransferFrames, ResultPatterns) {
  EXPECT_TRUE(resultPatternMatches("out/*.png", "out/a.png"));
  EXPECT_FALSE(resultPatternMatches("out/*.png", "out/sub/a.png"));
  EXPECT_FALSE(resultPatternMatches("*", ".hidden"));
  EXPECT_TRUE(resultPatternMatches(".*", ".hidden"));
  EXPECT_TRUE(resultPatternMatches("results/**", "results/a/b/c"));
  EXPECT_TRUE(resultPatternMatches("**/*.log", "x.log"));
  EXPECT_TRUE(resultPatternMatches("**/*.log", "a/b/x.log"));
  EXPECT_TRUE(resultPatternMatches("results", "results/a.txt"));  // a directory: all below it
  EXPECT_FALSE(resultPatternMatches("report.csv", "report.csv.bak"));
}

TEST(TransferFrames, StateRules) {
  using F = FrameType;
  EXPECT_TRUE(serverAccepts(ServerState::kAwaitRun, F::kFile));
  EXPECT_TRUE(serverAccepts(ServerState::kAwaitRun, F::kGet));
  EXPECT_FALSE(serverAccepts(ServerState::kAwaitRun, F::kFileData));
  EXPECT_TRUE(serverAccepts(ServerState::kUploading, F::kFileData));
  for (F t : {F::kRun, F::kFile, F::kGet, F::kStdin, F::kSignal, F::kCancel}) {
    EXPECT_FALSE(serverAccepts(ServerState::kUploading, t))
        << frameTypeName(static_cast<uint8_t>(t));
  }
  for (F t : {F::kFile, F::kFileData, F::kGet}) {
    EXPECT_FALSE(serverAccepts(ServerState::kQueued, t));
    EXPECT_FALSE(serverAccepts(ServerState::kRunning, t));
  }
  EXPECT_TRUE(clientAccepts(ClientState::kRunning, F::kResult));
  EXPECT_TRUE(clientAccepts(ClientState::kRunning, F::kResultData));
  EXPECT_FALSE(clientAccepts(ClientState::kAwaitStart, F::kResult));
  EXPECT_FALSE(clientAccepts(ClientState::kQueued, F::kResultData));
}

}  // namespace
}  // namespace pyrun::proto
