// The job's terminal, seen from its init: the pseudo-terminal's master stays with the init, which
// relays bytes between it and the job's stdin and stdout pipes (whose other ends are the front's)
// and applies the window sizes the front writes into the third pipe. Runs between fork and exec
// like the rest of the init: system calls and fixed buffers only, no allocation.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace pyrun::sandbox {

class TerminalRelay {
 public:
  // Descriptors poll() slots the relay may use.
  static constexpr size_t kPollSlots = 4;

  // master: the pty's master; input: the read end of the stdin pipe; output: the write end of the
  // stdout pipe; window: the read end of the window-size pipe. Makes all four non-blocking (the
  // other ends are the front's, in open file descriptions of their own).
  TerminalRelay(int master, int input, int output, int window) noexcept;

  // Fills slots (kPollSlots of them) with what the relay waits for. A slot it does not need has
  // fd -1. Reads from one side only while the bytes read from it before have been written to the
  // other: the pty's and the pipes' buffers are the only ones, so a client that does not read
  // makes the job block in write(), and memory stays flat.
  void prepare(pollfd* slots) noexcept;
  // Moves what the slots prepare() filled say is ready.
  void transfer(const pollfd* slots) noexcept;
  // After every process of the job has ended: delivers what is left in the terminal (the master
  // reads it until end of file) and what the relay holds, then returns. Blocks while the front
  // does not read; the spawner kills a job whose front never does at its wall-clock deadline.
  void drain() noexcept;

 private:
  void readInput() noexcept;
  void writeInput() noexcept;
  void readOutput() noexcept;
  void writeOutput() noexcept;
  void readWindow() noexcept;

  int master_;
  int input_;
  int output_;
  int window_;
  bool input_open_ = true;     // the front has not closed stdin
  bool output_open_ = true;    // the front still reads stdout (else output is discarded)
  bool window_open_ = true;    // the front still holds the window pipe
  bool terminal_open_ = true;  // a process of the job still holds the terminal
  // Client input on its way to the terminal, and terminal output on its way to the front.
  char in_[4096];
  size_t in_len_ = 0, in_off_ = 0;
  char out_[16384];
  size_t out_len_ = 0, out_off_ = 0;
};

}  // namespace pyrun::sandbox
