// The one sentence of each verdict, for every program that says it: pyrund (EXIT's detail, the
// audit log), pyrun-policy, and pyrun when a server sent none ("wall-clock limit of 60 s
// exceeded").
#pragma once

#include <cstdint>
#include <string>

#include "proto/messages.h"

namespace pyrun::proto {

// What the spawner said about the cause of an ending, for the verdict's sentence.
struct VerdictCause {
  std::string text;  // kSyscall: the call's name, or the spawner's sentence saying it is unknown
  bool names_the_call = false;  // text is the call's name
};

// The sentence of `verdict`; empty for kOk. A limit of 0 in `limits` (a client that did not learn
// it) leaves the figure out: "CPU time limit exceeded". kSyscall with the call's name reads
// "forbidden system call: socket"; with the spawner's sentence, that sentence.
std::string verdictSentence(Verdict verdict, const Limits& limits, const VerdictCause& cause = {});

// "512 MiB", "64 KiB", "1000 bytes", "1.5 MiB": sizes for people, exact when they are whole units.
std::string humanBytes(uint64_t bytes);

}  // namespace pyrun::proto
