// Sample pyrun/1 messages shared by the codec tests, the PROTOCOL.md example check and the fuzz
// corpus generator (tests/fuzz/make_proto_corpus.cpp).
#pragma once

#include <csignal>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "proto/messages.h"

namespace pyrun::proto::samples {

inline std::vector<uint8_t> bytesOf(std::string_view s) { return {s.begin(), s.end()}; }

inline Ready ready() { return Ready{kProtocolVersion, kMaxFramePayload, "pyrund 0.1.0"}; }

inline RunRequest run() {
  RunRequest m;
  m.script_name = "fib.py";
  m.script = "import sys\nprint(sys.argv[1:], open('data/n.txt').read())\n";
  m.args = {"30", "--verbose", ""};
  m.limits = Limits{5, 60, 256ull << 20, 1ull << 20};
  m.files = {File{"data/n.txt", 0600, "30\n"}, File{"empty", 0644, ""}};
  return m;
}

inline Queued queued() { return Queued{3}; }

inline Started started() { return Started{"42", Limits{10, 60, 512ull << 20, 64ull << 20}}; }

inline Exit exitSignaled() {
  Exit m;
  m.kind = ExitKind::kSignaled;
  m.code = SIGKILL;
  m.verdict = Verdict::kWallLimit;
  m.cpu_us = 1'234'567;
  m.wall_us = 60'000'123;
  m.peak_memory_bytes = 9ull << 20;
  m.stdout_bytes = 1ull << 33;  // beyond 32 bits: all eight bytes matter
  m.stderr_bytes = 17;
  m.output_truncated = 1;
  m.detail = "wall-clock limit of 60 s exceeded";
  return m;
}

inline Exit exitExited() {
  Exit m;
  m.kind = ExitKind::kExited;
  m.code = 3;
  m.verdict = Verdict::kOk;
  m.cpu_us = 21'000;
  m.wall_us = 35'000;
  m.peak_memory_bytes = 8ull << 20;
  m.stdout_bytes = 12;
  return m;
}

inline ErrorMessage error() {
  return ErrorMessage{ErrorCode::kBusy, "server busy, 64 jobs queued"};
}

inline Signal signal() { return Signal{SIGINT}; }

// One encoded frame of every type, in an order a real session could produce (per direction).
inline std::vector<std::pair<std::string, std::vector<uint8_t>>> allFrames() {
  return {
      {"ready", encode(ready())},
      {"run", encode(run())},
      {"queued", encode(queued())},
      {"started", encode(started())},
      {"stdin", encodeData(FrameType::kStdin, bytesOf("hello\n"))},
      {"stdin_end", encodeEmpty(FrameType::kStdinEnd)},
      {"stdout", encodeData(FrameType::kStdout, bytesOf("hello world\n"))},
      {"stderr", encodeData(FrameType::kStderr, bytesOf("Traceback (most recent call last):\n"))},
      {"signal", encode(signal())},
      {"cancel", encodeEmpty(FrameType::kCancel)},
      {"exit_exited", encode(exitExited())},
      {"exit_signaled", encode(exitSignaled())},
      {"error", encode(error())},
      {"file", encode(FileHeader{"data/in.csv", 0644, 8})},
      {"file_data", encodeData(FrameType::kFileData, bytesOf("a,b\n1,2\n"))},
      {"get", encode(Get{{"out/*.png", "report.csv"}, 100000, 64ull << 30})},
      {"result", encode(FileHeader{"out/a.png", 0644, 4}, FrameType::kResult)},
      {"result_data", encodeData(FrameType::kResultData, bytesOf("\x89PNG"))},
      {"terminal", encode(Terminal{WindowSize{24, 80}, "xterm-256color"})},
      {"window", encode(WindowSize{50, 132})},
  };
}

// The worked example of docs/PROTOCOL.md: one short session, in order.
struct ExampleFrame {
  bool from_client;
  std::vector<uint8_t> bytes;
};

inline RunRequest exampleRun() {
  RunRequest m;
  m.script_name = "hello.py";
  m.script = "import sys\nprint(input(), sys.argv[1])\n";
  m.args = {"world"};
  m.limits.wall_seconds = 10;
  return m;
}

inline Started exampleStarted() { return Started{"7", Limits{10, 10, 512ull << 20, 16ull << 20}}; }

inline Exit exampleExit() {
  Exit m;
  m.cpu_us = 21'000;
  m.wall_us = 35'000;
  m.peak_memory_bytes = 9ull << 20;
  m.stdout_bytes = 12;
  return m;
}

inline std::vector<ExampleFrame> exampleSession() {
  return {
      {false, encode(ready())},
      {true, encode(exampleRun())},
      {false, encode(exampleStarted())},
      {true, encodeData(FrameType::kStdin, bytesOf("hello\n"))},
      {true, encodeEmpty(FrameType::kStdinEnd)},
      {false, encodeData(FrameType::kStdout, bytesOf("hello world\n"))},
      {false, encode(exampleExit())},
  };
}

// The worked upload example of docs/PROTOCOL.md: a 10-byte file in two FILE_DATA frames and an
// empty one, then RUN.
inline std::vector<ExampleFrame> exampleUpload() {
  RunRequest run;
  run.script_name = "sum.py";
  run.script = "print(open('data/in.csv').read())\n";
  return {
      {false, encode(ready())},
      {true, encode(Get{{"out/*.csv"}, 100000, 64ull << 30})},
      {true, encode(FileHeader{"data/in.csv", 0644, 10})},
      {true, encodeData(FrameType::kFileData, bytesOf("a,b\n"))},
      {true, encodeData(FrameType::kFileData, bytesOf("1,2\n3\n"))},
      {true, encode(FileHeader{"empty.txt", 0600, 0})},
      {true, encode(run)},
      {false, encode(exampleStarted())},
      {false, encode(FileHeader{"out/sum.csv", 0644, 2}, FrameType::kResult)},
      {false, encodeData(FrameType::kResultData, bytesOf("6\n"))},
      {false, encode(Exit{})},
  };
}

// The worked terminal example of docs/PROTOCOL.md: TERMINAL before RUN, a prompt, a resize, the
// user's answer echoed by the job's terminal.
inline std::vector<ExampleFrame> exampleTerminal() {
  RunRequest run;
  run.script_name = "ask.py";
  run.script = "print('hi', input('name? '))\n";
  Exit exit = exampleExit();
  exit.stdout_bytes = 20;
  return {
      {false, encode(ready())},
      {true, encode(Terminal{WindowSize{24, 80}, "xterm-256color"})},
      {true, encode(run)},
      {false, encode(exampleStarted())},
      {false, encodeData(FrameType::kStdout, bytesOf("name? "))},
      {true, encode(WindowSize{30, 100})},
      {true, encodeData(FrameType::kStdin, bytesOf("bob\r"))},
      {false, encodeData(FrameType::kStdout, bytesOf("bob\r\nhi bob\r\n"))},
      {false, encode(exit)},
  };
}

// The seed corpus of tests/fuzz/proto_fuzz.cpp (tests/fuzz/corpus/proto/): every sample frame in
// a file of its own, and two streams of several frames.
inline std::vector<std::pair<std::string, std::vector<uint8_t>>> corpus() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  std::vector<uint8_t> all;
  for (auto& [name, bytes] : allFrames()) {
    all.insert(all.end(), bytes.begin(), bytes.end());
    out.emplace_back(name + ".frame", std::move(bytes));
  }
  out.emplace_back("all.stream", std::move(all));
  std::vector<uint8_t> session;
  for (const auto& f : exampleSession())
    session.insert(session.end(), f.bytes.begin(), f.bytes.end());
  out.emplace_back("session.stream", std::move(session));
  std::vector<uint8_t> upload;
  for (const auto& f : exampleUpload()) upload.insert(upload.end(), f.bytes.begin(), f.bytes.end());
  out.emplace_back("upload.stream", std::move(upload));
  return out;
}

}  // namespace pyrun::proto::samples
